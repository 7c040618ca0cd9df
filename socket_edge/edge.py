"""The edge node: the sockets this process holds, wired to its broker queue and to Postgres.

A delivery from the broker is decoded once; its frame is encoded to wire bytes once and written
to every local socket of its key. Nothing is re-encoded, and nothing waits, per socket.

The dispatchers publish deliveries in log order, and a dispatcher that takes over publishes
again what an earlier one committed without a confirm (``dispatcher.store``, "Routing in log
order"); such a copy may have arrived already. The node remembers the seqs of its last
``SEEN_WINDOW`` deliveries and drops a copy, so a socket never gets a live frame twice.
"""

from __future__ import annotations

import logging
import os
import socket
import time
import uuid
from collections import Counter, deque
from collections.abc import Iterable, Sequence
from typing import Any, TypeVar

import orjson
from aio_pika.exceptions import AMQPError
from sqlalchemy.ext.asyncio import AsyncEngine

from dispatcher import database
from dispatcher.records import encode_frame
from dispatcher.store import EventStore
from producers import topology
from producers.envelope import (
    PREFERENCES,
    SCHEMA_VERSION,
    SEEN,
    ArchiveEvent,
    ArchiveEventType,
    Envelope,
    PreferencesEvent,
    ReadEvent,
    ReadEventType,
    SeenEvent,
    StateEvent,
    new_event_id,
)
from producers.logs import context
from producers.preferences import Preferences
from producers.publisher import Outgoing, Publisher
from socket_edge import frames
from socket_edge import metrics as edge_metrics
from socket_edge.auth import Authenticator
from socket_edge.broker import Delivery, EdgeBroker
from socket_edge.catchup import CatchUp
from socket_edge.cluster import Cluster, NodeReport, describe
from socket_edge.connection import Connection
from socket_edge.limits import HandshakeLimiter
from socket_edge.preferences import (
    NOTIFICATION_FRAME,
    PREFERENCES_FRAME,
    HeldPreferences,
    preferences_sync,
)
from socket_edge.receipts import ReceiptRecorder
from socket_edge.registry import Registry
from socket_edge.replay import ReplayReader
from socket_edge.settings import EdgeSettings
from socket_edge.sinks import OutFrame

log = logging.getLogger("notify.edge")

SEEN_WINDOW = 65_536


# An event the edge publishes on a client's behalf: a broadcast, a read, or another change
# of the user's state (seen, archive, preferences).
Event = TypeVar("Event", Envelope, ReadEvent, SeenEvent, ArchiveEvent, PreferencesEvent)
# The producer name of those events in the log.
EDGE_PRODUCER = "socket-edge"


def read_event(
    user_id: str, *, ids: Sequence[uuid.UUID] = (), up_to_seq: int | None = None, all: bool = False
) -> ReadEvent:
    """The read event of a user's ``mark_read`` (``ids``) or ``mark_all_read`` (``all``, up to
    ``up_to_seq`` when given), as the edge publishes it for a socket or a REST call."""
    return ReadEvent.model_validate(
        {
            "event_id": new_event_id(),
            "schema_version": SCHEMA_VERSION,
            "event_type": ReadEventType.ALL_READ if all else ReadEventType.READ,
            "user_id": user_id,
            "ids": list(ids),
            "up_to_seq": up_to_seq if all else None,
            "producer": EDGE_PRODUCER,
        }
    )


def seen_event(user_id: str, up_to_seq: int) -> SeenEvent:
    """The event of a user's ``mark_seen``: everything up to ``up_to_seq`` is seen."""
    return SeenEvent.model_validate(
        {
            "event_id": new_event_id(),
            "schema_version": SCHEMA_VERSION,
            "event_type": SEEN,
            "user_id": user_id,
            "up_to_seq": up_to_seq,
            "producer": EDGE_PRODUCER,
        }
    )


def archive_event(
    user_id: str,
    *,
    ids: Sequence[uuid.UUID] = (),
    all_read: bool = False,
    up_to_seq: int | None = None,
    unarchive: bool = False,
) -> ArchiveEvent:
    """The event of ``archive`` (``ids``, or ``all_read`` up to ``up_to_seq`` when given) or
    of ``unarchive`` (``ids``)."""
    return ArchiveEvent.model_validate(
        {
            "event_id": new_event_id(),
            "schema_version": SCHEMA_VERSION,
            "event_type": ArchiveEventType.UNARCHIVED if unarchive else ArchiveEventType.ARCHIVED,
            "user_id": user_id,
            "ids": list(ids),
            "all_read": all_read,
            "up_to_seq": up_to_seq,
            "producer": EDGE_PRODUCER,
        }
    )


