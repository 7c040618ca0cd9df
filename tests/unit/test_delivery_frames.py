"""The dispatcher writes its deliveries' AMQP frames itself (dispatcher.routing.encode): for
any delivery and frame size, the frames read back exactly as those pamqp makes of the same
delivery (the method, the content header with its properties, the body frames). And it reads
the frames of its connection itself (dispatcher.batching.FrameReader): for any frame, and any
way its bytes arrive, it hands aiormq's connection what aiormq's own receiver would."""

from __future__ import annotations

import asyncio
import itertools
from datetime import datetime
from typing import Any

import pamqp.frame
import pytest
from aiormq.connection import FrameReceiver
from aiormq.exceptions import AMQPConnectionError, ProtocolSyntaxError
from hypothesis import given, settings
from hypothesis import strategies as st
from pamqp import commands
from pamqp.body import ContentBody
from pamqp.exceptions import PAMQPException
from pamqp.header import ContentHeader
from pamqp.heartbeat import Heartbeat

from dispatcher import batching
from dispatcher.records import Delivery
from dispatcher.routing import _frames, encode
from producers.envelope import SEQ_MAX


def read_back(data: bytes) -> list[tuple[int, Any]]:
    """Every frame in ``data``, as (channel, what it says)."""
    frames: list[tuple[int, Any]] = []
    while data:
        used, channel, frame = pamqp.frame.unmarshal(data)
        data = data[used:]
        if isinstance(frame, commands.Basic.Publish):
            said: Any = ("publish", frame.exchange, frame.routing_key, frame.mandatory,
                         frame.immediate)  # fmt: skip
        elif isinstance(frame, ContentHeader):
            p = frame.properties
            said = ("header", frame.body_size, p.content_type, p.headers, p.delivery_mode,
                    p.message_id, p.priority, p.expiration)  # fmt: skip
        else:
            assert isinstance(frame, ContentBody)
            said = ("body", frame.value)
        frames.append((channel, said))
    return frames


deliveries = st.builds(
    Delivery,
    seq=st.integers(0, SEQ_MAX),
    routing_key=st.one_of(
        st.just("broadcast"),
        st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=60).map(
            lambda s: f"user.{s}"
        ),
        st.from_regex(r"room\.[a-z0-9_-]{1,100}", fullmatch=True),
    ),
    body=st.binary(max_size=700),
)


@settings(max_examples=300, derandomize=True)
@given(
    batch=st.lists(deliveries, max_size=5),
    channel=st.integers(1, 2047),
    max_body=st.integers(1, 600),
)
def test_the_frames_written_read_back_as_pamqps(
    batch: list[Delivery], channel: int, max_body: int
) -> None:
    ours = encode(batch, channel, max_body)
    theirs = b"".join(
        pamqp.frame.marshal(frame, channel) for d in batch for frame in _frames(d, max_body)
    )
    assert read_back(ours) == read_back(theirs)


def test_a_body_that_fills_frames_exactly_ends_without_an_empty_frame() -> None:
    delivery = Delivery(7, "user.a", b"x" * 20)
    frames = read_back(encode([delivery], 1, 10))
    assert [said[0] for _, said in frames] == ["publish", "header", "body", "body"]


# The frames the dispatcher reads (dispatcher.batching.decode, FrameReader): whatever the
# broker sends, they are the objects pamqp makes of the same bytes.

short_text = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=40).filter(
    lambda s: len(s.encode()) < 256
)
tags = st.integers(1, 2**63 - 1)
field_values = st.one_of(
    st.booleans(),
    st.integers(-(2**31), 2**31 - 1),
    st.text(max_size=20),
    st.none(),
)
properties = st.builds(
    commands.Basic.Properties,
    content_type=st.none() | short_text,
    content_encoding=st.none() | short_text,
    headers=st.none() | st.dictionaries(st.text(min_size=1, max_size=10), field_values, max_size=4),
    delivery_mode=st.none() | st.sampled_from([1, 2]),
    priority=st.none() | st.integers(0, 9),
    correlation_id=st.none() | short_text,
    reply_to=st.none() | short_text,
    expiration=st.none() | st.from_regex(r"[0-9]{1,6}", fullmatch=True),
    message_id=st.none() | short_text,
    timestamp=st.none()
    | st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1)).map(
        lambda d: d.replace(microsecond=0)
    ),
    message_type=st.none() | short_text,
    user_id=st.none() | short_text,
    app_id=st.none() | short_text,
)
frames = st.one_of(
    st.builds(
        commands.Basic.Deliver,
        consumer_tag=short_text,
        delivery_tag=tags,
        redelivered=st.booleans(),
        exchange=st.from_regex(r"[a-zA-Z0-9_.:-]{0,60}", fullmatch=True),
        routing_key=short_text,
    ),
    st.builds(commands.Basic.Ack, delivery_tag=tags, multiple=st.booleans()),
    st.builds(
        commands.Basic.Nack, delivery_tag=tags, multiple=st.booleans(), requeue=st.booleans()
    ),
    st.builds(ContentHeader, body_size=st.integers(0, 2**40), properties=properties),
    st.builds(ContentBody, st.binary(min_size=1, max_size=300)),
    st.builds(commands.Basic.ConsumeOk, consumer_tag=short_text),
    st.builds(commands.Basic.Cancel, consumer_tag=short_text, nowait=st.booleans()),
    st.builds(
        commands.Channel.Close,
        reply_code=st.integers(200, 599),
        reply_text=short_text,
        class_id=st.integers(0, 90),
        method_id=st.integers(0, 90),
    ),
    st.just(Heartbeat()),
)


