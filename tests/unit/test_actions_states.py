"""Seen, archive and preferences on the edge, as pure logic: the client actions' parsing, the
events they become, and the per-user decision on broadcasts (``socket_edge.preferences``) as
the fan-out applies it to sockets that record what they are sent."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from dispatcher.records import Delivery as RecordsDelivery
from dispatcher.records import encode_frame
from producers import topology
from producers.envelope import parse_event
from producers.preferences import Preferences
from socket_edge.actions import Archive, BadFrame, MarkSeen, Unarchive, parse_action
from socket_edge.broker import Delivery
from socket_edge.connection import Connection
from socket_edge.edge import EdgeNode, archive_event, preferences_event, seen_event
from socket_edge.preferences import HeldPreferences, kind_of, preferences_sync
from socket_edge.sinks import OutFrame
from tests.support.sockets import FakeWebSocket, RecordingSink

CRITICAL = frozenset({"system_alert", "payment_failed"})
IDS = [str(uuid.UUID(int=i)) for i in (1, 2)]

# -- actions -------------------------------------------------------------------------------


def test_the_new_actions_parse() -> None:
    assert parse_action(b'{"action":"mark_seen","up_to_seq":7}') == MarkSeen(
        action="mark_seen", up_to_seq=7
    )
    by_ids = parse_action(orjson.dumps({"action": "archive", "ids": IDS}))
    assert isinstance(by_ids, Archive) and [str(i) for i in by_ids.ids or ()] == IDS
    read = parse_action(b'{"action":"archive","all_read":true,"up_to_seq":9}')
    assert isinstance(read, Archive) and read.all_read and read.up_to_seq == 9
    back = parse_action(orjson.dumps({"action": "unarchive", "ids": IDS[:1]}))
    assert isinstance(back, Unarchive)


@pytest.mark.parametrize(
    "frame",
    [
        {"action": "mark_seen"},
        {"action": "mark_seen", "up_to_seq": "5"},
        {"action": "mark_seen", "up_to_seq": 5.0},
        {"action": "mark_seen", "up_to_seq": True},
        {"action": "mark_seen", "up_to_seq": -1},
        {"action": "mark_seen", "up_to_seq": 2**63},
        {"action": "mark_seen", "up_to_seq": 5, "extra": 1},
        {"action": "archive"},
        {"action": "archive", "ids": []},
        {"action": "archive", "ids": IDS, "all_read": True},
        {"action": "archive", "ids": IDS, "up_to_seq": 3},
        {"action": "archive", "all_read": "true"},
        {"action": "archive", "all_read": 1},
        {"action": "archive", "all_read": False},
        {"action": "archive", "ids": ["not-a-uuid"]},
        {"action": "archive", "ids": [str(uuid.uuid4()) for _ in range(1001)]},
        {"action": "unarchive"},
        {"action": "unarchive", "ids": []},
        {"action": "unarchive", "all_read": True},
        {"action": "unarchive", "ids": IDS, "up_to_seq": 1},
    ],
)
def test_bad_state_actions_are_refused_as_invalid_frames(frame: dict[str, Any]) -> None:
    with pytest.raises(BadFrame) as refused:
        parse_action(orjson.dumps(frame))
    assert refused.value.code == "invalid_frame"


@given(
    st.dictionaries(
        st.sampled_from(["ids", "all_read", "up_to_seq", "x"]),
        st.one_of(
            st.none(),
            st.booleans(),
            st.integers(min_value=-(2**63), max_value=2**64 - 1),
            st.floats(allow_nan=False),
            st.text(max_size=5),
            st.lists(st.text(max_size=40), max_size=3),
        ),
    ),
    st.sampled_from(["mark_seen", "archive", "unarchive"]),
)
def test_any_state_action_parses_into_a_valid_event_or_is_refused(
    fields: dict[str, Any], action: str
) -> None:
    try:
        parsed = parse_action(orjson.dumps({"action": action, **fields}))
    except BadFrame:
        return
    if isinstance(parsed, MarkSeen):
        event: Any = seen_event("u1", parsed.up_to_seq)
    elif isinstance(parsed, Archive):
        event = archive_event(
            "u1", ids=parsed.ids or (), all_read=parsed.all_read, up_to_seq=parsed.up_to_seq
        )
    else:
        assert isinstance(parsed, Unarchive)
        event = archive_event("u1", ids=parsed.ids, unarchive=True)
    # What the edge publishes, the dispatcher accepts.
    assert parse_event(event.to_json()).event_id == event.event_id


def test_the_events_are_what_the_log_accepts() -> None:
    ids = [uuid.UUID(i) for i in IDS]
    for event in (
        seen_event("u1", 12),
        archive_event("u1", ids=ids),
        archive_event("u1", all_read=True, up_to_seq=3),
        archive_event("u1", ids=ids, unarchive=True),
        preferences_event("u1", prefs(muted_categories=["chat"])),
    ):
        parsed = parse_event(event.to_json())
        assert parsed == event and parsed.routing_key == event.routing_key
    assert archive_event("u1", ids=ids, unarchive=True).routing_key == "notification.unarchived"


# -- the decision on broadcasts ---------------------------------------------------------------


def broadcast(seq: int, notification_type: str, priority: str = "medium") -> OutFrame:
    return OutFrame(
        encode_frame(
            {
                "type": "notification",
                "id": str(uuid.UUID(int=seq)),
                "seq": seq,
                "notification_type": notification_type,
                "priority": priority,
            }
        )
    )


def quiet_now(now: datetime) -> dict[str, str]:
    local = now.astimezone(ZoneInfo("America/New_York"))
    start, end = local - timedelta(minutes=30), local + timedelta(minutes=30)
    return {"start": f"{start:%H:%M}", "end": f"{end:%H:%M}", "time_zone": "America/New_York"}


def prefs(**fields: Any) -> Preferences:
    return Preferences.model_validate(fields)


def test_held_back_names_the_users_that_mute_it_or_are_in_quiet_hours() -> None:
    now = datetime.now(UTC)
    held = HeldPreferences(CRITICAL)
    assert held.held_back(broadcast(1, "tour_completed")) == set()  # nobody has any
    held.load("mute", 1, prefs(muted_categories=["tour"]))
    held.load("type", 1, prefs(muted_types=["tour_completed"]))
    held.load("quiet", 1, prefs(quiet_hours=quiet_now(now)))
    held.load("none", 1, prefs())
    assert "none" not in held.active
    assert held.held_back(broadcast(2, "tour_completed"), now) == {"mute", "type", "quiet"}
    assert held.held_back(broadcast(3, "tour_started", "urgent"), now) == {"mute"}
    assert held.held_back(broadcast(4, "system_alert"), now) == set()  # critical
    assert held.held_back(broadcast(5, "booking_created"), now) == {"quiet"}
    later = now + timedelta(hours=2)
    assert held.held_back(broadcast(6, "booking_created"), later) == set()


def test_the_newer_preferences_win_and_forgetting_drops_them() -> None:
    held = HeldPreferences(CRITICAL)
    assert held.load("u", 10, prefs(muted_categories=["chat"]))
    assert not held.load("u", 9, prefs(muted_categories=["tour"]))  # an older snapshot
    assert held.of("u").muted_categories == ["chat"]
    assert held.load("u", 11, prefs())  # cleared: costs nothing any more
    assert "u" not in held.active
    assert not held.load("u", 10, prefs(muted_categories=["chat"]))
    held.forget("u")
    assert held.load("u", 1, prefs(muted_categories=["tour"]))


CHOICES = [
    prefs(),
    prefs(muted_categories=["tour"]),
    prefs(muted_types=["booking_created"]),
    prefs(quiet_hours={"start": "22:00", "end": "07:00", "time_zone": "Asia/Tokyo"}),
    prefs(quiet_hours={"start": "07:00", "end": "22:00", "time_zone": "Asia/Tokyo"}),
    prefs(muted_categories=["tour", "booking"]),
]


@given(
    st.lists(
        st.tuples(st.sampled_from(["u1", "u2", "u3", "u4"]), st.integers(-1, len(CHOICES) - 1)),
        max_size=40,
    ),
    st.sampled_from(["tour_completed", "booking_created", "system_alert", "chat_message"]),
    st.datetimes(timezones=st.just(UTC)),
)
def test_held_back_is_each_users_own_decision_through_any_loads_and_forgets(
    steps: list[tuple[str, int]], notification_type: str, at: datetime
) -> None:
    """Users are decided by groups of equal preferences; the answer is always what deciding
    each user alone gives (-1: the user's last socket goes)."""
    held = HeldPreferences(CRITICAL)
    for seq, (user, choice) in enumerate(steps, start=1):
        if choice < 0:
            held.forget(user)
        else:
            held.load(user, seq, CHOICES[choice])
        frame = broadcast(seq, notification_type)
        kind = kind_of(orjson.loads(frame.text))
        assert kind is not None
        alone = {u for u, p in held.active.items() if held.suppressed(p, kind, at)}
        assert held.held_back(frame, at) == alone


def test_frames_are_read_for_what_they_say() -> None:
    assert kind_of({"type": "notification", "notification_type": "chat_message"}) is None
    assert kind_of({"type": "notification", "notification_type": "nope", "priority": "low"}) is None
    kind = kind_of({"type": "notification", "notification_type": "chat_message", "priority": "low"})
    assert kind is not None and kind.category == "chat"
    sync = encode_frame({"type": "preferences", "preferences": {"muted_types": ["chat_read"]}})
    found = preferences_sync(sync)
    assert found is not None and found.muted_types == ["chat_read"]
    assert preferences_sync('{"type":"read"}') is None and preferences_sync("{") is None


# -- the fan-out ----------------------------------------------------------------------------------


async def socket_of(node: EdgeNode, user_id: str, *, live: bool = True) -> Connection:
    connection = Connection(
        FakeWebSocket(),  # type: ignore[arg-type]
        user_id,
        device_type="test",
        app_version=None,
        send_buffer=1 << 20,
        sink=RecordingSink(),
    )
    if live:
        await node.attach(connection)
        connection.open_live(connection.user_key)
    else:
        connection.hold(connection.user_key)
        await node.attach(connection)
    return connection


def sent(connection: Connection) -> list[int]:
    sink = connection._sink
    assert isinstance(sink, RecordingSink)
    return [orjson.loads(text).get("seq", -1) for text in sink.sent]


def deliver(node: EdgeNode, key: str, seq: int, frame: OutFrame) -> None:
    node.on_delivery(Delivery(key, frame.text, seq, origin=None))


def preferences_frame(preferences: dict[str, Any]) -> OutFrame:
    return OutFrame(
        encode_frame({"type": "preferences", "preferences": preferences, "critical_types": []})
    )


async def test_a_broadcast_skips_the_sockets_of_users_that_mute_it(node: EdgeNode) -> None:
    muter, other = await socket_of(node, "muter"), await socket_of(node, "other")
    node.load_preferences(muter, 1, prefs(muted_categories=["tour"]))
    deliver(node, topology.BROADCAST_KEY, 10, broadcast(10, "tour_completed"))
    deliver(node, topology.BROADCAST_KEY, 11, broadcast(11, "system_alert"))
    assert sent(muter) == [11] and sent(other) == [10, 11]
    # A preferences sync for the user replaces them: the category comes again.
    deliver(node, muter.user_key, 12, preferences_frame({}))
    deliver(node, topology.BROADCAST_KEY, 13, broadcast(13, "tour_completed"))
    assert sent(muter) == [11, -1, 13]
    # and a sync that mutes it again stops it, for every socket of the user.
    second = await socket_of(node, "muter")
    deliver(node, muter.user_key, 14, preferences_frame({"muted_types": ["tour_completed"]}))
    deliver(node, topology.BROADCAST_KEY, 15, broadcast(15, "tour_completed"))
    assert sent(muter)[-1] == -1 and sent(second) == [-1]
    await node.detach(muter)
    assert "muter" in node.preferences.active  # another socket is still here
    await node.detach(second)
    assert not node.preferences.active


async def test_broadcasts_held_during_a_handshake_are_decided_once_preferences_are_known(
    node: EdgeNode,
) -> None:
    connection = await socket_of(node, "late", live=False)
    deliver(node, topology.BROADCAST_KEY, 20, broadcast(20, "chat_message"))
    deliver(node, topology.BROADCAST_KEY, 21, broadcast(21, "booking_created"))
    deliver(node, connection.user_key, 22, broadcast(22, "chat_message"))  # personal: kept
    node.load_preferences(connection, 5, prefs(muted_categories=["chat"]))
    connection.release(connection.user_key, 19)
    assert sent(connection) == [21, 22]


async def test_a_catch_up_applies_the_gaps_preferences_to_the_gaps_broadcasts_in_order(
    node: EdgeNode,
) -> None:
    connection = await socket_of(node, "blip")
    node.catch_up.connection_lost()
    key = connection.user_key
    gap = [
        Delivery(key, preferences_frame({"muted_categories": ["tour"]}).text, 30, None),
        Delivery(topology.BROADCAST_KEY, broadcast(31, "tour_completed").text, 31, None),
        Delivery(key, preferences_frame({}).text, 32, None),
        Delivery(topology.BROADCAST_KEY, broadcast(33, "tour_completed").text, 33, None),
    ]
    await node.catch_up.run(
        [RecordsDelivery(d.seq or 0, d.key, d.text.encode()) for d in gap], high_water=33
    )
    assert sent(connection) == [-1, -1, 33]
