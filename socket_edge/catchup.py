"""Catching up after a broker blip (invariant 4b).

When the edge's AMQP connection drops, its exclusive queue goes with it, and whatever the
dispatchers route meanwhile is dropped by RabbitMQ for want of a queue. The moment the drop is
seen, every live stream is put on hold (keeping its mark) and the last seq received is noted.
Once connected again (to the same node or, in a cluster, another), the edge declares a new
queue, bound to ``broadcast``, and consumes it (``socket_edge.broker``), and the catch-up
binds every key that has local members to it, in one batch; frames that arrive meanwhile wait
in the held streams, whichever keys are bound first. The same happens when the queue's channel
closes while the connection stays.
Once it is restored, everything routed to this node's users, rooms and broadcasts after the
noted seq (notifications, and the state syncs of its users: a read, seen, archive or
preferences change done on another device meanwhile) is read from one Postgres snapshot and
added to the held streams, and each stream is released: its frames go out in seq order, each
seq once (``Connection.release``). Nothing is missed, nothing is sent twice, and nothing lower
comes after something higher. The seqs read are noted with the node, so that a dispatcher
publishing them again later is ignored.

Taking the mark at the drop matters: deliveries for the keys bound first can arrive before
the restore is complete, and a mark taken then would lie above what the keys bound last
missed. For the same reason a stream whose own replay (a connect, a subscribe) ends while a
catch-up is pending is not released: its snapshot may predate frames lost in the gap, so it
stays held, above its snapshot's mark, until the catch-up releases it (``release``); a room
joined without ``since`` meanwhile is held from the drop's mark (``open_live``). A drop during
the catch-up itself leaves everything held for the next one.

What the users' preferences held back is not caught up either: a personal notification
suppressed when it was routed is left out by the query, and a broadcast goes through the same
per-user decision as a live one (``EdgeNode.fan_out``), with the preferences in force as the
gap's syncs are replayed in order.

A gap too large to send (more than ``EDGE_CATCH_UP_LIMIT`` deliveries) closes the sockets with
1012 instead: the clients reconnect and get the replay a new connection gets.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from typing import Protocol

from aiormq.exceptions import AMQPError, ChannelInvalidStateError
from sqlalchemy.ext.asyncio import AsyncEngine

from dispatcher.queries import HIGH_WATER, READS_SINCE, ROUTED_SINCE
from dispatcher.records import Delivery, StoredNotification, notification_delivery
from dispatcher.store import rebuilt_delivery
from producers import topology
from socket_edge.connection import Connection, Stream
from socket_edge.metrics import EdgeMetrics
from socket_edge.registry import Registry
from socket_edge.settings import EdgeSettings
from socket_edge.sinks import OutFrame

log = logging.getLogger("notify.edge")

CLOSE_SERVICE_RESTART = 1012

# Binding the keys again can fail while the queue stays (a broker error that left the channel
# open, or one whose closing is not reported yet): tried this many times, a growing pause apart
# (7.5 s in all), before the sockets are closed for their clients to replay. A loss of the
# queue meanwhile ends this catch-up instead; the next queue's starts over.
REBIND_ATTEMPTS = 6
REBIND_PAUSE = 0.5


class Node(Protocol):
    """What a catch-up needs of its edge node: its sockets and keys, the database, the mark
    of what reached it, and its fan-out."""

    settings: EdgeSettings
    critical: frozenset[str]
    engine: AsyncEngine
    connections: set[Connection]
    registry: Registry[Connection]
    metrics: EdgeMetrics

    @property
    def last_seq(self) -> int: ...

    def advance(self, seq: int) -> None: ...

    async def rebind(self) -> int: ...

    def seen(self, seq: int) -> bool: ...

    def fan_out(
        self, key: str, seq: int, frame: OutFrame, targets: Iterable[Connection]
    ) -> None: ...

    def users(self) -> list[str]: ...

    def rooms(self) -> dict[str, int]: ...


class CatchUp:
    def __init__(self, node: Node) -> None:
        self.node = node
        self._lock = asyncio.Lock()
        self._since: int | None = None  # the last seq received before the connection dropped
        self._holding: list[tuple[Connection, str, Stream]] = []
        self._drops = 0

    @property
    def pending(self) -> bool:
        """The broker connection dropped, and what it missed is not caught up yet."""
        return self._since is not None

    def release(self, connection: Connection, key: str, high_water: int) -> None:
        """End a replay's hold on a stream: at once, or, while a catch-up is pending, by the
        catch-up, above the replay's mark."""
        if not connection.holding(key):  # closed, or left the room, meanwhile
            return
        if self._since is None:
            connection.release(key, high_water)
            return
        stream = connection.keep_held(key, high_water)
        self._holding.append((connection, key, stream))

    def open_live(self, connection: Connection, key: str) -> None:
        """Start a stream with no replay: live at once, or, while a catch-up is pending, held
        from the drop's mark until the catch-up releases it."""
        if self._since is None:
            connection.open_live(key)
            return
        stream = connection.hold(key)
        stream.high_water = self._since
        self._holding.append((connection, key, stream))

    def connection_lost(self) -> None:
        """The broker connection dropped: note the mark and hold every live stream."""
        node = self.node
        self._drops += 1
        if self._since is None:
            self._since = node.last_seq
        for connection in tuple(node.connections):
            for key in connection.live_keys():
                stream = connection.hold(key, keep_high_water=True)
                self._holding.append((connection, key, stream))

    async def after_reconnect(self) -> None:
        node = self.node
        async with self._lock:
            if self._since is None:  # no loss was reported before the queue came back
                self.connection_lost()
            since = self._since if self._since is not None else self.node.last_seq
            log.warning("broker connection restored: catching up from seq %d", since)
            drops = self._drops
            try:
                # The queue came back without the keys' bindings: bound again (one batch)
                # before the snapshot is read, so that whatever the snapshot misses is routed.
                await self._rebind(drops)
                deliveries, high_water = await self._read(since)
                if self._drops != drops:
                    log.warning("broker connection lost again during the catch-up; holding the "
                                "streams until it is back")  # fmt: skip
                    node.metrics.catch_up("interrupted")
                    return
                await self.run(deliveries, high_water)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if self._drops != drops:
                    log.warning("broker connection lost again during the catch-up (%s); "
                                "holding the streams until it is back", exc)  # fmt: skip
                    node.metrics.catch_up("interrupted")
                    return
                log.exception("catch-up failed; closing sockets so that clients replay")
                node.metrics.catch_up("failed")
                await self._close_all()
            self._since = None
            self._holding = []

    async def _rebind(self, drops: int) -> None:
        """Bind every local key again; a broker error that leaves the queue in place is tried
        again, a loss of the queue meanwhile is not."""
        for attempt in range(1, REBIND_ATTEMPTS + 1):
            try:
                await self.node.rebind()
                return
            except (AMQPError, ChannelInvalidStateError) as exc:
                if attempt == REBIND_ATTEMPTS or self._drops != drops:
                    raise
                log.warning("binding the keys again failed (%s); trying again", exc)
                await asyncio.sleep(REBIND_PAUSE * attempt)

    async def run(self, deliveries: list[Delivery], high_water: int) -> None:
        """Add ``deliveries`` (in seq order) to the held streams they are for, then release
        every held stream."""
        node = self.node
        if len(deliveries) > node.settings.edge_catch_up_limit:
            log.warning("catch-up of %d deliveries is too large; asking clients to replay",
                        len(deliveries))  # fmt: skip
            node.metrics.catch_up("too_large")
            await self._close_all()
            return
        connections = tuple(node.connections)
        reached = 0
        for delivery in deliveries:
            node.seen(delivery.seq)
            frame = OutFrame(delivery.body.decode())
            key = delivery.routing_key
            if key == topology.BROADCAST_KEY:
                targets: tuple[Connection, ...] = connections
            else:
                targets = tuple(node.registry.members(key))
            # Into held streams: every stream is held from the drop until the catch-up (or its
            # own replay, which drops what its snapshot covers) releases it.
            held = [c for c in targets if c.holding(c.user_key if key == topology.BROADCAST_KEY
                                                    else key)]  # fmt: skip
            node.fan_out(key, delivery.seq, frame, held)
            reached += len(held)
        for connection, key, stream in self._holding:
            if connection.holds(key, stream):
                connection.release(key, stream.high_water)
        node.advance(high_water)
        node.metrics.catch_up("caught_up")
        log.info("caught up %d deliveries (%d frames) for %d sockets",
                 len(deliveries), reached, len(connections))  # fmt: skip

    async def _read(self, since: int) -> tuple[list[Delivery], int]:
        """What was routed to this node after ``since``, in seq order, from one snapshot."""
        node = self.node
        users = node.users()
        rooms = list(node.rooms())
        window = node.settings.broadcast_unread_window
        async with node.engine.connect() as conn:
            conn = await conn.execution_options(
                isolation_level="REPEATABLE READ", postgresql_readonly=True
            )
            async with conn.begin():
                high_water = int((await conn.execute(HIGH_WATER)).scalar_one())
                result = await conn.execute(
                    ROUTED_SINCE,
                    {
                        "since": since,
                        "users": users,
                        "rooms": rooms,
                        "window": window,
                        "limit": node.settings.edge_catch_up_limit + 1,
                    },
                )
                deliveries = [
                    notification_delivery(StoredNotification.from_row(row))
                    for row in result.mappings().all()
                ]
                reads = await conn.execute(
                    READS_SINCE,
                    {
                        "since": since,
                        "high_water": high_water,
                        "users": users,
                        "limit": node.settings.edge_catch_up_limit + 1,
                    },
                )
                for row in reads.all():
                    sync = await rebuilt_delivery(
                        conn, row.seq, row.event_type, row.payload, window, critical=node.critical
                    )
                    if sync is not None:
                        deliveries.append(sync)
        return sorted(deliveries, key=lambda d: d.seq), high_water

    async def _close_all(self) -> None:
        await asyncio.gather(
            *(
                c.close(CLOSE_SERVICE_RESTART, "reconnect to resume")
                for c in tuple(self.node.connections)
            )
        )
