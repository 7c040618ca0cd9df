"""Preferences and their decision (producers.preferences), and the validation of the events
about notifications and users (producers.envelope), over generated inputs.

Quiet hours are checked against an oracle that knows the 2026 DST changes of Europe/Berlin
and America/New_York as fixed UTC instants and offsets, so the test does not ask zoneinfo the
question the code under test asks it."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, time, timedelta
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from producers.catalog import CATALOG, Category, NotificationType, Priority
from producers.envelope import (
    SCHEDULE_MAX,
    ArchiveEvent,
    Envelope,
    EnvelopeError,
    PreferencesEvent,
    ScheduleEvent,
    SeenEvent,
    parse_event,
    release_event_id,
)
from producers.preferences import (
    DEFAULT_CRITICAL_TYPES,
    NO_PREFERENCES,
    Preferences,
    Suppression,
    decide,
    parse_critical_types,
    preferences_of,
)

CRITICAL = frozenset(t.value for t in DEFAULT_CRITICAL_TYPES)

# (first UTC instant of the offset, offset) for 2026, each zone.
OFFSETS = {
    "Europe/Berlin": [
        (datetime(2026, 1, 1, tzinfo=UTC), timedelta(hours=1)),
        (datetime(2026, 3, 29, 1, tzinfo=UTC), timedelta(hours=2)),
        (datetime(2026, 10, 25, 1, tzinfo=UTC), timedelta(hours=1)),
    ],
    "America/New_York": [
        (datetime(2026, 1, 1, tzinfo=UTC), timedelta(hours=-5)),
        (datetime(2026, 3, 8, 7, tzinfo=UTC), timedelta(hours=-4)),
        (datetime(2026, 11, 1, 6, tzinfo=UTC), timedelta(hours=-5)),
    ],
}
YEAR_START = datetime(2026, 1, 1, 6, tzinfo=UTC)  # past New Year in both zones
YEAR_END = datetime(2026, 12, 31, tzinfo=UTC)


def local_clock(moment: datetime, zone: str) -> time:
    offset = [o for since, o in OFFSETS[zone] if moment >= since][-1]
    return (moment + offset).time()


def in_window(clock: time, start: str, end: str) -> bool:
    s, e = time.fromisoformat(start), time.fromisoformat(end)
    return s <= clock < e if s < e else clock >= s or clock < e


def quiet(start: str, end: str, zone: str, **more: Any) -> Preferences:
    return Preferences.model_validate(
        {"quiet_hours": {"start": start, "end": end, "time_zone": zone}, **more}
    )


clocks = st.builds(lambda h, m: f"{h:02d}:{m:02d}", st.integers(0, 23), st.integers(0, 59))
instants = st.datetimes(
    min_value=YEAR_START.replace(tzinfo=None), max_value=YEAR_END.replace(tzinfo=None)
).map(lambda d: d.replace(tzinfo=UTC))
zones = st.sampled_from(sorted(OFFSETS))
types = st.sampled_from(list(NotificationType))


@settings(max_examples=2000, deadline=None)
@given(start=clocks, end=clocks, zone=zones, at=instants)
def test_quiet_hours_follow_local_wall_clock_time_all_year(
    start: str, end: str, zone: str, at: datetime
) -> None:
    if start == end:
        return
    prefs = quiet(start, end, zone)
    expected = Suppression.QUIET if in_window(local_clock(at, zone), start, end) else None
    got = decide(prefs, "chat_message", "chat", Priority.MEDIUM, at, CRITICAL)
    assert got == expected, (start, end, zone, at, local_clock(at, zone))


@pytest.mark.parametrize(
    ("zone", "before", "after", "utc_end_before", "utc_end_after"),
    [
        # The night before and after the spring change: 07:00 local is 06:00 UTC, then 05:00.
        ("Europe/Berlin", "2026-03-28", "2026-03-30", 6, 5),
        # New York: 07:00 local is 12:00 UTC before, 11:00 UTC after.
        ("America/New_York", "2026-03-07", "2026-03-09", 12, 11),
    ],
)
def test_a_dst_change_moves_the_window_in_utc_not_in_local_time(
    zone: str, before: str, after: str, utc_end_before: int, utc_end_after: int
) -> None:
    prefs = quiet("22:00", "07:00", zone)

    def at(day: str, hour: int, minute: int) -> Suppression | None:
        moment = datetime.fromisoformat(day).replace(hour=hour, minute=minute, tzinfo=UTC)
        return decide(prefs, "chat_message", "chat", Priority.LOW, moment, CRITICAL)

    assert at(before, utc_end_before - 1, 59) is Suppression.QUIET
    assert at(before, utc_end_before, 0) is None
    assert at(after, utc_end_after - 1, 59) is Suppression.QUIET
    assert at(after, utc_end_after, 0) is None
    # The hour between the two ends: quiet under the old offset, not under the new.
    assert at(before, utc_end_after, 30) is Suppression.QUIET
    assert at(after, utc_end_after, 30) is None


def test_the_window_on_the_night_of_the_autumn_change_counts_the_repeated_hour() -> None:
    # Berlin, 2026-10-25: 02:00-03:00 local happens twice (00:00-01:00 and 01:00-02:00 UTC).
    prefs = quiet("02:00", "03:00", "Europe/Berlin")
    for minute in range(0, 120, 10):
        moment = datetime(2026, 10, 25, tzinfo=UTC) + timedelta(minutes=minute)
        assert decide(prefs, "chat_message", "chat", "low", moment, CRITICAL) is Suppression.QUIET
    after = datetime(2026, 10, 25, 2, tzinfo=UTC)
    assert decide(prefs, "chat_message", "chat", "low", after, CRITICAL) is None


@settings(max_examples=500, deadline=None)
@given(
    notification_type=types,
    muted_categories=st.lists(st.sampled_from(list(Category)), unique=True),
    muted_types=st.lists(types, unique=True),
    priority=st.sampled_from(list(Priority)),
    at=instants,
    critical=st.sets(types).map(lambda s: frozenset(t.value for t in s)),
)
def test_decide_critical_then_mutes_then_quiet_hours(
    notification_type: NotificationType,
    muted_categories: list[Category],
    muted_types: list[NotificationType],
    priority: Priority,
    at: datetime,
    critical: frozenset[str],
) -> None:
    prefs = quiet(
        "00:00", "23:59", "Europe/Berlin",
        muted_categories=muted_categories, muted_types=muted_types,
    )  # fmt: skip
    category = CATALOG[notification_type].category
    got = decide(prefs, notification_type.value, category.value, priority.value, at, critical)
    if notification_type.value in critical:
        assert got is None
    elif category in muted_categories or notification_type in muted_types:
        assert got is Suppression.MUTED
    elif priority is Priority.URGENT:
        assert got is None
    else:
        in_quiet = in_window(local_clock(at, "Europe/Berlin"), "00:00", "23:59")
        assert got is (Suppression.QUIET if in_quiet else None)
    assert decide(NO_PREFERENCES, notification_type, category, priority, at, critical) is None


def test_a_critical_type_cannot_be_muted_by_type_but_its_category_can() -> None:
    prefs = Preferences(muted_types=[NotificationType.SYSTEM_ALERT])
    with pytest.raises(ValueError, match="system_alert cannot be muted"):
        prefs.check_critical(CRITICAL)
    by_category = Preferences(muted_categories=[Category.SYSTEM])
    by_category.check_critical(CRITICAL)
    at = datetime(2026, 5, 1, tzinfo=UTC)
    assert decide(by_category, "system_alert", "system", "high", at, CRITICAL) is None
    assert decide(by_category, "maintenance_scheduled", "system", "low", at, CRITICAL) == "muted"


@pytest.mark.parametrize(
    "bad",
    [
        {"muted_categories": ["sports"]},
        {"muted_types": ["nope"]},
        {"quiet_hours": {"start": "22:00", "end": "22:00", "time_zone": "Europe/Berlin"}},
        {"quiet_hours": {"start": "24:00", "end": "07:00", "time_zone": "Europe/Berlin"}},
        {"quiet_hours": {"start": "7:00", "end": "08:00", "time_zone": "Europe/Berlin"}},
        {"quiet_hours": {"start": "22:00", "end": "07:00", "time_zone": "Mars/Olympus"}},
        {"quiet_hours": {"start": "22:00", "end": "07:00", "time_zone": "../etc/passwd"}},
        {"quiet_hours": {"start": "22:00", "end": "07:00"}},
        {"unknown": True},
    ],
)
def test_invalid_preferences_are_refused(bad: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        Preferences.model_validate(bad)
    # A stored document this version cannot read counts as none instead of failing a batch.
    assert preferences_of(bad) is NO_PREFERENCES


def test_critical_types_setting() -> None:
    assert parse_critical_types(None) == CRITICAL
    assert parse_critical_types("") == frozenset()
    assert parse_critical_types(" chat_message , system_alert") == {"chat_message", "system_alert"}
    with pytest.raises(ValueError, match="unknown notification type"):
        parse_critical_types("system_alrt")


# Events about notifications and users, generated

ids = st.lists(st.uuids(), min_size=0, max_size=4)
seqs = st.one_of(st.none(), st.integers(-5, 2**63 + 5))
user_ids = st.sampled_from(["u1", "user.2@x", "", "bad user", "x" * 129])


def _valid_user(user: str) -> bool:
    return user in ("u1", "user.2@x")


@settings(max_examples=400, deadline=None)
@given(
    kind=st.sampled_from(["notification.archived", "notification.unarchived"]),
    user=user_ids,
    event_ids=ids,
    all_read=st.booleans(),
    up_to=seqs,
)
def test_archive_events_take_ids_xor_all_read(
    kind: str, user: str, event_ids: list[uuid.UUID], all_read: bool, up_to: int | None
) -> None:
    raw: dict[str, Any] = {
        "event_id": str(uuid.uuid4()), "schema_version": 1, "event_type": kind, "user_id": user,
        "ids": [str(i) for i in event_ids], "all_read": all_read,
    }  # fmt: skip
    if up_to is not None:
        raw["up_to_seq"] = up_to
    valid = (
        _valid_user(user)
        and (up_to is None or 0 <= up_to <= 2**63 - 1)
        and (
            (all_read and kind == "notification.archived" and not event_ids)
            or (not all_read and bool(event_ids) and up_to is None)
        )
    )
    body = orjson.dumps(raw)
    if not valid:
        with pytest.raises(EnvelopeError):
            parse_event(body)
        return
    event = parse_event(body)
    assert isinstance(event, ArchiveEvent)
    assert parse_event(event.to_json()) == event


@settings(max_examples=200, deadline=None)
@given(user=user_ids, up_to=seqs, as_text=st.booleans())
def test_seen_events_need_an_integer_seq(user: str, up_to: int | None, as_text: bool) -> None:
    raw: dict[str, Any] = {
        "event_id": str(uuid.uuid4()), "schema_version": 1, "event_type": "notification.seen",
        "user_id": user, "up_to_seq": str(up_to) if as_text else up_to,
    }  # fmt: skip
    valid = _valid_user(user) and not as_text and up_to is not None and 0 <= up_to <= 2**63 - 1
    if not valid:
        with pytest.raises(EnvelopeError):
            parse_event(orjson.dumps(raw))
        return
    event = parse_event(orjson.dumps(raw))
    assert isinstance(event, SeenEvent) and event.up_to_seq == up_to


@settings(max_examples=200, deadline=None)
@given(start=clocks, end=clocks, zone=st.sampled_from(["Europe/Berlin", "Asia/Kolkata", "Nope"]))
def test_preferences_events_round_trip(start: str, end: str, zone: str) -> None:
    raw = {
        "event_id": str(uuid.uuid4()), "schema_version": 1,
        "event_type": "notification.preferences", "user_id": "u1",
        "preferences": {"muted_categories": ["chat", "chat"],
                        "quiet_hours": {"start": start, "end": end, "time_zone": zone}},
    }  # fmt: skip
    if start == end or zone == "Nope":
        with pytest.raises(EnvelopeError):
            parse_event(orjson.dumps(raw))
        return
    event = parse_event(orjson.dumps(raw))
    assert isinstance(event, PreferencesEvent)
    assert event.preferences.muted_categories == [Category.CHAT]  # deduplicated
    assert parse_event(event.to_json()) == event


@settings(max_examples=200, deadline=None)
@given(scheduled=st.uuids(), other=st.uuids(), kind=st.sampled_from(["released", "cancelled"]))
def test_a_release_has_the_derived_event_id_and_a_cancel_any(
    scheduled: uuid.UUID, other: uuid.UUID, kind: str
) -> None:
    def event(event_id: uuid.UUID) -> bytes:
        return orjson.dumps(
            {"event_id": str(event_id), "schema_version": 1,
             "event_type": f"notification.{kind}", "scheduled_event_id": str(scheduled)}
        )  # fmt: skip

    derived = release_event_id(scheduled)
    assert derived == release_event_id(scheduled) and derived != scheduled
    assert isinstance(parse_event(event(derived)), ScheduleEvent)
    if kind == "cancelled":
        assert isinstance(parse_event(event(other)), ScheduleEvent)
    elif other != derived:
        with pytest.raises(EnvelopeError, match="release_event_id"):
            parse_event(event(other))


@settings(max_examples=300, deadline=None)
@given(ahead=st.timedeltas(min_value=timedelta(days=-30), max_value=timedelta(days=400)))
def test_deliver_at_is_at_most_366_days_ahead(ahead: timedelta) -> None:
    now = datetime.now(UTC)
    raw = {
        "event_id": str(uuid.uuid4()), "schema_version": 1, "notification_type": "tour_completed",
        "user_id": "u1", "data": {"booking_id": "b1", "tour_name": "T"},
        "deliver_at": (now + ahead).isoformat(),
    }  # fmt: skip
    if ahead > SCHEDULE_MAX - timedelta(minutes=1):
        if ahead > SCHEDULE_MAX + timedelta(minutes=1):
            with pytest.raises(EnvelopeError, match="deliver_at"):
                parse_event(orjson.dumps(raw))
        return
    envelope = parse_event(orjson.dumps(raw))
    assert isinstance(envelope, Envelope)
    assert envelope.scheduled_after(now) is (ahead > timedelta(0))
    assert b"deliver_at" in envelope.to_json()


def test_deliver_at_must_be_aware_and_an_unscheduled_envelope_is_logged_as_before() -> None:
    base = {
        "event_id": str(uuid.uuid4()), "schema_version": 1, "notification_type": "system_alert",
        "broadcast": True, "data": {"message": "m"},
    }  # fmt: skip
    with pytest.raises(EnvelopeError, match="deliver_at"):
        parse_event(orjson.dumps({**base, "deliver_at": "2026-05-01T10:00:00"}))
    assert b"deliver_at" not in parse_event(orjson.dumps(base)).to_json()
