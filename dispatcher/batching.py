"""From the broker's frames to batches of messages.

``DeliveryTap`` assembles each delivery of the dispatcher's consumer (a ``Basic.Deliver``,
its content header and its body frames) into a ``Received`` the moment aiormq's connection
reader has decoded its frames, and hands it to a callback at once: no asyncio queue per frame,
no channel reader, no task per message, no aio-pika message object, which together were about
a third of a dispatcher's CPU. The frames it does not take (answers to the channel's own
methods, a broker's ``Basic.Cancel``, the channel closing) go on to aiormq's channel as
before (``dispatcher.routing.tap``).

Below that, ``FrameReader`` takes the place of aiormq's frame receiver in the dispatcher's
process (``read_frames_in_bulk``): it reads what the socket has in one call and cuts frames
out of it, and decodes the frames a dispatcher gets most (``Basic.Deliver``, ``Basic.Ack``,
content headers without a timestamp, body frames) with fixed layouts into the same pamqp
objects pamqp makes of them; any other frame is decoded by pamqp. It is an aiormq internal:
tests/unit/test_delivery_frames.py holds it to pamqp's decoding and to aiormq's receiver, and
tests/integration/test_dispatcher_contracts.py checks what aiormq's connection expects of it.

``Inbox`` holds the received messages in arrival order and cuts them into batches: at ``limit``
messages, or ``wait`` seconds after the first one, whichever comes first.
"""

from __future__ import annotations

import asyncio
import logging
import struct
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import aiormq
import aiormq.connection
import pamqp.decode
import pamqp.frame
from aiormq import spec
from aiormq.abc import DeliveredMessage
from aiormq.exceptions import AMQPConnectionError, InvalidFrameError, ProtocolSyntaxError
from pamqp.body import ContentBody
from pamqp.exceptions import PAMQPException
from pamqp.header import ContentHeader

from dispatcher.routing import tap
from producers.envelope import Event

log = logging.getLogger("notify.dispatcher")

T = TypeVar("T")

_DELIVER = spec.Basic.Deliver
_NO_HEADERS: dict[str, Any] = {}

# AMQP 0-9-1 frames (section 4.2.3): type, channel, size, payload, end octet.
_FRAME_HEAD = struct.Struct(">BHI").unpack_from
_METHOD_ID = struct.Struct(">I").unpack_from
_TAG_AND_BITS = struct.Struct(">qB").unpack_from
_CONTENT_HEAD = struct.Struct(">HHQH").unpack_from
_FRAME_METHOD, _FRAME_HEADER, _FRAME_BODY, _FRAME_END = 1, 2, 3, 0xCE
_DELIVER_ID = spec.Basic.Deliver.index
_ACK_ID = spec.Basic.Ack.index
_READ_SIZE = 1 << 16


def _short(data: bytes, at: int) -> tuple[str, int]:
    end = at + 1 + data[at]
    return data[at + 1 : end].decode(), end


def _deliver(data: bytes, at: int) -> spec.Basic.Deliver:
    frame = _DELIVER.__new__(_DELIVER)
    frame.consumer_tag, at = _short(data, at)
    tag, bits = _TAG_AND_BITS(data, at)
    frame.delivery_tag = tag
    frame.redelivered = bool(bits & 1)
    frame.exchange, at = _short(data, at + 9)
    frame.routing_key, _ = _short(data, at)
    return frame


def _ack(data: bytes, at: int) -> spec.Basic.Ack:
    tag, bits = _TAG_AND_BITS(data, at)
    return spec.Basic.Ack(tag, bool(bits & 1))


_PROPERTIES = spec.Basic.Properties
# Each property of a content header in wire order, with its flag and AMQP type; a header
# with a property of another type (a timestamp), or with more flags than fit in one word,
# is left to pamqp.
_PROPERTY_TYPES = [
    (name, _PROPERTIES.flags[name], getattr(_PROPERTIES, f"_{name}"))
    for name in _PROPERTIES.__slots__
]
_SIMPLE = ("shortstr", "octet", "table")
_SIMPLE_FLAGS = sum(flag for _, flag, kind in _PROPERTY_TYPES if kind in _SIMPLE)


