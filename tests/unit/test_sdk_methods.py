"""The SDK's methods made from the catalog: one per type, whose parameters are the type's data
fields and whose call builds the envelope ``build`` builds from the same data; the stub of their
static types kept up to date; and a type added to a catalog, which gets its method (and its
lines in the stub) with no other change."""

from __future__ import annotations

import inspect
import uuid
from datetime import UTC, datetime
from typing import Any, cast

import pytest
from pydantic import AwareDatetime, ConfigDict

from producers.catalog import (
    CATALOG,
    Audience,
    CatalogEntry,
    Category,
    EventData,
    NotificationType,
    Priority,
    SdkMethod,
)
from producers.envelope import Envelope
from producers.service import (
    REGENERATE,
    STUB_PATH,
    NotificationService,
    catalog_methods,
    main,
    outdated_files,
    parameter_type,
    sdk_stub,
)
from tests.unit.conftest import RecordingPublisher

ENTRIES = list(CATALOG.values())
IDS = [str(entry.notification_type) for entry in ENTRIES]
EVENT_ID = uuid.UUID("00000000-0000-4000-8000-000000000001")
OCCURRED_AT = datetime(2026, 2, 14, 9, 30, tzinfo=UTC)
P = inspect.Parameter

# The seed's methods, spelled out on purpose: their names, parameters, order and defaults are
# the SDK's public API, whatever makes them.
SEED_SIGNATURES = {
    "notify_booking_created": "(self, user_id: 'str', booking_id: 'str', tour_name: 'str', tour_date: 'date | str', total_amount: 'Money', **options: 'Unpack[Options]') -> 'uuid.UUID'",  # noqa: E501
    "notify_booking_confirmed": "(self, user_id: 'str', booking_id: 'str', tour_name: 'str', confirmation_code: 'str | None' = None, **options: 'Unpack[Options]') -> 'uuid.UUID'",  # noqa: E501
    "notify_booking_cancelled": "(self, user_id: 'str', booking_id: 'str', tour_name: 'str', reason: 'str | None' = None, **options: 'Unpack[Options]') -> 'uuid.UUID'",  # noqa: E501
    "notify_payment_received": "(self, user_id: 'str', booking_id: 'str', amount: 'Money', payment_method: 'str', **options: 'Unpack[Options]') -> 'uuid.UUID'",  # noqa: E501
    "notify_payment_failed": "(self, user_id: 'str', booking_id: 'str', amount: 'Money', reason: 'str | None' = None, **options: 'Unpack[Options]') -> 'uuid.UUID'",  # noqa: E501
    "notify_refund_processed": "(self, user_id: 'str', booking_id: 'str', amount: 'Money', **options: 'Unpack[Options]') -> 'uuid.UUID'",  # noqa: E501
    "notify_tour_starting_soon": "(self, user_id: 'str', booking_id: 'str', tour_name: 'str', start_time: 'When', meeting_point: 'str', **options: 'Unpack[Options]') -> 'uuid.UUID'",  # noqa: E501
    "notify_tour_started": "(self, user_id: 'str', booking_id: 'str', tour_name: 'str', **options: 'Unpack[Options]') -> 'uuid.UUID'",  # noqa: E501
    "notify_tour_completed": "(self, user_id: 'str', booking_id: 'str', tour_name: 'str', **options: 'Unpack[Options]') -> 'uuid.UUID'",  # noqa: E501
    "notify_new_commission": "(self, agent_id: 'str', booking_id: 'str', commission_amount: 'Money', tier: 'str', **options: 'Unpack[Options]') -> 'uuid.UUID'",  # noqa: E501
    "notify_tier_upgraded": "(self, agent_id: 'str', old_tier: 'str', new_tier: 'str', **options: 'Unpack[Options]') -> 'uuid.UUID'",  # noqa: E501
    "notify_chat_message": "(self, user_id: 'str', conversation_id: 'str', sender_id: 'str', preview: 'str', **options: 'Unpack[Options]') -> 'uuid.UUID'",  # noqa: E501
    "notify_chat_read": "(self, user_id: 'str', conversation_id: 'str', reader_id: 'str', **options: 'Unpack[Options]') -> 'uuid.UUID'",  # noqa: E501
    "broadcast_system_message": "(self, title: 'str', message: 'str', priority: 'Priority | str' = <Priority.HIGH: 'high'>, *, data: 'Mapping[str, Any] | None' = None, action_url: 'str | None' = None, deliver_at: 'datetime | None' = None) -> 'uuid.UUID'",  # noqa: E501
    "notify_maintenance_scheduled": "(self, starts_at: 'When', ends_at: 'When | None' = None, *, room: 'str | None' = None, **options: 'Unpack[Options]') -> 'uuid.UUID'",  # noqa: E501
    "notify_agent_response": "(self, user_id: 'str', agent_name: 'str', response: 'Any', execution_time: 'float', **options: 'Unpack[Options]') -> 'uuid.UUID'",  # noqa: E501
    "notify_workflow_completed": "(self, user_id: 'str', workflow_id: 'str', status: 'str', **options: 'Unpack[Options]') -> 'uuid.UUID'",  # noqa: E501
}  # fmt: skip


