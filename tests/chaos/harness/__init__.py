"""The whole-pipeline chaos harness (issue 7): private services, two dispatchers and two edges,
websocket clients that keep a ledger of every frame, confirmed producers, a seeded schedule of
faults, and a checker that accounts for every notification at the end.

``runner.run_chaos`` drives a run; ``python -m tests.chaos`` (tests/chaos/__main__.py) and
tests/chaos/test_chaos_short.py call it. The checker's decisions are pure functions
(``checker``), tested on their own in tests/chaos/test_checker.py.
"""