def _content_header(data: bytes, start: int, end: int) -> ContentHeader | None:
    class_id, weight, body_size, flags = _CONTENT_HEAD(data, start)
    if flags & ~_SIMPLE_FLAGS:
        return None
    at = start + 14
    values: dict[str, Any] = {}
    for name, flag, kind in _PROPERTY_TYPES:
        if flags & flag:
            if kind == "shortstr":
                values[name], at = _short(data, at)
            elif kind == "octet":
                values[name] = data[at]
                at += 1
            else:
                used, values[name] = pamqp.decode.field_table(data[at:end])
                at += used
    if at > end:
        return None
    header = ContentHeader(weight, body_size, _PROPERTIES(**values))
    header.class_id = class_id
    return header


def decode(data: bytes, start: int, end: int) -> tuple[int, Any]:
    """The channel and frame of the complete frame ``data[start:end]``, as
    ``pamqp.frame.unmarshal`` gives them (``PAMQPException`` or ``ValueError`` for a frame
    it refuses)."""
    kind, channel, size = _FRAME_HEAD(data, start)
    if end - start != size + 8 or data[end - 1] != _FRAME_END:
        raise ValueError("not one frame")
    if kind == _FRAME_BODY and size:
        return channel, ContentBody(data[start + 7 : end - 1])
    if kind == _FRAME_METHOD and size >= 4:
        method = _METHOD_ID(data, start + 7)[0]
        try:
            if method == _DELIVER_ID:
                return channel, _deliver(data, start + 11)
            if method == _ACK_ID and size == 13:
                return channel, _ack(data, start + 11)
        except (IndexError, UnicodeDecodeError, struct.error):
            pass  # pamqp says what is wrong with it
    elif kind == _FRAME_HEADER and size >= 14:
        try:
            header = _content_header(data, start + 7, end - 1)
        except (IndexError, UnicodeDecodeError, ValueError, struct.error):
            header = None  # pamqp says what is wrong with it
        if header is not None:
            return channel, header
    _, channel, frame = pamqp.frame.unmarshal(data[start:end])
    return channel, frame


class FrameReader(aiormq.connection.FrameReceiver):
    """aiormq's frame receiver, reading the socket in bulk (module docstring): the same
    frames, the same weights (each frame's size on the wire) and the same errors."""

    def __init__(self, reader: asyncio.StreamReader) -> None:
        super().__init__(reader)
        self._data = b""
        self._at = 0

    async def get_frame(self) -> tuple[int, int, Any]:
        data, at = self._data, self._at
        while True:
            if len(data) - at >= 7:
                if not self.started:
                    if data.startswith(b"AMQP", at):
                        raise ProtocolSyntaxError("Unexpected AMQP protocol header")
                    self.started = True
                size = _FRAME_HEAD(data, at)[2]
                end = at + size + 8
                if len(data) >= end:
                    self._at = end
                    try:
                        channel, frame = decode(data, at, end)
                    except (PAMQPException, ValueError) as exc:
                        raise InvalidFrameError(str(exc)) from exc
                    return end - at, channel, frame
            elif at == len(data) and self.reader.at_eof():
                raise StopAsyncIteration
            more = await self._read()
            data = self._data = data[at:] + more
            at = self._at = 0

    async def _read(self) -> bytes:
        try:
            more = await self.reader.read(_READ_SIZE)
        except ConnectionError as exc:
            raise AMQPConnectionError(f"Server connection error: {exc!r}") from exc
        except OSError as exc:
            raise AMQPConnectionError(f"Server communication error: {exc!r}") from exc
        if not more:
            raise AMQPConnectionError(
                f"Server connection unexpectedly closed. Read {len(self._data) - self._at} "
                "bytes of a frame"
            )
        return more


def read_frames_in_bulk() -> None:
    """Make aiormq read every connection opened from now on in this process through
    ``FrameReader`` (its connect makes a ``FrameReceiver`` of the module's name)."""
    aiormq.connection.FrameReceiver = FrameReader  # type: ignore[misc]


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
