"""The edge's memory of recent delivery seqs, which drops the copies a dispatcher publishes
again when it takes over an unconfirmed batch."""

from __future__ import annotations

import random

from socket_edge.edge import RecentSeqs


def test_a_seq_is_new_once() -> None:
    seen = RecentSeqs(4)
    assert [seen.add(s) for s in (1, 2, 2, 3, 1)] == [True, True, False, True, False]


def test_the_oldest_seq_is_forgotten_beyond_the_window() -> None:
    seen = RecentSeqs(3)
    for seq in (1, 2, 3, 4):
        assert seen.add(seq)
    assert seen.add(1)  # forgotten: 2, 3, 4 remain
    assert not seen.add(4)


def test_against_a_model_with_random_copies() -> None:
    rng = random.Random(7)
    window = 50
    seen = RecentSeqs(window)
    history: list[int] = []
    for seq in range(2_000):
        copies = [seq] + [rng.randrange(max(0, seq - 80), seq + 1) for _ in range(rng.randrange(3))]
        for candidate in copies:
            expected = candidate not in history[-window:]
            assert seen.add(candidate) is expected
            if expected:
                history.append(candidate)
