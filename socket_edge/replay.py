"""What a client missed, read from Postgres in one snapshot.

The rows and the high-water mark (the greatest seq committed in the log) come from one
snapshot: one statement, which PostgreSQL runs on one snapshot, in one round trip. Since seqs
become visible in commit order (``dispatcher.store``), every notification with seq <=
high-water is either in this read or was not the client's to get; every one committed later
has seq > high-water and arrives live, because the stream's key was bound before the snapshot
was taken. That is the whole handover (invariant 4): afterwards, live frames of the stream are
sent only if their seq > high-water.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import TextClause
from sqlalchemy.ext.asyncio import AsyncEngine

from dispatcher.queries import (
    HISTORY_SNAPSHOT,
    ROOM_SINCE_SNAPSHOT,
    SINCE_SNAPSHOT,
    UNREAD_COUNT,
    UNREAD_SNAPSHOT,
)
from dispatcher.records import StoredNotification, encode_frame, notification_frame

NO_CURSOR = 2**63 - 1


@dataclass(frozen=True, slots=True)
class Replay:
    frames: list[str]  # encoded notification frames, oldest first
    unread_count: int
    high_water: int
    truncated: bool
    seqs: tuple[int, ...] = ()

    @property
    def count(self) -> int:
        return len(self.frames)


def frame_of(row: Mapping[Any, Any], *, replayed: bool) -> dict[str, Any]:
    return notification_frame(
        StoredNotification.from_row(row), read=row["read_at"] is not None, replayed=replayed
    )


class ReplayReader:
    def __init__(self, engine: AsyncEngine, limit: int, broadcast_window: timedelta) -> None:
        self.engine = engine
        self.limit = limit
        self.window = broadcast_window

    async def _snapshot(
        self, query: TextClause, params: dict[str, Any]
    ) -> tuple[int, Sequence[Mapping[Any, Any]], int]:
        """The rows of one of the ``*_SNAPSHOT`` queries, its high-water mark and unread
        count: one statement, outside any transaction, so one round trip."""
        async with self.engine.connect() as conn:
            conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
            rows = (await conn.execute(query, params)).mappings().all()
        first = rows[0]
        page = rows if first["seq"] is not None else []
        return int(first["high_water"]), page, int(first["unread_count"])

    def _replay(self, high_water: int, rows: Sequence[Mapping[Any, Any]], unread: int) -> Replay:
        kept = list(reversed(rows[: self.limit]))
        return Replay(
            frames=[encode_frame(frame_of(row, replayed=True)) for row in kept],
            unread_count=unread,
            high_water=high_water,
            truncated=len(rows) > self.limit,
            seqs=tuple(int(row["seq"]) for row in kept),
        )

    async def for_user(self, user_id: str, since: int | None = None) -> Replay:
        """The user's unread notifications, or with ``since`` every one after that seq."""
        params: dict[str, Any] = {
            "user_id": user_id,
            "window": self.window,
            "limit": self.limit + 1,
        }
        if since is None:
            snapshot = await self._snapshot(UNREAD_SNAPSHOT, params)
        else:
            snapshot = await self._snapshot(SINCE_SNAPSHOT, {**params, "since": since})
        return self._replay(*snapshot)

    async def for_room(self, room: str, since: int) -> Replay:
        """The room's notifications after ``since``."""
        params = {"room": room, "since": since, "limit": self.limit + 1}
        return self._replay(*await self._snapshot(ROOM_SINCE_SNAPSHOT, params))

    async def history(
        self, user_id: str, status: str, limit: int, before_seq: int | None
    ) -> tuple[list[dict[str, Any]], int]:
        """A page of the user's history, newest first, and the unread count."""
        params = {
            "user_id": user_id,
            "window": self.window,
            "status": status,
            "limit": limit,
            "before_seq": NO_CURSOR if before_seq is None else before_seq,
        }
        _, rows, unread = await self._snapshot(HISTORY_SNAPSHOT, params)
        return [frame_of(row, replayed=False) for row in rows], unread

    async def unread_count(self, user_id: str) -> int:
        async with self.engine.connect() as conn:
            result = await conn.execute(UNREAD_COUNT, {"user_id": user_id, "window": self.window})
            return int(result.scalar_one())
