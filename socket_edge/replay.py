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

import asyncpg
import orjson
from sqlalchemy import TextClause
from sqlalchemy.dialects.postgresql.asyncpg import dialect as asyncpg_dialect

from dispatcher.database import CONNECT_TIMEOUT, driver_url
from dispatcher.queries import (
    COUNTS,
    HISTORY_SNAPSHOT,
    PREFERENCES,
    ROOM_SINCE_SNAPSHOT,
    SINCE_SNAPSHOT,
    UNREAD_SNAPSHOT,
)
from dispatcher.records import StoredNotification, encode_frame, notification_frame
from producers.preferences import (
    NO_PREFERENCES,
    Preferences,
    Suppression,
    critical_types,
    decide,
    preferences_of,
)

NO_CURSOR = 2**63 - 1


@dataclass(frozen=True, slots=True)
class Counts:
    """A user's badge counts (docs/websocket.md, "Counts")."""

    unread: int
    unseen: int


@dataclass(frozen=True, slots=True)
class UserState:
    """What one snapshot says of a user beside their notifications: the counts, how far they
    have seen, and their preferences with the seq of the event that set them (0: never)."""

    counts: Counts
    seen_seq: int
    preferences: Preferences
    preferences_seq: int


NO_STATE = UserState(Counts(0, 0), 0, NO_PREFERENCES, 0)


@dataclass(frozen=True, slots=True)
class Replay:
    frames: list[str]  # encoded notification frames, oldest first
    unread_count: int
    high_water: int
    truncated: bool
    seqs: tuple[int, ...] = ()
    user: UserState = NO_STATE

    @property
    def count(self) -> int:
        return len(self.frames)


def held_back(
    row: Mapping[Any, Any], preferences: Preferences, critical: frozenset[str]
) -> Suppression | None:
    """What the user's preferences made of a row: for a personal notification, the decision
    recorded when it was routed; for a broadcast, the decision of the user's current
    preferences at the moment it was logged (a mute is filtered in SQL already)."""
    if row["audience"] == "user":
        suppressed = row["suppressed"]
        return Suppression(suppressed) if suppressed else None
    if row["audience"] != "broadcast" or preferences is NO_PREFERENCES:
        return None
    return decide(
        preferences,
        row["notification_type"],
        row["category"],
        row["priority"],
        row["created_at"],
        critical,
    )


def frame_of(
    row: Mapping[Any, Any],
    *,
    replayed: bool,
    preferences: Preferences = NO_PREFERENCES,
    critical: frozenset[str] = frozenset(),
) -> dict[str, Any]:
    return notification_frame(
        StoredNotification.from_row(row),
        read=row["read_at"] is not None,
        replayed=replayed,
        quiet=held_back(row, preferences, critical) is Suppression.QUIET,
        archived=row["archived_at"] is not None,
    )


def user_state(row: Mapping[Any, Any]) -> UserState:
    document = row["user_preferences"]
    return UserState(
        counts=Counts(int(row["unread_count"]), int(row["unseen_count"])),
        seen_seq=int(row["seen_seq"]),
        preferences=preferences_of(document),
        preferences_seq=int(row["preferences_seq"]),
    )


class Statement:
    """A read-side query in the driver's own form: ``$n`` placeholders, and the names of the
    parameters in their order (compiled by SQLAlchemy's asyncpg dialect, once)."""

    def __init__(self, query: TextClause) -> None:
        compiled = query.compile(dialect=asyncpg_dialect())  # type: ignore[no-untyped-call]
        self.sql = str(compiled)
        self.names = tuple(compiled.positiontup or ())

    def args(self, params: Mapping[str, Any]) -> list[Any]:
        return [params[name] for name in self.names]


STATEMENTS = {
    query: Statement(query)
    for query in (
        UNREAD_SNAPSHOT,
        SINCE_SNAPSHOT,
        ROOM_SINCE_SNAPSHOT,
        HISTORY_SNAPSHOT,
        COUNTS,
        PREFERENCES,
    )
}


async def _init_connection(conn: asyncpg.Connection) -> None:
    for kind in ("json", "jsonb"):
        await conn.set_type_codec(
            kind, schema="pg_catalog", encoder=encode_json, decoder=orjson.loads
        )


