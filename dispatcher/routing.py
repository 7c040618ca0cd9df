"""Publishing a committed batch's deliveries to ``notifications.deliver``.

aio-pika's ``Exchange.publish`` hands each message to the connection's writer on its own and
waits for it to be flushed: one event-loop round trip and one socket write per message, which
was the largest cost of a batch. Here the frames of every message of the batch
(``Basic.Publish``, header, body, what ``basic_publish`` sends) are encoded into one buffer
(``encode``, a few fixed layouts instead of pamqp's general marshaller) and written to the
channel at once: one write per batch.

The channel is in confirm mode. ``send`` writes a batch and returns its ``Confirms`` without
waiting: one dispatcher's batches keep their order on its channel, so a dispatcher waits for
the confirms only before it hands the routing lock on. A transient message is confirmed once
it is in each queue it was routed to, so the next dispatcher's batches cannot overtake these
(``dispatcher.store``, "Routing in log order").

"One dispatcher's batches keep their order on its channel" holds only while that channel
lasts. When the connection is lost, what it had not delivered is gone, and the robust
connection comes back (on the same node or, with ``FailoverConnection``, on another) with a
new channel: a batch written there would reach the edges ahead of the lost ones, which the
next routing turn sends again from the routing mark. So ``send`` is given the turn's previous
send (``after``) and writes nothing unless that one is confirmed already, or went out on the
channel in use now, still open, with nothing of it refused.

A batch's confirms are counted by a ``ConfirmTracker``, one future per batch, not by aiormq,
which keeps one future per delivery tag and runs each confirm frame through its channel's
queue and reader. The tracker takes the ``Basic.Ack`` and ``Basic.Nack`` frames of its channel
as the connection's reader hands them over (``tap``), whether RabbitMQ confirms one tag or
every tag up to one (``multiple``), in any order. The batch's future belongs to aiormq's
channel, so a channel or connection that closes first fails it, as it fails aiormq's own.

That reaches into aiormq's channel (``delivery_tag``, ``confirmations``, ``write_queue``,
``lock``, ``frames``) and into how its connection hands a channel its frames, which is not its
public API: the dispatcher refuses to start with an aiormq outside the versions it was checked
against (``AIORMQ_CHECKED``, matching the pin in pyproject.toml), and
tests/integration/test_dependency_contracts.py and test_dispatcher_contracts.py check each of
them on a real channel.
"""

from __future__ import annotations

import asyncio
import struct
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

import aiormq
from aio_pika.abc import AbstractChannel
from aiormq import spec
from aiormq.abc import ChannelFrame, FrameType
from pamqp.body import ContentBody
from pamqp.header import ContentHeader

from dispatcher.failures import BROKER_FAILURES, broker_cancelled, one_line
from dispatcher.records import Delivery
from producers import topology
from producers.runner import version_in

AIORMQ_CHECKED = ((7, 2), (8,))
if not version_in("aiormq", *AIORMQ_CHECKED):
    raise ImportError(
        "dispatcher.routing writes to aiormq's channel internals and was checked with aiormq "
        ">=7.2,<8 (the range pyproject.toml pins); install a version in that range"
    )

NOT_PERSISTENT = 1
CONFIRM_TIMEOUT = 10.0


def _frames(delivery: Delivery, max_body: int) -> Iterator[FrameType]:
    """The frames of one delivery as pamqp makes them: what ``encode`` writes faster, and
    what its test holds it to."""
    properties = spec.Basic.Properties(
        content_type="application/json",
        delivery_mode=NOT_PERSISTENT,
        headers={topology.SEQ_HEADER: delivery.seq},
    )
    yield spec.Basic.Publish(
        exchange=topology.DELIVER_EXCHANGE, routing_key=delivery.routing_key, mandatory=False
    )
    yield ContentHeader(properties=properties, body_size=len(delivery.body))
    for start in range(0, len(delivery.body), max_body):
        yield ContentBody(delivery.body[start : start + max_body])


# AMQP 0-9-1 framing (section 2.3.5 and 4.2.6 of the specification): type, channel, size,
# payload, end octet.
_FRAME_METHOD, _FRAME_HEADER, _FRAME_BODY, _FRAME_END = 1, 2, 3, b"\xce"
_BASIC, _PUBLISH = 60, 40
# content_type, headers and delivery_mode present, in the order of their flag bits.
_FLAGS = (1 << 15) | (1 << 13) | (1 << 12)
_CONTENT_TYPE = b"\x10application/json"
_SEQ_FIELD = bytes([len(topology.SEQ_HEADER)]) + topology.SEQ_HEADER.encode() + b"l"
_frame_head = struct.Struct(">BHI").pack
_publish_head = struct.Struct(">HHH").pack(_BASIC, _PUBLISH, 0)
_exchange = bytes([len(topology.DELIVER_EXCHANGE)]) + topology.DELIVER_EXCHANGE.encode()
_header = struct.Struct(">HHQH").pack


