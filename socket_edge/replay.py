"""What a connecting client missed, read from Postgres in one snapshot.

The replay and the high-water mark (the greatest seq committed in the log) come from one
REPEATABLE READ snapshot. Since seqs become visible in commit order (``dispatcher.store``),
every notification with seq <= high-water is either in this replay or was not the user's to
replay; every one committed later has seq > high-water and arrives live, because the user's
key was bound before the snapshot was taken. That is the whole handover (invariant 4): live
frames are sent only if their seq > high-water.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncEngine

from dispatcher.queries import HIGH_WATER, SINCE, UNREAD, UNREAD_COUNT
from dispatcher.records import StoredNotification, encode_frame, notification_frame


@dataclass(frozen=True, slots=True)
class Replay:
    frames: list[str]  # encoded notification frames, oldest first
    unread_count: int
    high_water: int
    truncated: bool

    @property
    def count(self) -> int:
        return len(self.frames)


class ReplayReader:
    def __init__(self, engine: AsyncEngine, limit: int, broadcast_window: timedelta) -> None:
        self.engine = engine
        self.limit = limit
        self.window = broadcast_window

    async def for_user(self, user_id: str, since: int | None = None) -> Replay:
        """The user's unread notifications, or with ``since`` every one after that seq."""
        params = {"user_id": user_id, "window": self.window, "limit": self.limit + 1}
        async with self.engine.connect() as conn:
            conn = await conn.execution_options(
                isolation_level="REPEATABLE READ", postgresql_readonly=True
            )
            async with conn.begin():
                high_water = (await conn.execute(HIGH_WATER)).scalar_one()
                if since is None:
                    result = await conn.execute(UNREAD, params)
                else:
                    result = await conn.execute(SINCE, {**params, "since": since})
                rows = result.mappings().all()
                unread = (await conn.execute(UNREAD_COUNT, params)).scalar_one()
        truncated = len(rows) > self.limit
        frames = [
            encode_frame(
                notification_frame(
                    StoredNotification.from_row(row),
                    read=row["read_at"] is not None,
                    replayed=True,
                )
            )
            for row in reversed(rows[: self.limit])
        ]
        return Replay(frames, int(unread), int(high_water), truncated)