def said(frame: Any) -> tuple[Any, ...]:
    """Everything a frame object says, for comparison."""
    if isinstance(frame, ContentHeader):
        p = frame.properties
        return (type(p), frame.class_id, frame.weight, frame.body_size,
                *(getattr(p, name) for name in p.__slots__))  # fmt: skip
    if isinstance(frame, ContentBody):
        return (ContentBody, frame.value)
    if isinstance(frame, Heartbeat):
        return (Heartbeat,)
    return (type(frame), *(getattr(frame, name) for name in frame.__slots__))


def wire(frame: Any, channel: int) -> bytes:
    return frame.marshal() if isinstance(frame, Heartbeat) else pamqp.frame.marshal(frame, channel)


@settings(max_examples=500, derandomize=True)
@given(frame=frames, channel=st.integers(0, 2047))
def test_a_frame_read_is_the_frame_pamqp_reads(frame: Any, channel: int) -> None:
    data = b"junk" + wire(frame, channel) + b"more"
    start, end = 4, len(data) - 4
    used, their_channel, theirs = pamqp.frame.unmarshal(data[start:end])
    our_channel, ours = batching.decode(data, start, end)
    assert used == end - start
    assert (our_channel, type(ours), said(ours)) == (their_channel, type(theirs), said(theirs))


def test_frames_pamqp_refuses_are_refused() -> None:
    deliver = pamqp.frame.marshal(commands.Basic.Deliver("c", 1, False, "x", "k"), 1)
    for data in (deliver[:-1] + b"\x00", deliver[:10] + deliver[11:]):
        with pytest.raises((PAMQPException, ValueError)):
            batching.decode(data, 0, len(data))


async def read_all(receiver: Any) -> list[tuple[int, int, tuple[Any, ...]]]:
    return [(weight, channel, said(frame)) async for weight, channel, frame in receiver]


def stream(chunks: list[bytes], eof: bool = True) -> asyncio.StreamReader:
    reader = asyncio.StreamReader()
    for chunk in chunks:
        reader.feed_data(chunk)
    if eof:
        reader.feed_eof()
    return reader


@settings(max_examples=100, derandomize=True, deadline=None)
@given(
    sent=st.lists(st.tuples(frames, st.integers(0, 3)), min_size=1, max_size=12),
    cuts=st.lists(st.integers(0, 10_000), max_size=8),
)
def test_the_bulk_reader_hands_over_what_aiormqs_receiver_does(
    sent: list[tuple[Any, int]], cuts: list[int]
) -> None:
    """The same frames, channels and weights, however the bytes arrive, then the end."""
    data = b"".join(wire(frame, channel) for frame, channel in sent)
    points = sorted({c % len(data) for c in cuts} | {0, len(data)})
    chunks = [data[a:b] for a, b in itertools.pairwise(points)]

    async def both() -> None:
        theirs = await read_all(FrameReceiver(stream(chunks)))
        ours = await read_all(batching.FrameReader(stream(chunks)))
        assert ours == theirs

    asyncio.run(both())


async def test_a_connection_cut_inside_a_frame_is_a_connection_error() -> None:
    data = pamqp.frame.marshal(commands.Basic.Ack(5, False), 1)
    for receiver in (FrameReceiver, batching.FrameReader):
        frames = receiver(stream([data, data[:9]]))
        assert (await frames.get_frame())[1] == 1
        with pytest.raises(AMQPConnectionError):
            await frames.get_frame()


async def test_a_broker_answering_with_its_protocol_header_is_refused() -> None:
    for receiver in (FrameReceiver, batching.FrameReader):
        with pytest.raises(ProtocolSyntaxError):
            await receiver(stream([b"AMQP\x00\x00\x09\x01"])).get_frame()
