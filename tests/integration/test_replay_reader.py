"""The edge's replay reads: one statement, one round trip to PostgreSQL, per replay."""

from __future__ import annotations

import uuid
from collections import Counter
from datetime import timedelta
from typing import Any

import asyncpg
import pytest

from producers.settings import Settings
from socket_edge.replay import ReplayReader


@pytest.fixture
def spied(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """What the driver's connections send to the server, by method: every round trip goes
    through one of these."""
    calls: Counter[str] = Counter()
    for name in ("execute", "fetch", "fetchrow", "fetchval", "executemany"):
        original = getattr(asyncpg.Connection, name)

        def spy(
            self: Any, *args: Any, __name: str = name, __original: Any = original, **kw: Any
        ) -> Any:
            calls[__name] += 1
            return __original(self, *args, **kw)

        monkeypatch.setattr(asyncpg.Connection, name, spy)
    return calls


@pytest.mark.parametrize("since", [None, 0])
async def test_a_replay_is_one_round_trip_including_the_connections_return_to_the_pool(
    settings: Settings, spied: Counter[str], since: int | None
) -> None:
    reader = ReplayReader(settings.database_url, 2, 100, timedelta(days=7))
    await reader.start()
    try:
        user = f"replay-{uuid.uuid4().hex[:12]}"
        await reader.for_user(user, since)  # the pool's connection is made (and set up) here
        spied.clear()
        for _ in range(5):
            replay = await reader.for_user(user, since)
            assert replay.count == 0
            await reader.for_room(f"room-{user}", 0)
    finally:
        await reader.close()
    assert dict(spied) == {"fetch": 10}