def parameter_names(entry: CatalogEntry) -> dict[str, str]:
    """Data field -> the method's parameter for it."""
    return {name: entry.sdk.parameters.get(name, name) for name in entry.data_model.model_fields}


@pytest.mark.parametrize(("name", "expected"), SEED_SIGNATURES.items())
def test_the_seeds_methods_keep_their_exact_signatures(name: str, expected: str) -> None:
    method = getattr(NotificationService, name)
    assert str(inspect.signature(method)) == expected
    assert inspect.iscoroutinefunction(method)
    assert method.__qualname__ == f"NotificationService.{name}"


@pytest.mark.parametrize("entry", ENTRIES, ids=IDS)
def test_each_type_has_a_method_whose_parameters_are_its_data_fields(entry: CatalogEntry) -> None:
    method = getattr(NotificationService, entry.method_name)
    parameters = list(inspect.signature(method).parameters.values())
    sdk, fields = entry.sdk, entry.data_model.model_fields
    renamed = parameter_names(entry)

    leading = ["self"]
    if sdk.announcement:
        leading += ["title", "message", "priority"]
    if sdk.audience in (Audience.USER, Audience.AGENT):
        leading.append(sdk.audience.value)
    required = [renamed[name] for name, field in fields.items() if field.is_required()]
    optional = [renamed[name] for name, field in fields.items() if not field.is_required()]
    positional = [p for p in parameters if p.kind is P.POSITIONAL_OR_KEYWORD]
    assert [p.name for p in positional] == leading + required + optional

    by_name = {p.name: p for p in parameters}
    for name, field in fields.items():
        parameter = by_name[renamed[name]]
        assert parameter.default is (P.empty if field.is_required() else None)
        assert parameter_type(field.annotation) in str(parameter.annotation)

    keyword_only = [p.name for p in parameters if p.kind is P.KEYWORD_ONLY]
    room = ["room"] if sdk.audience is Audience.ROOM_OR_BROADCAST else []
    announcement = ["data", "action_url", "deliver_at"] if sdk.announcement else []
    assert keyword_only == room + announcement
    variadic = [p.name for p in parameters if p.kind is P.VAR_KEYWORD]
    assert variadic == ([] if sdk.announcement else ["options"])

    assert f"``{entry.notification_type}``" in (method.__doc__ or "")


def call_with_example(entry: CatalogEntry) -> tuple[dict[str, Any], dict[str, Any]]:
    """The arguments that send the type's example to its audience, and the ``build`` fields
    that make the same event."""
    sdk, example = entry.sdk, entry.example_data
    renamed = parameter_names(entry)
    arguments = {renamed[name]: value for name, value in example.items() if name in renamed}
    free = {name: value for name, value in example.items() if name not in renamed}
    fields: dict[str, Any] = {"data": example, "action_url": sdk.url_for(example)}
    if sdk.audience in (Audience.USER, Audience.AGENT):
        arguments[sdk.audience.value] = "u1"
        fields["user_id"] = "u1"
    else:
        fields["broadcast"] = True
    if sdk.announcement:
        arguments |= {"title": "Heads up", "message": "Read this", "data": free}
        fields |= {"title": "Heads up", "message": "Read this", "priority": entry.priority}
    else:
        assert not free, "only an announcement takes data beside its fields"
        arguments |= {"event_id": EVENT_ID, "occurred_at": OCCURRED_AT}
        fields |= {"event_id": EVENT_ID, "occurred_at": OCCURRED_AT}
    return arguments, fields


def same_event(envelope: Envelope) -> dict[str, Any]:
    # An announcement takes no event_id or occurred_at: those are new on each call.
    return envelope.model_dump(exclude={"event_id", "occurred_at"})


@pytest.mark.parametrize("entry", ENTRIES, ids=IDS)
async def test_calling_a_method_with_the_example_builds_what_build_builds(
    entry: CatalogEntry, svc: NotificationService, recorder: RecordingPublisher
) -> None:
    arguments, fields = call_with_example(entry)
    event_id = await getattr(svc, entry.method_name)(**arguments)
    (published,) = recorder.published
    expected = svc.build(entry.notification_type, **fields)
    assert published.event_id == event_id
    assert same_event(published) == same_event(expected)
    if not entry.sdk.announcement:
        assert published == expected


@pytest.mark.parametrize(
    "entry", [e for e in ENTRIES if e.sdk.audience is Audience.ROOM_OR_BROADCAST]
)
async def test_a_method_that_may_go_to_a_room_goes_to_the_room_given(
    entry: CatalogEntry, svc: NotificationService, recorder: RecordingPublisher
) -> None:
    arguments, fields = call_with_example(entry)
    await getattr(svc, entry.method_name)(**arguments, room="agents")
    del fields["broadcast"]
    assert recorder.published == [svc.build(entry.notification_type, room="agents", **fields)]


