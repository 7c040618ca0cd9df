"""Answering a client's frames: one method per action of docs/websocket.md."""

from __future__ import annotations

import logging

from aio_pika.exceptions import AMQPError

from producers import topology
from producers.errors import NotifyError
from socket_edge import frames
from socket_edge.actions import (
    Archive,
    BadFrame,
    MarkAllRead,
    MarkRead,
    MarkSeen,
    Message,
    Ping,
    StateAction,
    Subscribe,
    Unarchive,
    Unsubscribe,
    parse_action,
)
from socket_edge.auth import Principal
from socket_edge.connection import Connection
from socket_edge.edge import EdgeNode, archive_event, read_event, seen_event
from socket_edge.sinks import OutFrame

log = logging.getLogger("notify.edge")

PONG = OutFrame(frames.PONG)


class ClientSession:
    __slots__ = ("bidirectional", "connection", "edge", "principal")

    def __init__(
        self, edge: EdgeNode, connection: Connection, principal: Principal, bidirectional: bool
    ) -> None:
        self.edge = edge
        self.connection = connection
        self.principal = principal
        self.bidirectional = bidirectional

    def error(self, code: str, message: str) -> None:
        self.connection.send(OutFrame(frames.error(code, message)))

    def refuse(self, code: str, message: str) -> None:
        self.edge.refuse(code)
        self.error(code, message)

    async def handle(self, raw: str | bytes) -> None:
        try:
            action = parse_action(raw)
        except BadFrame as bad:
            self.error(bad.code, bad.message)
            return
        if isinstance(action, Ping):
            self.connection.send(PONG)
        elif not self.bidirectional:
            self.error("not_supported", "this endpoint only accepts the ping action")
        else:
            try:
                await self.dispatch(action)
            except (NotifyError, AMQPError, ConnectionError) as exc:
                log.warning("%r: %s failed: %s", self.connection, action.action, exc)
                self.error("unavailable", f"{action.action} failed, try again: {exc}")

    async def dispatch(self, action: Subscribe | Unsubscribe | Message | StateAction) -> None:
        if isinstance(action, Subscribe):
            await self.subscribe(action)
        elif isinstance(action, Unsubscribe):
            await self.unsubscribe(action)
        elif isinstance(action, Message):
            await self.message(action)
        else:
            await self.change_state(action)

    async def subscribe(self, action: Subscribe) -> None:
        """Bind the room, then (with ``since``) replay its history with the same handover as
        a connect, then go live."""
        connection, room = self.connection, action.room
        key = topology.room_key(room)
        if not self.principal.may_join(room):
            self.refuse("forbidden_room", f"your token does not allow room {room!r}")
            return
        if not connection.has_stream(key) and len(connection.rooms) >= self.max_rooms:
            self.refuse("too_many_rooms", f"a socket may join at most {self.max_rooms} rooms")
            return
        if action.since is None:
            self.edge.catch_up.open_live(connection, key)
            await self.edge.join(connection, room)
            connection.send(OutFrame(frames.subscribed(room, 0, None)))
            return
        connection.hold(key)
        await self.edge.join(connection, room)
        replay = await self.edge.replay.for_room(room, action.since)
        for text in replay.frames:
            await connection.send_paced(OutFrame(text))
        await connection.send_paced(
            OutFrame(frames.subscribed(room, replay.count, replay.high_water, replay.truncated))
        )
        if connection.holding(key):
            self.edge.catch_up.release(connection, key, replay.high_water)

    @property
    def max_rooms(self) -> int:
        return self.edge.settings.websocket_max_rooms

    async def unsubscribe(self, action: Unsubscribe) -> None:
        await self.edge.leave(self.connection, action.room)
        self.connection.send(OutFrame(frames.unsubscribed(action.room)))

    async def message(self, action: Message) -> None:
        if not self.connection.has_stream(topology.room_key(action.room)):
            self.error("not_subscribed", f"subscribe to {action.room!r} before messaging it")
            return
        await self.edge.relay(self.connection, action.room, action.data)

    async def change_state(self, action: StateAction) -> None:
        """Publish the event of a read, seen or archive action: every socket of the user
        (this one included) gets its sync frame once the dispatcher has applied it."""
        user_id = self.connection.user_id
        if isinstance(action, MarkRead):
            await self.edge.publish(read_event(user_id, ids=action.ids))
        elif isinstance(action, MarkAllRead):
            await self.edge.publish(read_event(user_id, all=True, up_to_seq=action.up_to_seq))
        elif isinstance(action, MarkSeen):
            await self.edge.publish(seen_event(user_id, action.up_to_seq))
        elif isinstance(action, Archive):
            event = archive_event(
                user_id, ids=action.ids or (), all_read=action.all_read, up_to_seq=action.up_to_seq
            )
            await self.edge.publish(event)
        elif isinstance(action, Unarchive):
            await self.edge.publish(archive_event(user_id, ids=action.ids, unarchive=True))