def preferences_event(user_id: str, preferences: Preferences) -> PreferencesEvent:
    """The event that replaces the user's preferences."""
    return PreferencesEvent.model_validate(
        {
            "event_id": new_event_id(),
            "schema_version": SCHEMA_VERSION,
            "event_type": PREFERENCES,
            "user_id": user_id,
            "preferences": preferences,
            "producer": EDGE_PRODUCER,
        }
    )


def state_outgoing(event: StateEvent) -> Outgoing:
    return Outgoing(event.event_id, event.routing_key, event.to_json(), event.producer)


def new_node_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


class EdgeNode:
    def __init__(self, settings: EdgeSettings, node_id: str | None = None) -> None:
        self.settings = settings
        self.node_id = node_id or new_node_id()
        self.broker = EdgeBroker(settings.amqp_url, self.node_id)
        self.registry: Registry[Connection] = Registry(self.broker, settings.edge_key_linger)
        self.connections: set[Connection] = set()
        self.holding: set[Connection] = set()  # those with a stream in HOLDING
        # A small fixed pool for the receipts, the catch-up and the admin reads; replays have
        # their own (ReplayReader). Without a ping before each checkout: a connection
        # PostgreSQL dropped fails one query, and the pool throws its older ones away with it.
        # The operator's critical types (NOTIFY_CRITICAL_TYPES), read once.
        self.critical = settings.critical_types
        # The preferences of this node's users that have any (``socket_edge.preferences``).
        self.preferences = HeldPreferences(self.critical)
        self.engine: AsyncEngine = database.create_engine(
            settings.database_url, pool_size=2, pre_ping=False, overflow=False
        )
        # Fixed too: under a storm of handshakes, connections opened for a burst and closed
        # after it cost PostgreSQL a backend each, for a query of a millisecond.
        self.replay = ReplayReader(
            settings.database_url,
            settings.edge_database_connections,
            settings.replay_limit,
            settings.broadcast_unread_window,
            self.critical,
        )
        self.receipts = ReceiptRecorder(EventStore(self.engine))
        self.publisher = Publisher(settings, name=f"notify-edge {self.node_id} publisher")
        self.auth = Authenticator(settings)
        self.handshakes = HandshakeLimiter(
            settings.websocket_handshakes_per_second, 2 * settings.websocket_handshakes_per_second
        )
        self.refusals: Counter[str] = Counter()
        self.catch_up = CatchUp(self)
        self.cluster = Cluster(
            self.node_id,
            settings.edge_report_interval,
            self.broker.channel,
            self.broker.connection_queues,
            self.report,
            self.describe_user_connections,
        )
        self.metrics = edge_metrics.shared()
        self.sampler = edge_metrics.Sampler(self, self.metrics)
        self.accepted_total = 0
        self.frames_sent = 0
        self.broadcasts = 0
        self.last_seq = 0
        self._seen = RecentSeqs(SEEN_WINDOW)

    async def start(self) -> None:
        await database.check(self.engine)
        await self.replay.start()
        await self.broker.start(
            self.on_delivery, self.catch_up.connection_lost, self.catch_up.after_reconnect
        )
        self.receipts.start()
        await self.cluster.start()
        self.sampler.start()
        log.info("edge node %s consuming %s", self.node_id, self.broker.queue_name)

    async def stop(self) -> None:
        await self.sampler.stop()
        await self.registry.close()
        await self.cluster.stop()
        await self.receipts.stop()
        await self.publisher.close()
        await self.broker.close()
        await self.replay.close()
        await self.engine.dispose()

    # -- deliveries ------------------------------------------------------------------------

    def on_delivery(self, delivery: Delivery) -> None:
        frame = OutFrame(delivery.text)
        key = delivery.key
        if delivery.seq is None:
            self._relay_locally(key, frame, delivery.origin)
            return
        seq = delivery.seq
        if not self.seen(seq):
            return
        self.advance(seq)
        if key == topology.BROADCAST_KEY:
            self.broadcasts += 1
            targets: Iterable[Connection] = tuple(self.connections)
        else:
            targets = tuple(self.registry.members(key))
        self.fan_out(key, seq, frame, targets)

    def fan_out(
        self,
        key: str,
        seq: int,
        frame: OutFrame,
        targets: Iterable[Connection],
    ) -> None:
        broadcast = key == topology.BROADCAST_KEY
        sent = 0
        metrics = self.metrics
        if broadcast:
            counter = metrics.sent_broadcast
            preferences = self.preferences
            preferences.note_broadcast(seq)
            if preferences.active:
                # One decision per distinct set of preferences; none when nobody has any.
                held_back = preferences.held_back(frame)
                if held_back:
                    targets = [c for c in targets if c.user_id not in held_back]
        elif topology.is_user_key(key):
            if frame.text.startswith(NOTIFICATION_FRAME):
                counter = metrics.sent_notification
            else:  # a sync of the user's state: read, seen, archived, preferences...
                counter = metrics.sent_read
                if frame.text.startswith(PREFERENCES_FRAME):
                    self.preferences_changed(key, seq, frame)
        else:
            counter = metrics.sent_room
        if broadcast or topology.is_user_key(key):
            # Personal and broadcast notifications have per-user state: note who got it.
            reached: set[str] = set()
            for connection in targets:
                stream = connection.user_key if broadcast else key
                if connection.deliver(stream, seq, frame):
                    sent += 1
                    reached.add(connection.user_id)
            if reached:
                self.receipts.add(reached, seq)
        else:
            for connection in targets:
                sent += connection.deliver(key, seq, frame)
        self.frames_sent += sent
        if sent:
            counter.inc(sent)
        if log.isEnabledFor(logging.DEBUG):
            event_id = _event_id(frame.text)
            log.debug(
                "delivered event %s (seq %d) to %d sockets",
                event_id,
                seq,
                sent,
                extra=context(event_id=event_id, seq=seq, count=sent),
            )

    def preferences_changed(self, key: str, seq: int, frame: OutFrame) -> None:
        """A ``preferences`` sync for a user: hold the new preferences while the user has
        sockets here."""
        if not self.registry.members(key):
            return
        found = preferences_sync(frame.text)
        if found is not None:
            self.preferences.load(key[len(topology.USER_PREFIX) :], seq, found)

    async def rebind(self) -> int:
        """Bind every key with local members again (the broker connection was restored)."""
        return await self.registry.rebind()

    def advance(self, seq: int) -> None:
        """Everything up to ``seq`` reached this node (the catch-up's mark after a blip)."""
        self.last_seq = max(self.last_seq, seq)

    def seen(self, seq: int) -> bool:
        """Note a seq delivered to this node; False if it was already (a copy)."""
        return self._seen.add(seq)

    def _relay_locally(self, key: str, frame: OutFrame, origin: str | None) -> None:
        sent = 0
        for connection in tuple(self.registry.members(key)):
            if connection.connection_id != origin:
                connection.write(frame)
                sent += 1
        if sent:
            self.metrics.sent_room.inc(sent)

    # -- sockets ---------------------------------------------------------------------------

    async def attach(self, connection: Connection) -> None:
        """Register a socket and bind its user's key; returns once live frames reach it."""
        self.connections.add(connection)
        self.accepted_total += 1
        self.metrics.accepted.inc()
        await self._add(connection.user_key, connection)

    async def detach(self, connection: Connection) -> None:
        """Forget a socket: every key it was registered under, whatever state it ended in."""
        self.connections.discard(connection)
        for key in tuple(connection.registered):
            await self._remove(key, connection)
        if not self.registry.members(connection.user_key):
            self.preferences.forget(connection.user_id)

    def load_preferences(self, connection: Connection, seq: int, preferences: Preferences) -> None:
        """The user's preferences as a handshake's snapshot read them: held, and the
        broadcasts the socket held meanwhile decided by them."""
        user_id = connection.user_id
        self.preferences.load(user_id, seq, preferences)
        keep = self.preferences.keep_held(user_id)
        if keep is not None:
            connection.filter_held(connection.user_key, keep)

    async def join(self, connection: Connection, room: str) -> None:
        await self._add(topology.room_key(room), connection)

    async def leave(self, connection: Connection, room: str) -> None:
        connection.drop(topology.room_key(room))
        await self._remove(topology.room_key(room), connection)

    async def _add(self, key: str, connection: Connection) -> None:
        # Noted before the (awaited) bind, so that a detach racing with it still removes it.
        connection.registered.add(key)
        await self.registry.add(key, connection)

    async def _remove(self, key: str, connection: Connection) -> None:
        connection.registered.discard(key)
        try:
            await self.registry.remove(key, connection)
        except (AMQPError, ConnectionError, RuntimeError) as exc:
            # The broker is away: the binding goes with the queue, or is restored without a
            # member and its deliveries are dropped here. Cleanup goes on either way.
            log.debug("could not unbind %s: %s", key, exc)

    async def relay(self, connection: Connection, room: str, data: dict[str, Any]) -> None:
        text = encode_frame(
            {"type": "message", "room": room, "from": connection.user_id, "data": data}
        )
        await self.broker.relay(topology.room_key(room), text, connection.connection_id)

    # -- events published by the edge ------------------------------------------------------

    async def publish(self, event: Event) -> uuid.UUID:
        if isinstance(event, Envelope | ReadEvent):
            await self.publisher.publish(event)
        else:
            await self.publisher.publish(state_outgoing(event))
        return event.event_id

    # -- state -----------------------------------------------------------------------------

    def refuse(self, code: str) -> None:
        """Count a refusal (an unauthenticated or forbidden call, a limit hit), by its code."""
        self.refusals[code] += 1
        self.metrics.refusal(code)

    def report(self, leaving: bool = False) -> NodeReport:
        """This node's counts, users and rooms as of now, for the other nodes."""
        return NodeReport(
            node_id=self.node_id,
            at=time.time(),
            connections=len(self.connections),
            accepted_total=self.accepted_total,
            frames_sent=self.frames_sent,
            broadcasts=self.broadcasts,
            held_frames=sum(c.held_frames for c in self.holding),
            users=self.users(),
            rooms=self.rooms(),
            refusals=dict(self.refusals),
            leaving=leaving,
        )

    def describe_user_connections(self, user_id: str) -> list[dict[str, Any]]:
        return [describe(c, self.node_id) for c in self.user_connections(user_id)]

    def user_connections(self, user_id: str) -> list[Connection]:
        return sorted(
            self.registry.members(topology.user_key(user_id)), key=lambda c: c.connected_at
        )

    def rooms(self) -> dict[str, int]:
        prefix = len(topology.ROOM_PREFIX)
        return {
            key[prefix:]: len(self.registry.members(key))
            for key in self.registry.active_keys()
            if topology.is_room_key(key)
        }

    def counts(self) -> tuple[int, int]:
        """How many users and rooms have local sockets (for the metrics' sampler)."""
        active = self.registry.active
        return active[topology.USER_PREFIX.rstrip(".")], active[topology.ROOM_PREFIX.rstrip(".")]

    def users(self) -> list[str]:
        prefix = len(topology.USER_PREFIX)
        return [key[prefix:] for key in self.registry.active_keys() if topology.is_user_key(key)]

    def established(self, connection: Connection) -> OutFrame:
        return OutFrame(
            frames.connection_established(
                connection.connection_id,
                connection.user_id,
                self.settings.websocket_heartbeat_interval,
            )
        )

    @property
    def ready(self) -> bool:
        """Connected to RabbitMQ, with this connection's queue declared and consumed (not
        between the loss of a queue and the next one's declaration)."""
        return self.broker.connected and self.broker.queue_ready


def _event_id(text: str) -> str | None:
    """The event id of a delivery's frame (its ``id``; a read sync has none)."""
    try:
        found = orjson.loads(text).get("id")
    except (orjson.JSONDecodeError, AttributeError):
        return None
    return found if isinstance(found, str) else None


class RecentSeqs:
    """The last ``size`` seqs added, for telling a copy from a new delivery."""

    def __init__(self, size: int) -> None:
        self._order: deque[int] = deque()
        self._members: set[int] = set()
        self._size = size

    def add(self, seq: int) -> bool:
        """Remember ``seq``; False if it is among the remembered ones already."""
        if seq in self._members:
            return False
        self._order.append(seq)
        self._members.add(seq)
        if len(self._order) > self._size:
            self._members.discard(self._order.popleft())
        return True