async def test_links_quote_the_ids_they_carry(
    svc: NotificationService, recorder: RecordingPublisher
) -> None:
    await svc.notify_booking_confirmed("u1", "book 456", "T")
    await svc.notify_chat_message("u1", "c/7", "s1", "hi")
    await svc.notify_chat_read("u1", "c/7", "s1")
    links = [envelope.action_url for envelope in recorder.published]
    assert links == ["/bookings/book%20456", "/conversations/c%2F7", None]


async def test_a_wrong_argument_is_refused_as_a_python_call_would_be(
    svc: NotificationService, recorder: RecordingPublisher
) -> None:
    with pytest.raises(TypeError, match="tour_dat"):
        await svc.notify_booking_created("u", "b", "T", tour_dat="x", total_amount=1)  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="total_amount"):
        await svc.notify_booking_created("u1", "b1", "T", "2026-02-15")  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="event_id"):
        await svc.broadcast_system_message("t", "m", event_id=EVENT_ID)  # type: ignore[call-arg]
    assert recorder.published == []


def test_the_stub_of_the_methods_static_types_is_up_to_date() -> None:
    stale = f"{STUB_PATH.name} is out of date: run `{REGENERATE}`"
    assert STUB_PATH.read_text() == sdk_stub(), stale


def test_every_file_generated_from_the_catalog_is_up_to_date() -> None:
    stale = [path.name for path in outdated_files()]
    assert not stale, f"{', '.join(stale)} out of date: run `{REGENERATE}`"
    assert main(["--check"]) == 0


# A type added to a copy of the catalog, as a producer team would add one to the catalog.
class GuideAssigned(EventData):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"booking_id": "b-1", "guide_name": "Dana"}]}
    )
    booking_id: str
    guide_name: str
    phone: str | None = None
    meets_at: AwareDatetime

    def default_title(self) -> str:
        return "Your Guide"

    def default_message(self) -> str:
        return f"{self.guide_name} is your guide"


GUIDE_ASSIGNED = cast(NotificationType, "guide_assigned")
GUIDE_ENTRY = CatalogEntry(
    GUIDE_ASSIGNED, Category.TOUR, Priority.HIGH, GuideAssigned,
    SdkMethod(Audience.USER, action_url="/bookings/{booking_id}",
              parameters={"meets_at": "meeting_time"}),
)  # fmt: skip


class RecordingService(NotificationService):
    """Records what its methods would publish: the catalog's copy has a type the envelope does
    not know."""

    def __init__(self) -> None:
        super().__init__(RecordingPublisher())
        self.calls: list[tuple[str, dict[str, Any]]] = []

    async def notify(self, notification_type: NotificationType | str, **fields: Any) -> uuid.UUID:
        self.calls.append((str(notification_type), fields))
        return EVENT_ID


async def test_a_type_added_to_a_catalog_gets_its_method_with_no_other_change() -> None:
    catalog = {**CATALOG, GUIDE_ASSIGNED: GUIDE_ENTRY}
    extended = type("Extended", (RecordingService,), catalog_methods(catalog))
    service = extended()
    method = service.notify_guide_assigned

    assert str(inspect.signature(method)) == (
        "(user_id: 'str', booking_id: 'str', guide_name: 'str', meeting_time: 'When', "
        "phone: 'str | None' = None, **options: 'Unpack[Options]') -> 'uuid.UUID'"
    )
    meets_at = datetime(2026, 2, 15, 7, 45, tzinfo=UTC)
    assert await method("u1", "b 1", "Dana", meets_at, title="Meet Dana") == EVENT_ID
    assert service.calls == [
        ("guide_assigned", {
            "user_id": "u1", "action_url": "/bookings/b%201", "title": "Meet Dana",
            "data": {"booking_id": "b 1", "guide_name": "Dana", "meets_at": meets_at},
        })
    ]  # fmt: skip

    stub = sdk_stub(catalog)
    assert stub.startswith(sdk_stub().split("\nclass ")[0])
    assert "    async def notify_guide_assigned(\n        self,\n        user_id: str," in stub
    assert "        meeting_time: When,\n        phone: str | None = None,\n" in stub


def test_a_catalog_entry_may_only_name_fields_its_model_has() -> None:
    with pytest.raises(ValueError, match="meeting_point"):
        CatalogEntry(
            GUIDE_ASSIGNED, Category.TOUR, Priority.HIGH, GuideAssigned,
            SdkMethod(Audience.USER, action_url="/tours/{meeting_point}"),
        )  # fmt: skip


def test_a_field_type_the_sdk_does_not_know_is_named() -> None:
    with pytest.raises(TypeError, match="_PARAMETER_TYPES"):
        parameter_type(complex)
