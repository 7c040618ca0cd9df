"""The edge node: the sockets this process holds, wired to its broker queue and to Postgres.

A delivery from the broker is decoded once and its already-encoded frame is handed to every
local socket of its key; nothing is re-encoded per socket.
"""

from __future__ import annotations

import logging
import os
import socket
import uuid

from sqlalchemy.ext.asyncio import AsyncEngine

from dispatcher import database
from producers import topology
from producers.settings import Settings
from socket_edge.broker import EdgeBroker
from socket_edge.connection import Connection
from socket_edge.registry import Registry
from socket_edge.replay import ReplayReader

log = logging.getLogger("notify.edge")


def new_node_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


class EdgeNode:
    def __init__(self, settings: Settings, node_id: str | None = None) -> None:
        self.settings = settings
        self.node_id = node_id or new_node_id()
        self.broker = EdgeBroker(settings.amqp_url, self.node_id)
        self.registry: Registry[Connection] = Registry(self.broker)
        self.connections: set[Connection] = set()
        self.engine: AsyncEngine = database.create_engine(settings.database_url)
        self.replay = ReplayReader(
            self.engine, settings.replay_limit, settings.broadcast_unread_window
        )
        self.frames_delivered = 0

    async def start(self) -> None:
        await database.check(self.engine)
        await self.broker.start(self.on_delivery)
        log.info("edge node %s consuming %s", self.node_id, self.broker.queue_name)

    async def stop(self) -> None:
        await self.broker.close()
        await self.engine.dispose()

    def on_delivery(self, key: str, seq: int, text: str) -> None:
        targets = self.connections if key == topology.BROADCAST_KEY else self.registry.members(key)
        for connection in tuple(targets):
            connection.deliver(seq, text)
        self.frames_delivered += len(targets)

    async def attach(self, connection: Connection) -> None:
        """Register a socket and bind its user's key; returns once live frames will reach it."""
        self.connections.add(connection)
        try:
            await self.registry.add(topology.user_key(connection.user_id), connection)
        except BaseException:
            self.connections.discard(connection)
            raise

    async def detach(self, connection: Connection) -> None:
        self.connections.discard(connection)
        for room in tuple(connection.rooms):
            await self.registry.remove(topology.room_key(room), connection)
        await self.registry.remove(topology.user_key(connection.user_id), connection)

    @property
    def ready(self) -> bool:
        return self.broker.connected
