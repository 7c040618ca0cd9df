"""The RabbitMQ exchanges and queues of docs/architecture.md, named and declared in one place.

Declaring is idempotent, so every process declares what it uses on start; the arguments must
be the same everywhere or RabbitMQ refuses the second declaration (PRECONDITION_FAILED), which
is why they live here and nowhere else.
"""

from __future__ import annotations

from aio_pika.abc import (
    AbstractChannel,
    AbstractExchange,
    AbstractQueue,
    ExchangeType,
)

EVENTS_EXCHANGE = "notifications.events"
DISPATCHER_QUEUE = "notifications.dispatcher"
DEAD_LETTER_EXCHANGE = "notifications.dead-letter"
DEAD_LETTER_QUEUE = "notifications.dead-letter"
DELIVER_EXCHANGE = "notifications.deliver"
EDGE_QUEUE_PREFIX = "notifications.edge."
# Edge processes tell each other their counts (fanout of periodic node reports) ...
EDGE_STATS_EXCHANGE = "notifications.edge-stats"
# ... and answer questions about their sockets (fanout of requests, replies to reply_to).
EDGE_CONTROL_EXCHANGE = "notifications.edge-control"

# Header on a dead-lettered message: why it was refused.
ERROR_HEADER = "x-notify-error"
# Header on a dead-lettered message: the routing key it was published with.
ORIGINAL_KEY_HEADER = "x-notify-original-routing-key"
# Header on a delivery message: the notification's position in the event log.
SEQ_HEADER = "x-notify-seq"
# Header on a room message relayed between sockets: the connection that sent it.
ORIGIN_HEADER = "x-notify-origin"

BROADCAST_KEY = "broadcast"
USER_PREFIX = "user."
ROOM_PREFIX = "room."


def user_key(user_id: str) -> str:
    return f"{USER_PREFIX}{user_id}"


def room_key(room: str) -> str:
    return f"{ROOM_PREFIX}{room}"


def is_user_key(key: str) -> bool:
    return key.startswith(USER_PREFIX)


def is_room_key(key: str) -> bool:
    return key.startswith(ROOM_PREFIX)


def edge_queue_name(node_id: str) -> str:
    return f"{EDGE_QUEUE_PREFIX}{node_id}"


async def declare_events_exchange(channel: AbstractChannel) -> AbstractExchange:
    return await channel.declare_exchange(EVENTS_EXCHANGE, ExchangeType.TOPIC, durable=True)


async def declare_deliver_exchange(channel: AbstractChannel) -> AbstractExchange:
    return await channel.declare_exchange(DELIVER_EXCHANGE, ExchangeType.TOPIC, durable=True)


async def declare_dead_letter(channel: AbstractChannel) -> tuple[AbstractExchange, AbstractQueue]:
    exchange = await channel.declare_exchange(
        DEAD_LETTER_EXCHANGE, ExchangeType.FANOUT, durable=True
    )
    queue = await channel.declare_queue(
        DEAD_LETTER_QUEUE, durable=True, arguments={"x-queue-type": "quorum"}
    )
    await queue.bind(exchange)
    return exchange, queue


async def declare_dispatcher_queue(channel: AbstractChannel, delivery_limit: int) -> AbstractQueue:
    """The dispatcher's work queue, bound to every event type, with its dead-letter route.

    A quorum queue counts deliveries; once a message has been returned ``delivery_limit``
    times (a handler crash, a dispatcher killed mid-batch) RabbitMQ dead-letters it instead
    of redelivering it for ever.
    """
    events = await declare_events_exchange(channel)
    await declare_dead_letter(channel)
    queue = await channel.declare_queue(
        DISPATCHER_QUEUE,
        durable=True,
        arguments={
            "x-queue-type": "quorum",
            "x-delivery-limit": delivery_limit,
            "x-dead-letter-exchange": DEAD_LETTER_EXCHANGE,
        },
    )
    await queue.bind(events, routing_key="#")
    return queue
