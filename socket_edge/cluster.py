"""What the edge processes know of each other, over RabbitMQ.

- Reports: every ``EDGE_REPORT_INTERVAL`` seconds each node publishes its counts, users and
  rooms to a fanout exchange; every node keeps the latest report of each other node and
  forgets a node whose report is older than three intervals (it died, or cannot reach the
  broker). Cluster-wide stats are the sum of the fresh reports, with their age.
- Questions: "which sockets does user U have?" is asked of every node at once (a fanout of
  requests, replies to this node's reply queue), answered by the nodes that reported lately.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import aio_pika
import orjson
from aio_pika.abc import AbstractChannel, AbstractExchange, AbstractIncomingMessage, ExchangeType
from aio_pika.exceptions import AMQPError

from dispatcher.records import timestamp
from producers import topology
from producers.waiting import cancel_and_wait, within
from socket_edge.connection_queues import ConnectionQueues, Declare

log = logging.getLogger("notify.edge")

STALE_AFTER_INTERVALS = 3
QUESTION_TIMEOUT = 1.0


@dataclass(frozen=True, slots=True)
class NodeReport:
    node_id: str
    at: float  # wall-clock time of the report (seconds since the epoch)
    connections: int
    accepted_total: int
    frames_sent: int
    broadcasts: int
    held_frames: int
    users: list[str] = field(default_factory=list)
    rooms: dict[str, int] = field(default_factory=dict)
    refusals: dict[str, int] = field(default_factory=dict)
    # The node's last report, sent as it stops: the others forget it at once instead of
    # counting it until its report goes stale.
    leaving: bool = False


# What the cluster asks of its node: a channel on its broker connection, queues that go with
# that connection and are declared anew on each (``socket_edge.connection_queues``), its report
# (as it leaves, or not), and the description of a user's sockets on it.
OpenChannel = Callable[[], Awaitable[AbstractChannel]]
OpenQueues = Callable[[Declare, str], Awaitable[ConnectionQueues]]
OwnReport = Callable[[bool], "NodeReport"]
LocalSockets = Callable[[str], list[dict[str, Any]]]


class Cluster:
    def __init__(
        self,
        node_id: str,
        interval: float,
        open_channel: OpenChannel,
        open_queues: OpenQueues,
        own_report: OwnReport,
        local_sockets: LocalSockets,
    ) -> None:
        self.node_id = node_id
        self.interval = interval
        self._open_channel = open_channel
        self._open_queues = open_queues
        self._queues: ConnectionQueues | None = None
        self._own_report = own_report
        self._local_sockets = local_sockets
        self._reports: dict[str, NodeReport] = {}
        self._channel: AbstractChannel | None = None
        self._stats: AbstractExchange | None = None
        self._control: AbstractExchange | None = None
        self._reply_to = ""
        self._waiting: dict[str, tuple[asyncio.Queue[list[dict[str, Any]]], int]] = {}
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        channel = self._channel = await self._open_channel()
        self._stats = await channel.declare_exchange(
            topology.EDGE_STATS_EXCHANGE, ExchangeType.FANOUT, durable=True
        )
        self._control = await channel.declare_exchange(
            topology.EDGE_CONTROL_EXCHANGE, ExchangeType.FANOUT, durable=True
        )
        self._queues = await self._open_queues(self._declare, "the cluster queues")
        await self._publish_report()
        self._task = asyncio.create_task(self._report_loop(), name="edge-reports")

    async def _declare(self, channel: AbstractChannel, generation: int) -> None:
        """This connection's queues, named by the broker: the reports of the other nodes,
        the questions to this one, and the replies to its own."""
        reports = await channel.declare_queue(exclusive=True, auto_delete=True)
        await reports.bind(topology.EDGE_STATS_EXCHANGE)
        await reports.consume(self._on_report, no_ack=True)
        questions = await channel.declare_queue(exclusive=True, auto_delete=True)
        await questions.bind(topology.EDGE_CONTROL_EXCHANGE)
        await questions.consume(self._on_question, no_ack=True)
        replies = await channel.declare_queue(exclusive=True, auto_delete=True)
        await replies.consume(self._on_reply, no_ack=True)
        self._reply_to = replies.name

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        if self._queues is not None:
            await self._queues.close()
        if self._stats is not None:
            try:
                await self._publish_report(leaving=True)
            except (AMQPError, ConnectionError, RuntimeError) as exc:
                # Without a broker the others forget this node when its report goes stale.
                log.debug("could not announce the node's departure: %s", exc)

    # -- reports ---------------------------------------------------------------------------

    def fresh_reports(self) -> list[NodeReport]:
        """This node's report, as of now, and the other nodes' latest fresh ones."""
        horizon = time.time() - STALE_AFTER_INTERVALS * self.interval
        for node_id in [n for n, r in self._reports.items() if r.at < horizon]:
            del self._reports[node_id]
        return [self._own_report(False), *self._reports.values()]

    async def _report_loop(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self._publish_report()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - the next report may go through
                log.warning("could not publish the node report: %s", exc)

    async def _publish_report(self, leaving: bool = False) -> None:
        assert self._stats is not None
        # orjson writes the dataclass itself: dataclasses.asdict would copy every user id of
        # the report first, tens of milliseconds with the event loop stopped at 10,000 users.
        body = orjson.dumps(self._own_report(leaving))
        await self._stats.publish(aio_pika.Message(body, expiration=self.interval * 2), "")

    async def _on_report(self, message: AbstractIncomingMessage) -> None:
        try:
            report = NodeReport(**orjson.loads(message.body))
        except (orjson.JSONDecodeError, TypeError) as exc:
            log.warning("ignoring a malformed node report: %s", exc)
            return
        if report.node_id == self.node_id:
            return
        if report.leaving:
            self._reports.pop(report.node_id, None)
        else:
            self._reports[report.node_id] = report

    # -- questions -------------------------------------------------------------------------

    async def user_connections(self, user_id: str) -> list[dict[str, Any]]:
        """Every socket of the user on every live node (those that reported lately)."""
        answers = self._local_sockets(user_id)
        others = len(self.fresh_reports()) - 1
        if others == 0:
            return answers
        assert self._control is not None
        correlation = uuid.uuid4().hex
        inbox: asyncio.Queue[list[dict[str, Any]]] = asyncio.Queue()
        self._waiting[correlation] = (inbox, others)
        try:
            await self._control.publish(
                aio_pika.Message(
                    orjson.dumps({"question": "user_connections", "user_id": user_id}),
                    correlation_id=correlation,
                    reply_to=self._reply_to,
                    app_id=self.node_id,
                    expiration=QUESTION_TIMEOUT,
                ),
                "",
            )
            deadline = asyncio.get_running_loop().time() + QUESTION_TIMEOUT
            for _ in range(others):
                remaining = deadline - asyncio.get_running_loop().time()
                try:
                    answers.extend(await within(inbox.get(), max(remaining, 0)))
                except TimeoutError:
                    break
        finally:
            del self._waiting[correlation]
        # By time, not by text: a timestamp on a whole second has no fraction.
        return sorted(answers, key=lambda a: datetime.fromisoformat(str(a["connected_at"])))

    async def _on_question(self, message: AbstractIncomingMessage) -> None:
        if message.app_id == self.node_id or not message.reply_to:
            return
        try:
            question = orjson.loads(message.body)
            user_id = str(question["user_id"])
        except (orjson.JSONDecodeError, KeyError, TypeError):
            return
        answer = self._local_sockets(user_id)
        assert self._channel is not None
        await self._channel.default_exchange.publish(
            aio_pika.Message(orjson.dumps(answer), correlation_id=message.correlation_id),
            routing_key=message.reply_to,
        )

    async def _on_reply(self, message: AbstractIncomingMessage) -> None:
        waiting = self._waiting.get(message.correlation_id or "")
        if waiting is not None:
            waiting[0].put_nowait(orjson.loads(message.body))


def describe(connection: Any, node_id: str) -> dict[str, Any]:
    return {
        "connection_id": connection.connection_id,
        "user_id": connection.user_id,
        "device_type": connection.device_type,
        "app_version": connection.app_version,
        "remote_address": connection.remote_address,
        "connected_at": timestamp(connection.connected_at),
        "last_seen": timestamp(connection.last_seen),
        "rooms": connection.rooms,
        "writer": connection.writer,
        "node_id": node_id,
    }