def encode(deliveries: Sequence[Delivery], channel: int, max_body: int) -> bytes:
    """The frames of ``deliveries`` (a Basic.Publish, its content header, its body frames)
    as one buffer: the bytes pamqp's general marshaller makes of ``_frames``, written with a
    few fixed layouts, which were a sixth of a dispatcher's CPU through pamqp."""
    out: list[bytes] = []
    for delivery in deliveries:
        key = delivery.routing_key.encode()
        method = _publish_head + _exchange + bytes([len(key)]) + key + b"\x00"
        out += (_frame_head(_FRAME_METHOD, channel, len(method)), method, _FRAME_END)
        body = delivery.body
        table = _SEQ_FIELD + struct.pack(">q", delivery.seq)
        header = (
            _header(_BASIC, 0, len(body), _FLAGS)
            + _CONTENT_TYPE
            + struct.pack(">I", len(table))
            + table
            + bytes([NOT_PERSISTENT])
        )
        out += (_frame_head(_FRAME_HEADER, channel, len(header)), header, _FRAME_END)
        for start in range(0, len(body), max_body):
            chunk = body[start : start + max_body]
            out += (_frame_head(_FRAME_BODY, channel, len(chunk)), chunk, _FRAME_END)
    return b"".join(out)


class NotDelivered(Exception):
    """The broker may not have some of the deliveries: they are sent again later."""


@contextmanager
def _not_delivered() -> Iterator[None]:
    try:
        yield
    except BROKER_FAILURES as exc:
        if isinstance(exc, asyncio.CancelledError) and not broker_cancelled(exc):
            raise
        raise NotDelivered(one_line(exc)) from exc


class Confirms:
    """RabbitMQ's confirms of one batch of deliveries, to be awaited later; ``underlay`` is
    the channel the batch went out on."""

    def __init__(
        self, futures: Sequence[asyncio.Future[object]], underlay: aiormq.Channel | None = None
    ) -> None:
        self._futures = futures
        self.underlay = underlay

    def confirmed(self) -> bool:
        """Whether RabbitMQ has already confirmed every delivery of the batch."""
        return all(
            future.done() and not future.cancelled() and future.exception() is None
            for future in self._futures
        )

    def lost(self) -> bool:
        """Whether some delivery of the batch is known not to have reached the broker, or may
        not have: refused (a nack), or its channel closed before every confirm came."""
        for future in self._futures:
            if future.done() and (future.cancelled() or future.exception() is not None):
                return True
        underlay = self.underlay
        if underlay is None or not underlay.is_closed:
            return False
        return not all(future.done() for future in self._futures)

    async def wait(self) -> None:
        """Return once every delivery is confirmed; raise ``NotDelivered`` on a nack, a
        channel or connection closed first, or no confirm within ``CONFIRM_TIMEOUT``."""
        if not self._futures:
            return
        with _not_delivered():
            async with asyncio.timeout(CONFIRM_TIMEOUT):
                outcomes = await asyncio.gather(*self._futures, return_exceptions=True)
            for outcome in outcomes:
                if isinstance(outcome, BaseException):
                    raise outcome


def tap(underlay: aiormq.Channel, take: Callable[[object], bool]) -> None:
    """Show ``take`` each frame that aiormq's connection reader hands to ``underlay``, before
    the channel's own reader gets it; a frame for which ``take`` returns True goes no further.

    The reader hands a channel its frames by awaiting ``channel.frames.put``; ``put`` is
    replaced on that one queue object, so the channel's reader, waiting on the same queue,
    gets every frame ``take`` leaves, in order. ``take`` runs in the reader's task and must
    not raise. Taps stack: the last one installed sees a frame first."""
    frames = underlay.frames
    put = frames.put

    async def handed(item: tuple[int, object]) -> None:
        if not take(item[1]):
            await put(item)

    frames.put = handed  # type: ignore[method-assign]


class _Outstanding:
    """The delivery tags ``first``..``last`` of one batch: every tag below ``low`` is
    confirmed, and so is each tag in ``singles``."""

    __slots__ = ("first", "future", "last", "low", "singles")

    def __init__(self, first: int, last: int, future: asyncio.Future[object]) -> None:
        self.first = first
        self.last = last
        self.low = first
        self.singles: set[int] = set()
        self.future = future

    def complete(self) -> bool:
        return len(self.singles) > self.last - self.low


_ACK = spec.Basic.Ack
_NACK = spec.Basic.Nack


