"""Waits with a deadline never lose a cancellation (``producers.waiting``), and the product's
code waits only through them."""

from __future__ import annotations

import ast
import asyncio
import random
from pathlib import Path

import pytest

from producers.waiting import cancel_and_wait, wait_event, within
from socket_edge.registry import Registry
from tests.unit.test_registry import RecordingBinder

ROOT = Path(__file__).resolve().parents[2]


async def test_an_event_set_in_the_turn_its_waiter_is_cancelled_still_cancels_it() -> None:
    event = asyncio.Event()

    async def loop() -> None:
        while True:
            await wait_event(event, 30)
            event.clear()

    task = asyncio.create_task(loop())
    await asyncio.sleep(0)
    event.set()
    task.cancel()  # the same turn: asyncio.wait_for on Python 3.11 would return normally
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(asyncio.shield(task), 5)  # a bound on the test itself


async def test_waits_end_by_the_event_or_by_the_deadline() -> None:
    event = asyncio.Event()
    assert await wait_event(event, 0.01) is False
    event.set()
    assert await wait_event(event, 30) is True
    with pytest.raises(TimeoutError):
        await within(asyncio.Event().wait(), 0.01)
    assert await within(asyncio.sleep(0, "done"), 30) == "done"


@pytest.mark.parametrize("turns", range(4))
async def test_a_registry_closes_in_the_turn_its_last_member_leaves(turns: int) -> None:
    """The edge's shutdown closes its registry as its sockets leave: a key left in that same
    turn wakes the sweeper, which was cancelled in the same turn too. It ran on, and the
    shutdown waited for it forever."""
    registry: Registry[str] = Registry(RecordingBinder(random.Random(turns)), linger=30.0)
    await registry.add("user.a", "s")
    await registry.remove("user.a", "s")  # lingers: the sweeper waits for its deadline
    await registry.add("user.b", "s")
    for _ in range(turns + 4):
        await asyncio.sleep(0)
    sweeper = registry._sweeper
    assert sweeper is not None
    await registry.remove("user.b", "s")  # wakes the sweeper ...
    closing = asyncio.create_task(registry.close())  # ... and cancels it, in the same turn
    done, _ = await asyncio.wait({closing}, timeout=5)
    assert closing in done, "the registry did not close: its sweeper ran on"
    assert sweeper.cancelled()


async def test_stopping_a_task_absorbs_its_cancellation_and_not_the_callers() -> None:
    worker = asyncio.create_task(asyncio.Event().wait())
    await cancel_and_wait(worker)  # the worker's own cancellation: absorbed
    assert worker.cancelled()
    await cancel_and_wait(None)
    await cancel_and_wait(worker)  # already ended: nothing to do

    async def slow_to_end() -> None:
        try:
            await asyncio.Event().wait()
        finally:
            for _ in range(3):  # a few turns of cleanup once cancelled
                await asyncio.sleep(0)

    slow = asyncio.create_task(slow_to_end())
    await asyncio.sleep(0)
    stopping = asyncio.create_task(cancel_and_wait(slow))
    await asyncio.sleep(0)
    stopping.cancel()  # the caller is cancelled while it waits: that must go on up
    with pytest.raises(asyncio.CancelledError):
        await stopping
    assert stopping.cancelled() and slow.cancelled()


def test_the_product_never_waits_with_asyncio_wait_for() -> None:
    """Every deadline in producers/, dispatcher/ and socket_edge/ goes through
    ``producers.waiting``."""
    found = []
    for package in ("producers", "dispatcher", "socket_edge"):
        for path in sorted((ROOT / package).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if isinstance(node, ast.Attribute) and node.attr == "wait_for":
                    found.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert not found, f"asyncio.wait_for can swallow a cancellation on Python 3.11: {found}"
