"""The chaos checker's decisions, on hand-made ledgers (no services)."""

from __future__ import annotations

from tests.chaos.harness import schedule
from tests.chaos.harness.checker import (
    USER_STREAM,
    Account,
    Seen,
    Sent,
    check,
    order_violations,
    room_stream,
    table,
)

ALICE, BOB = "alice", "bob"
ROOMS = {ALICE: frozenset({"tour_a"}), BOB: frozenset({"tour_b"})}


def personal(event_id: str, user: str, confirmed: bool = True) -> Sent:
    return Sent(event_id, "user", user, "booking_confirmed", confirmed)


def seen(
    user: str, event_id: str, seq: int, *, conn: int = 1, stream: str = USER_STREAM,
    replayed: bool = False, kind: str = "booking_confirmed",
) -> Seen:  # fmt: skip
    return Seen(user, conn, event_id, seq, stream, replayed, kind)


def run(
    sent: list[Sent],
    stored: dict[str, int],
    frames: list[Seen],
    marks: dict[tuple[int, str], int] | None = None,
) -> Account:
    return check({s.event_id: s for s in sent}, stored, frames, ROOMS, marks or {})


def test_every_confirmed_event_stored_once_and_received_passes() -> None:
    account = run(
        [personal("e1", ALICE), personal("e2", BOB)],
        {"e1": 1, "e2": 1},
        [seen(ALICE, "e1", 1), seen(BOB, "e2", 2, conn=2, replayed=True)],
    )
    assert account.passed
    assert (account.received_live, account.received_replayed, account.lost) == (1, 1, 0)


def test_a_stored_event_its_recipient_never_got_is_lost() -> None:
    account = run([personal("e1", ALICE)], {"e1": 1}, [])
    assert account.lost == 1 and not account.passed
    assert account.examples["lost"] == [[ALICE, "e1", "user", ALICE]]


def test_a_confirmed_event_missing_from_the_log_fails() -> None:
    account = run([personal("e1", ALICE)], {}, [])
    assert account.confirmed_not_stored == 1 and not account.passed
    assert account.lost == 0  # nothing stored, so nothing owed to a client


def test_an_unconfirmed_event_may_be_missing_but_is_owed_once_stored() -> None:
    missing = run([personal("e1", ALICE, confirmed=False)], {}, [])
    assert missing.passed and missing.in_doubt == 1
    stored = run([personal("e1", ALICE, confirmed=False)], {"e1": 1}, [])
    assert stored.lost == 1 and stored.stored_in_doubt == 1


def test_an_event_stored_twice_fails() -> None:
    account = run([personal("e1", ALICE)], {"e1": 2}, [seen(ALICE, "e1", 1)])
    assert account.stored_more_than_once == 1 and not account.passed


def test_the_same_frame_twice_is_a_counted_duplicate() -> None:
    account = run(
        [personal("e1", ALICE)],
        {"e1": 1},
        [seen(ALICE, "e1", 1), seen(ALICE, "e1", 1, conn=2, replayed=True)],
    )
    assert account.passed
    assert (account.duplicates, account.duplicates_replayed) == (1, 1)


def test_the_same_id_with_another_seq_is_unexpected() -> None:
    account = run(
        [personal("e1", ALICE)], {"e1": 1}, [seen(ALICE, "e1", 1), seen(ALICE, "e1", 7, conn=2)]
    )
    assert account.unexpected == 1 and not account.passed


def test_a_frame_nobody_sent_is_unexpected() -> None:
    account = run([], {}, [seen(ALICE, "ghost", 1)])
    assert account.unexpected == 1 and not account.passed


def test_someone_elses_notification_is_unexpected() -> None:
    account = run([personal("e1", BOB)], {"e1": 1}, [seen(BOB, "e1", 1), seen(ALICE, "e1", 1)])
    assert account.unexpected == 1
    assert "personal notification of bob" in account.examples["unexpected"][0].reason


def test_a_room_event_is_owed_to_members_only_on_the_room_stream() -> None:
    sent = [Sent("r1", "room", "tour_a", "chat_message", True)]
    ok = run(sent, {"r1": 1}, [seen(ALICE, "r1", 3, stream=room_stream("tour_a"),
                                    kind="chat_message")])  # fmt: skip
    assert ok.passed and ok.deliveries_expected == 1
    intruder = run(sent, {"r1": 1}, [seen(BOB, "r1", 3, stream=room_stream("tour_a"),
                                          kind="chat_message")])  # fmt: skip
    assert intruder.unexpected == 1 and intruder.lost == 1


def test_a_broadcast_is_owed_to_every_client() -> None:
    sent = [Sent("b1", "broadcast", "", "system_alert", True)]
    account = run(sent, {"b1": 1}, [seen(ALICE, "b1", 5, kind="system_alert")])
    assert account.deliveries_expected == 2
    assert account.examples["lost"] == [[BOB, "b1", "broadcast", ""]]


def test_live_frames_must_rise_above_the_handover_mark() -> None:
    frames = [
        seen(ALICE, "e1", 3, replayed=True),
        seen(ALICE, "e2", 5, replayed=True),
        seen(ALICE, "e3", 9),
        seen(ALICE, "e4", 8),  # out of order
        seen(ALICE, "e5", 4, conn=2),  # at or below its connection's mark
    ]
    found = order_violations(frames, {(1, USER_STREAM): 5, (2, USER_STREAM): 4})
    assert [(v.connection, v.previous, v.seq) for v in found] == [(1, 9, 8), (2, 4, 4)]


def test_streams_and_connections_are_ordered_separately() -> None:
    frames = [
        seen(ALICE, "e1", 9),
        seen(ALICE, "r1", 2, stream=room_stream("tour_a")),
        seen(ALICE, "e2", 3, conn=2),
    ]
    assert order_violations(frames, {}) == []


def test_the_table_marks_what_must_be_zero() -> None:
    text = table(run([personal("e1", ALICE)], {"e1": 1}, []))
    assert "lost" in text and "<-- must be 0" in text and "FAIL" in text


def test_the_fault_plan_is_seeded_and_covers_every_kind() -> None:
    first = schedule.plan(7, 60, clients=200, every=8)
    assert first == schedule.plan(7, 60, clients=200, every=8)
    assert first != schedule.plan(8, 60, clients=200, every=8)
    assert {f.kind for f in first} == set(schedule.FAULT_KINDS)
    assert all(schedule.WARMUP <= f.at <= 60 - schedule.COOLDOWN for f in first)


def test_a_long_run_repeats_rounds_of_every_kind() -> None:
    faults = schedule.plan(7, 300, every=20)
    counts = {kind: sum(1 for f in faults if f.kind == kind) for kind in schedule.FAULT_KINDS}
    assert len(set(counts.values())) == 1 and counts["edge_kill"] >= 2


def test_no_faults_means_an_empty_plan() -> None:
    assert schedule.plan(7, 300, ()) == []