class ConfirmTracker:
    """The confirms of a confirming channel's batches, one future per batch (module
    docstring). Tags that aiormq registered itself (a ``basic_publish`` on the same channel)
    are left to aiormq: a confirm frame goes on to its reader while it waits for any."""

    def __init__(self, underlay: aiormq.Channel) -> None:
        self.underlay = underlay
        self._open: list[_Outstanding] = []
        tap(underlay, self._on_frame)

    def expect(self, first: int, last: int) -> asyncio.Future[object]:
        """A future that is done once RabbitMQ confirmed every tag from ``first`` to
        ``last``, failed if it refused one (a nack) or the channel closed."""
        future: asyncio.Future[object] = self.underlay.create_future()
        self._open.append(_Outstanding(first, last, future))
        return future

    def _on_frame(self, frame: object) -> bool:
        kind = type(frame)
        if kind is _ACK:
            self._settle(frame.delivery_tag, frame.multiple, None)  # type: ignore[attr-defined]
        elif kind is _NACK:
            self._settle(frame.delivery_tag, frame.multiple, frame)  # type: ignore[attr-defined]
        else:
            return False
        return not self.underlay.confirmations

    def _settle(self, tag: int, multiple: bool, nack: object | None) -> None:
        still: list[_Outstanding] = []
        for batch in self._open:
            if batch.future.done():
                continue
            if batch.first > tag or (not multiple and tag > batch.last):
                still.append(batch)
                continue
            if nack is not None:
                batch.future.set_exception(aiormq.exceptions.DeliveryError(None, nack))  # type: ignore[arg-type]
                continue
            if multiple:
                if tag >= batch.last:
                    batch.future.set_result(None)
                    continue
                if tag >= batch.low:
                    batch.low = tag + 1
                    batch.singles = {t for t in batch.singles if t > tag}
            elif tag >= batch.low:
                batch.singles.add(tag)
            if batch.complete():
                batch.future.set_result(None)
                continue
            still.append(batch)
        self._open = still


async def write_at_once(underlay: aiormq.Channel, frames: Sequence[FrameType]) -> None:
    """Write ``frames`` to the channel as one piece, under the channel's lock, as aiormq's own
    methods write theirs; raise if the channel is closed (no frame goes out on it then)."""
    async with underlay.lock:
        if underlay.is_closed:
            raise aiormq.exceptions.ChannelInvalidStateError("the channel is closed")
        await underlay.write_queue.put(ChannelFrame.marshall(underlay.number, frames))


class DeliveryRoute:
    def __init__(self, channel: AbstractChannel) -> None:
        self.channel = channel
        self._tracker: ConfirmTracker | None = None

    async def send(self, deliveries: Sequence[Delivery], after: object = None) -> Confirms:
        """Write the deliveries to the channel, in log order, without waiting for RabbitMQ;
        the returned ``Confirms`` says when it has them all. Raises ``NotDelivered`` if the
        channel is closed.

        ``after`` is the caller's earlier send whose confirms it has not awaited yet: these
        deliveries must reach the broker only behind it. Unless RabbitMQ confirmed it
        already, they are written only if it went out on the very channel in use now, which
        is still open, and nothing of it was refused; else ``NotDelivered``, and nothing is
        written (module docstring)."""
        if not deliveries:
            return Confirms(())
        with _not_delivered():
            return await self._send(deliveries, after)

    def _tracker_of(self, underlay: aiormq.Channel) -> ConfirmTracker:
        """The tracker of ``underlay``: a new one for each channel aio-pika opens (the first
        after a reconnect starts its delivery tags again at 1)."""
        tracker = self._tracker
        if tracker is None or tracker.underlay is not underlay:
            tracker = self._tracker = ConfirmTracker(underlay)
        return tracker

    async def _send(self, deliveries: Sequence[Delivery], after: object) -> Confirms:
        underlay = await self.channel.get_underlay_channel()
        assert isinstance(underlay, aiormq.Channel) and underlay.publisher_confirms
        tracker = self._tracker_of(underlay)
        payload = encode(deliveries, underlay.number, underlay.max_content_size)
        async with underlay.lock:
            # Checked under the lock, with nothing awaited before the write.
            if isinstance(after, Confirms) and not after.confirmed():
                if after.underlay is not None and after.underlay is not underlay:
                    raise NotDelivered(
                        "the channel that carried the earlier deliveries unconfirmed was lost"
                    )
                if after.lost():
                    raise NotDelivered("the earlier deliveries did not all reach the broker")
            first = underlay.delivery_tag + 1
            underlay.delivery_tag += len(deliveries)
            confirmed = tracker.expect(first, underlay.delivery_tag)
            try:
                await underlay.write_queue.put(ChannelFrame(payload=payload, should_close=False))
            except BaseException:
                underlay.delivery_tag = first - 1  # nothing went out: the tags are free again
                confirmed.cancel()
                raise
        return Confirms((confirmed,), underlay)