async def _nothing_to_reset(conn: asyncpg.Connection) -> None:
    """The pool's reset of a connection it takes back. The driver's own (unlock advisory
    locks, close cursors, unlisten, reset settings) is one more round trip per release, for
    state these connections never have: they run single read statements, outside any
    transaction (the driver still rolls back a transaction left open, by itself)."""


def encode_json(value: object) -> str:
    return orjson.dumps(value).decode()


class ReplayReader:
    """The reads of handshakes, subscribes and the REST history: one statement each, on a
    pool of the driver's own connections. These run once or twice per handshake, so they skip
    SQLAlchemy's layers, which cost a query more than twice the CPU of the driver alone (185
    against 75 microseconds, measured on one core)."""

    def __init__(
        self,
        database_url: str,
        connections: int,
        limit: int,
        broadcast_window: timedelta,
        critical: frozenset[str] | None = None,
    ) -> None:
        self.database_url = database_url
        self.connections = connections
        self.limit = limit
        self.window = broadcast_window
        # The operator's critical types, which no preference mutes (``NOTIFY_CRITICAL_TYPES``).
        self.critical = critical_types() if critical is None else critical
        self._critical = sorted(self.critical)  # as the queries take them: a text[]
        self._pool: asyncpg.Pool | None = None

    async def start(self) -> None:
        self._pool = await asyncpg.create_pool(
            driver_url(self.database_url),
            min_size=1,
            max_size=self.connections,
            init=_init_connection,
            reset=_nothing_to_reset,
            timeout=CONNECT_TIMEOUT,
        )

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    async def _fetch(self, query: TextClause, params: Mapping[str, Any]) -> list[asyncpg.Record]:
        assert self._pool is not None, "ReplayReader.start() was not awaited"
        statement = STATEMENTS[query]
        async with self._pool.acquire() as conn:
            rows: list[asyncpg.Record] = await conn.fetch(statement.sql, *statement.args(params))
        return rows

    def _user_params(self, user_id: str) -> dict[str, Any]:
        return {"user_id": user_id, "window": self.window, "critical": self._critical}

    async def _snapshot(
        self, query: TextClause, params: dict[str, Any]
    ) -> tuple[int, Sequence[Mapping[Any, Any]], UserState]:
        """The rows of one of the ``*_SNAPSHOT`` queries, its high-water mark and the user's
        state: one statement, outside any transaction, so one round trip."""
        rows = await self._fetch(query, params)
        first = rows[0]
        page = rows if first["seq"] is not None else []
        return int(first["high_water"]), page, user_state(first)

    def _replay(
        self, high_water: int, rows: Sequence[Mapping[Any, Any]], user: UserState
    ) -> Replay:
        kept = list(reversed(rows[: self.limit]))
        return Replay(
            frames=[
                encode_frame(
                    frame_of(
                        row, replayed=True, preferences=user.preferences, critical=self.critical
                    )
                )
                for row in kept
            ],
            unread_count=user.counts.unread,
            high_water=high_water,
            truncated=len(rows) > self.limit,
            seqs=tuple(int(row["seq"]) for row in kept),
            user=user,
        )

    async def for_user(self, user_id: str, since: int | None = None) -> Replay:
        """The user's unread notifications (neither archived nor muted), or with ``since``
        every one after that seq (neither archived nor muted), with the user's state."""
        params = {**self._user_params(user_id), "limit": self.limit + 1}
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
    ) -> tuple[list[dict[str, Any]], UserState]:
        """A page of the user's history, newest first, and the user's state."""
        params = {
            **self._user_params(user_id),
            "status": status,
            "limit": limit,
            "before_seq": NO_CURSOR if before_seq is None else before_seq,
        }
        _, rows, user = await self._snapshot(HISTORY_SNAPSHOT, params)
        frames = [
            frame_of(row, replayed=False, preferences=user.preferences, critical=self.critical)
            for row in rows
        ]
        return frames, user

    async def counts(self, user_id: str) -> Counts:
        rows = await self._fetch(COUNTS, self._user_params(user_id))
        return Counts(int(rows[0]["unread_count"]), int(rows[0]["unseen_count"]))

    async def preferences(self, user_id: str) -> tuple[Preferences, int]:
        """The user's preferences as the projection holds them, and the seq that set them."""
        rows = await self._fetch(PREFERENCES, {"user_id": user_id})
        return preferences_of(rows[0]["preferences"]), int(rows[0]["preferences_seq"])
