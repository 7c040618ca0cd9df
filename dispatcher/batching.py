"""From the broker's frames to batches of messages.

``DeliveryTap`` assembles each delivery of the dispatcher's consumer (a ``Basic.Deliver``,
its content header and its body frames) into a ``Received`` the moment aiormq's connection
reader has decoded its frames, and hands it to a callback at once: no asyncio queue per frame,
no channel reader, no task per message, no aio-pika message object, which together were about
a third of a dispatcher's CPU. The frames it does not take (answers to the channel's own
methods, a broker's ``Basic.Cancel``, the channel closing) go on to aiormq's channel as
before (``dispatcher.routing.tap``).

``Inbox`` holds the received messages in arrival order and cuts them into batches: at ``limit``
messages, or ``wait`` seconds after the first one, whichever comes first.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import aiormq
from aiormq import spec
from aiormq.abc import DeliveredMessage
from pamqp.body import ContentBody
from pamqp.header import ContentHeader

from dispatcher.routing import tap
from producers.envelope import Event

log = logging.getLogger("notify.dispatcher")

T = TypeVar("T")

_DELIVER = spec.Basic.Deliver
_NO_HEADERS: dict[str, Any] = {}


class Received:
    """One message of the dispatcher's queue, as the dispatcher uses it: its body and
    properties, and how to settle it on the channel that delivered it. ``event`` and
    ``refusal`` hold its validation when it was done on arrival (``Dispatcher.received``)."""

    __slots__ = (
        "body",
        "channel",
        "delivery_tag",
        "event",
        "properties",
        "refusal",
        "routing_key",
    )

    def __init__(
        self,
        channel: aiormq.abc.AbstractChannel,
        delivery_tag: int,
        routing_key: str,
        body: bytes,
        properties: spec.Basic.Properties,
    ) -> None:
        self.channel = channel
        self.delivery_tag = delivery_tag
        self.routing_key = routing_key
        self.body = body
        self.properties = properties
        self.event: Event | None = None
        self.refusal: str | None = None

    @classmethod
    def of(cls, message: DeliveredMessage) -> Received:
        """A message that reached aiormq's own consumer callback instead of the tap."""
        assert message.channel is not None and message.delivery_tag is not None
        return cls(
            message.channel,
            message.delivery_tag,
            message.routing_key or "",
            message.body,
            message.header.properties,
        )

    @property
    def headers(self) -> dict[str, Any]:
        return self.properties.headers or _NO_HEADERS

    @property
    def message_id(self) -> str | None:
        return self.properties.message_id

    @property
    def content_type(self) -> str | None:
        return self.properties.content_type

    @property
    def type(self) -> str | None:
        return self.properties.message_type

    @property
    def app_id(self) -> str | None:
        return self.properties.app_id

    async def ack(self, multiple: bool = False) -> None:
        """Acknowledge this message (and with ``multiple`` every earlier one of its channel);
        raises if its channel is closed: the broker has returned it to the queue."""
        await self.channel.basic_ack(self.delivery_tag, multiple=multiple, wait=False)

    async def nack(self, requeue: bool = True) -> None:
        await self.channel.basic_nack(self.delivery_tag, requeue=requeue, wait=False)


class DeliveryTap:
    """Takes the deliveries of consumer ``tag`` out of ``underlay``'s frames (module
    docstring) and calls ``on_message`` with each, in the order the broker sent them."""

    def __init__(
        self,
        underlay: aiormq.Channel,
        tag: str,
        on_message: Callable[[Received], None],
    ) -> None:
        self.underlay = underlay
        self.tag = tag
        self.on_message = on_message
        self._deliver: spec.Basic.Deliver | None = None
        self._header: ContentHeader | None = None
        self._parts: list[bytes] = []
        self._size = 0
        tap(underlay, self._on_frame)

    def _on_frame(self, frame: object) -> bool:
        deliver = self._deliver
        if deliver is None:
            if type(frame) is _DELIVER and frame.consumer_tag == self.tag:
                self._deliver = frame
                return True
            return False
        header = self._header
        if header is None:
            if type(frame) is not ContentHeader:
                return self._lost(frame)
            self._header = header = frame
            if not header.body_size:
                self._complete(deliver, header, b"")
            return True
        if type(frame) is not ContentBody:
            return self._lost(frame)
        value = frame.value
        self._size += len(value)
        if self._size < header.body_size:
            self._parts.append(value)
            return True
        if self._parts:
            self._parts.append(value)
            value = b"".join(self._parts)
        self._complete(deliver, header, value)
        return True

    def _complete(self, deliver: spec.Basic.Deliver, header: ContentHeader, body: bytes) -> None:
        self._deliver = self._header = None
        self._parts = []
        self._size = 0
        assert deliver.delivery_tag is not None
        message = Received(
            self.underlay, deliver.delivery_tag, deliver.routing_key or "", body, header.properties
        )
        self.on_message(message)

    def _lost(self, frame: object) -> bool:
        """A frame that cannot follow the content being read (which AMQP forbids): the broker
        redelivers the message cut short once the channel closes; the frame goes on."""
        log.error("unexpected frame %r inside a delivery's content; delivery dropped", frame)
        self._deliver = self._header = None
        self._parts = []
        self._size = 0
        return False


@dataclass
class Batch(Generic[T]):
    items: list[T]
    last: bool  # the inbox was closed: no batch follows this one


class Inbox(Generic[T]):
    """Messages in arrival order, taken in batches by one consumer."""

    def __init__(self) -> None:
        self._items: deque[T] = deque()
        self._closed = False
        self._waiter: asyncio.Future[None] | None = None

    def put(self, item: T) -> None:
        self._items.append(item)
        self._wake()

    def extend(self, items: Sequence[T]) -> None:
        self._items.extend(items)
        self._wake()

    def close(self) -> None:
        """No item follows: the batch in hand is the last one."""
        self._closed = True
        self._wake()

    def empty(self) -> bool:
        return not self._items

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def _arrival(self, timeout: float | None) -> bool:
        """Wait for an item or the close; False if ``timeout`` passed first."""
        self._waiter = asyncio.get_running_loop().create_future()
        try:
            async with asyncio.timeout(timeout):
                await self._waiter
        except TimeoutError:
            return False
        finally:
            self._waiter = None
        return True

    async def next_batch(self, limit: int, wait: float) -> Batch[T] | None:
        """The next batch; None once the inbox is closed and empty. Waits for the first item
        without a deadline, then at most ``wait`` seconds for the batch to fill."""
        items = self._items
        while not items:
            if self._closed:
                return None
            await self._arrival(None)
        if wait > 0 and len(items) < limit and not self._closed:
            loop = asyncio.get_running_loop()
            deadline = loop.time() + wait
            while len(items) < limit and not self._closed:
                remaining = deadline - loop.time()
                if remaining <= 0 or not await self._arrival(remaining):
                    break
        count = min(limit, len(items))
        batch = [items.popleft() for _ in range(count)]
        return Batch(batch, last=self._closed and not items)
