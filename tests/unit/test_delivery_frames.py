"""The dispatcher writes its deliveries' AMQP frames itself (dispatcher.routing.encode): for
any delivery and frame size, the frames read back exactly as those pamqp makes of the same
delivery (the method, the content header with its properties, the body frames)."""

from __future__ import annotations

from typing import Any

import pamqp.frame
from hypothesis import given, settings
from hypothesis import strategies as st
from pamqp import commands
from pamqp.body import ContentBody
from pamqp.header import ContentHeader

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
