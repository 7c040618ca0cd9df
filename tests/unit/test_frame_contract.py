"""The frames the pipeline sends are the frames its published contract describes: every
notification frame built by ``dispatcher.records`` (each catalog type, each audience, read or
not, replayed or live) and every read frame validates against the AsyncAPI document's
schemas, which allow nothing else."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from dispatcher.records import (
    StoredNotification,
    archived_frame,
    notification_frame,
    preferences_frame,
    read_frame,
    seen_frame,
)
from producers.asyncapi import asyncapi_document
from producers.catalog import NotificationType
from producers.contract import example_event
from producers.envelope import Envelope
from producers.preferences import Preferences


def validator(name: str) -> Draft202012Validator:
    document = asyncapi_document()
    schema = {"$ref": f"#/components/schemas/{name}", "components": document["components"]}
    return Draft202012Validator(schema)


NOTIFICATION = validator("NotificationFrame")
READ = validator("ReadFrame")


def audiences(event: dict[str, Any]) -> list[dict[str, Any]]:
    base = {k: v for k, v in event.items() if k not in ("user_id", "room", "broadcast")}
    return [{**base, "user_id": "u1"}, {**base, "room": "tour_1"}, {**base, "broadcast": True}]


@pytest.mark.parametrize("notification_type", list(NotificationType))
def test_every_notification_frame_matches_the_published_schema(
    notification_type: NotificationType,
) -> None:
    for fields in audiences(example_event(notification_type)):
        envelope = Envelope.model_validate({**fields, "event_id": str(uuid.uuid4())})
        stored = StoredNotification.from_envelope(envelope, seq=42)
        for read in (False, True):
            for replayed in (False, True):
                frame = notification_frame(stored, read=read, replayed=replayed)
                errors = [e.message for e in NOTIFICATION.iter_errors(frame)]
                assert not errors, (notification_type, frame, errors)


def test_read_frames_match_the_published_schema() -> None:
    ids = [str(uuid.uuid4())]
    for frame in (
        read_frame(ids, 3, unseen_count=1),
        read_frame([], 0, up_to_seq=41, unseen_count=0),
    ):
        assert not [e.message for e in READ.iter_errors(frame)], frame
    assert not READ.is_valid(read_frame(ids, 3)), "the dispatcher always gives unseen_count"


def test_the_state_syncs_match_the_published_schema() -> None:
    ids = [str(uuid.uuid4()), str(uuid.uuid4())]
    preferences = Preferences.model_validate(
        {"muted_categories": ["chat"], "quiet_hours": {"start": "22:00", "end": "07:00",
                                                       "time_zone": "Europe/Berlin"}}
    )  # fmt: skip
    cases = [
        ("SeenFrame", seen_frame(41, 2)),
        ("ArchivedFrame", archived_frame(ids, 3, 1)),
        ("UnarchivedFrame", archived_frame(ids[:1], 4, 2, unarchived=True)),
        ("PreferencesFrame", preferences_frame(preferences.document(), {"system_alert"})),
        ("PreferencesFrame", preferences_frame({}, set())),
    ]
    for name, frame in cases:
        check = validator(name)
        assert not [e.message for e in check.iter_errors(frame)], frame
        assert not check.is_valid({**frame, "unexpected": 1})


def test_quiet_and_archived_notification_frames_match_the_published_schema() -> None:
    envelope = Envelope.model_validate(
        {**example_event(NotificationType.CHAT_MESSAGE), "event_id": str(uuid.uuid4())}
    )
    stored = StoredNotification.from_envelope(envelope, seq=7)
    frame = notification_frame(stored, replayed=True, quiet=True, archived=True)
    assert NOTIFICATION.is_valid(frame), frame


def test_the_schemas_refuse_a_frame_with_a_field_they_do_not_describe() -> None:
    envelope = Envelope.model_validate(
        {**example_event(NotificationType.SYSTEM_ALERT), "event_id": str(uuid.uuid4())}
    )
    frame = notification_frame(StoredNotification.from_envelope(envelope, seq=1))
    assert NOTIFICATION.is_valid(frame)
    assert not NOTIFICATION.is_valid({**frame, "unexpected": 1})
    assert not READ.is_valid({**read_frame([], 0), "unexpected": 1})
