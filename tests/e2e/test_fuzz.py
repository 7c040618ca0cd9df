"""10,000 frames a hypothesis strategy makes up, sent on one real socket: the edge answers each
with an error frame or a valid reply, never closes it with 1011, never crashes."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

from tests.support.client import ws_client

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("dispatcher_process")]

FRAMES = 10_000
BATCH = 100
ACTIONS = ["ping", "subscribe", "unsubscribe", "message", "mark_read", "mark_all_read"]
REPLIES = {"error", "pong", "subscribed", "unsubscribed", "read", "notification", "message"}

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=40),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=12,
)
room_names = st.from_regex(r"[A-Za-z0-9_.:@-]{1,20}", fullmatch=True) | st.text(max_size=30)
actions = st.fixed_dictionaries(
    {"action": st.sampled_from(ACTIONS) | st.text(max_size=12) | json_values},
    optional={
        "room": room_names | json_values,
        "since": st.integers(min_value=-5, max_value=2**70) | json_values,
        "ids": st.lists(st.uuids().map(str) | st.text(max_size=36), max_size=5) | json_values,
        "data": json_values,
        "up_to_seq": st.integers(min_value=-5, max_value=2**70) | json_values,
        "extra": json_values,
    },
)
client_frames = st.one_of(
    actions.map(json.dumps),
    json_values.map(json.dumps),
    st.text(max_size=200),
    st.binary(max_size=200),
)


@settings(
    max_examples=FRAMES // BATCH,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@seed(20261130)  # the same frames on every run
@given(batch=st.lists(client_frames, min_size=BATCH, max_size=BATCH))
async def test_random_frames_get_errors_or_valid_replies_and_the_socket_survives(
    edge_url: str, user_id: str, batch: list[str | bytes]
) -> None:
    async with ws_client(edge_url, user_id) as client:
        for frame in batch:
            await client.ws.send(frame)
        await client.send({"action": "ping"})
        while True:  # every answer is an error or a reply, up to the pong
            reply: dict[str, Any] = await client.recv()
            kind = reply.get("type")
            assert kind in REPLIES, reply
            if kind == "error":
                assert reply["code"] and reply["message"], reply
            if kind == "pong":
                break
