"""The dead-letter queue: what lands there, and the operator's ``list`` and ``replay``.

Two paths lead there: the dispatcher refuses an invalid event (or one that failed to store on
its last allowed delivery) and re-publishes it with the reason in ``x-notify-error``; or
RabbitMQ itself dead-letters a message returned ``DISPATCHER_DELIVERY_LIMIT`` times (its
``x-death`` header says so). Either way the message keeps its body and its original routing
key, so ``replay`` can put it back on ``notifications.events`` as it was first published.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any, Protocol

import aio_pika
import orjson
from aio_pika.abc import AbstractExchange, AbstractIncomingMessage, AbstractQueue

from producers import topology
from producers.broker import connect

REASON_MAX = 1000
PREVIEW_MAX = 200
# Headers that describe a past failure; a replayed message starts afresh without them.
FAILURE_HEADERS = frozenset(
    {
        topology.ERROR_HEADER,
        topology.ORIGINAL_KEY_HEADER,
        "x-death",
        "x-delivery-count",
        "x-first-death-exchange",
        "x-first-death-queue",
        "x-first-death-reason",
        "x-last-death-exchange",
        "x-last-death-queue",
        "x-last-death-reason",
    }
)


class Letter(Protocol):
    """What is read of a message to describe it, dead-letter it or replay it: an aio-pika
    message, or one the dispatcher took from its queue (``dispatcher.batching.Received``)."""

    @property
    def body(self) -> bytes: ...
    @property
    def headers(self) -> Any: ...
    @property
    def routing_key(self) -> str | None: ...
    @property
    def content_type(self) -> str | None: ...
    @property
    def message_id(self) -> str | None: ...
    @property
    def type(self) -> str | None: ...
    @property
    def app_id(self) -> str | None: ...


@dataclass(frozen=True, slots=True)
class DeadLetter:
    id: str
    routing_key: str
    reason: str
    preview: str


def original_key(message: Letter) -> str:
    key = (message.headers or {}).get(topology.ORIGINAL_KEY_HEADER)
    return key if isinstance(key, str) and key else message.routing_key or ""


def letter_id(message: Letter) -> str:
    """The message_id the producer gave, else the body's event_id, else a digest of the
    body: a name an operator can pass to ``replay --id``."""
    if message.message_id:
        return message.message_id
    try:
        body = orjson.loads(message.body)
    except orjson.JSONDecodeError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("event_id"), str):
        return str(body["event_id"])
    return "sha256:" + hashlib.sha256(message.body).hexdigest()[:16]


def reason_of(message: Letter) -> str:
    headers = message.headers or {}
    reason = headers.get(topology.ERROR_HEADER)
    if isinstance(reason, str | bytes):
        return reason.decode() if isinstance(reason, bytes) else reason
    death = headers.get("x-last-death-reason") or headers.get("x-first-death-reason")
    if death:
        return f"dead-lettered by RabbitMQ ({death!s})"
    return "no reason recorded"


def describe(message: Letter) -> DeadLetter:
    preview = message.body[:PREVIEW_MAX].decode(errors="replace")
    return DeadLetter(letter_id(message), original_key(message), reason_of(message), preview)


def refused(message: Letter, reason: str) -> aio_pika.Message:
    """The dead-letter copy of a refused message: same body and properties, plus why."""
    headers: dict[str, Any] = dict(message.headers or {})
    headers[topology.ERROR_HEADER] = reason[:REASON_MAX]
    headers[topology.ORIGINAL_KEY_HEADER] = message.routing_key or ""
    return _copy(message, headers)


def replayed(message: Letter) -> aio_pika.Message:
    """The message as first published: failure headers removed."""
    headers = {k: v for k, v in (message.headers or {}).items() if k not in FAILURE_HEADERS}
    return _copy(message, headers)


def _copy(message: Letter, headers: dict[str, Any]) -> aio_pika.Message:
    """A persistent copy of ``message`` (body and properties) with these headers."""
    return aio_pika.Message(
        body=message.body,
        headers=headers,
        content_type=message.content_type,
        message_id=message.message_id,
        type=message.type,
        app_id=message.app_id,
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
    )


async def publish_refused(exchange: AbstractExchange, message: Letter, reason: str) -> None:
    await exchange.publish(refused(message, reason), routing_key=message.routing_key or "")


async def _take(queue: AbstractQueue, limit: int) -> list[AbstractIncomingMessage]:
    """Up to ``limit`` messages, unacknowledged: whatever is not acked goes back to the queue
    when the channel closes."""
    taken: list[AbstractIncomingMessage] = []
    while len(taken) < limit:
        message = await queue.get(no_ack=False, fail=False)
        if message is None:
            break
        taken.append(message)
    return taken


async def list_dead_letters(amqp_url: str, limit: int) -> list[DeadLetter]:
    """The first ``limit`` dead letters; the queue is left as it was."""
    connection = await connect(amqp_url, "notify dead-letters list")
    try:
        channel = await connection.channel()
        _, queue = await topology.declare_dead_letter(channel)
        return [describe(m) for m in await _take(queue, limit)]
    finally:
        await connection.close()


async def replay_dead_letters(amqp_url: str, ids: Collection[str], limit: int) -> list[str]:
    """Re-publish the dead letters named by ``ids`` (every one when empty) to the events
    exchange under their original routing keys, confirmed, and only then remove them from the
    dead-letter queue. Returns the ids replayed."""
    connection = await connect(amqp_url, "notify dead-letters replay")
    try:
        channel = await connection.channel(publisher_confirms=True)
        _, queue = await topology.declare_dead_letter(channel)
        events = await topology.declare_events_exchange(channel)
        done: list[str] = []
        for message in await _take(queue, limit):
            name = letter_id(message)
            if ids and name not in ids:
                continue
            await events.publish(replayed(message), routing_key=original_key(message))
            await message.ack()
            done.append(name)
        return done
    finally:
        await connection.close()
