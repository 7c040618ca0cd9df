"""Catching up after a broker blip (invariant 4b).

When the edge's AMQP connection drops, its exclusive queue goes with it, and whatever the
dispatchers route meanwhile is dropped by RabbitMQ for want of a queue. Once the robust
channel has re-declared the queue, its bindings and its consumer, every local stream is put on
hold, everything routed to this node's users, rooms and broadcasts after the last seq it had
received is read from one Postgres snapshot and sent, and the streams are released above that
snapshot's high-water mark: the same handover as a connect, so nothing is missed and nothing
is sent twice.

A gap too large to send (more than ``CATCH_UP_LIMIT`` notifications) closes the sockets with
1012 instead: the clients reconnect and get the replay a new connection gets.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from sqlalchemy.engine import RowMapping

from dispatcher.queries import HIGH_WATER, ROUTED_SINCE
from dispatcher.records import StoredNotification, encode_frame, notification_frame
from producers import topology
from socket_edge.sinks import OutFrame

if TYPE_CHECKING:
    from socket_edge.edge import EdgeNode

log = logging.getLogger("notify.edge")

CATCH_UP_LIMIT = 20_000
CLOSE_SERVICE_RESTART = 1012


class CatchUp:
    def __init__(self, node: EdgeNode) -> None:
        self.node = node
        self._lock = asyncio.Lock()

    async def after_reconnect(self) -> None:
        node = self.node
        since = node.last_seq
        log.warning("broker connection restored: catching up from seq %d", since)
        async with self._lock:
            try:
                await self.run(since)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("catch-up failed; closing sockets so that clients replay")
                await self._close_all()

    async def run(self, since: int) -> None:
        node = self.node
        connections = tuple(node.connections)
        streams = [(c, key) for c in connections for key in c.live_keys()]
        for connection, key in streams:
            connection.hold(key, keep_high_water=True)
        rows, high_water = await self._read(since)
        if len(rows) > CATCH_UP_LIMIT:
            log.warning("catch-up of %d notifications is too large; asking clients to replay",
                        len(rows))  # fmt: skip
            await self._close_all()
            return
        for row in rows:
            notification = StoredNotification.from_row(row)
            frame = OutFrame(encode_frame(notification_frame(notification)))
            key = notification.delivery_key
            if key == topology.BROADCAST_KEY:
                targets = connections
            else:
                targets = tuple(c for c in node.registry.members(key) if c in connections)
            node.fan_out(key, notification.seq, frame, targets, direct=True)
        for connection, key in streams:
            if connection.has_stream(key):
                connection.release(key, high_water)
        node.last_seq = max(node.last_seq, high_water)
        log.info("caught up %d notifications for %d sockets", len(rows), len(connections))

    async def _read(self, since: int) -> tuple[list[RowMapping], int]:
        node = self.node
        users = node.users()
        rooms = list(node.rooms())
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
                        "window": node.settings.broadcast_unread_window,
                        "limit": CATCH_UP_LIMIT + 1,
                    },
                )
                rows = list(result.mappings().all())
        return rows, high_water

    async def _close_all(self) -> None:
        await asyncio.gather(
            *(
                c.close(CLOSE_SERVICE_RESTART, "reconnect to resume")
                for c in tuple(self.node.connections)
            )
        )
