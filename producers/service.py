"""``NotificationService``: the seed's typed API for domain services.

Each method builds an event and validates it before anything is sent, so a wrong field raises
a pydantic ValidationError naming it; then it publishes the event with a broker confirm and
returns its event_id. Every method takes the optional keyword arguments of ``Options`` to
override the catalog's defaults (title, message, priority, action_url) or to fix the event_id
(to make a retry of the caller idempotent).

The methods of the catalog's types (``notify_booking_created``, ...,
``broadcast_system_message``) are not written here: they are made from the catalog when the
class is created (``catalog_methods``), one per type, from the type's data model and its
``SdkMethod`` (producers.catalog). Each has a real signature and docstring; their static types
are in ``producers/sdk_methods.pyi``, written from the same signatures by
``python -m producers.service --regenerate`` (a unit test keeps it up to date).
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import json
import re
import sys
import textwrap
import types
import typing
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypedDict, TypeVar

from prometheus_client import CollectorRegistry
from pydantic import AwareDatetime

from producers.catalog import CATALOG, Audience, CatalogEntry, NotificationType, Priority
from producers.envelope import SCHEMA_VERSION, Envelope, new_event_id
from producers.messages import event_fields
from producers.publisher import Publisher
from producers.settings import Settings

if TYPE_CHECKING:
    from producers.sdk_methods import CatalogMethods
else:
    CatalogMethods = object

Money = Decimal | float | int | str
When = datetime | str


class Options(TypedDict, total=False):
    title: str
    message: str
    priority: Priority | str
    action_url: str | None
    occurred_at: datetime
    event_id: uuid.UUID
    # Deliver later: logged at once, delivered at this (aware) time, at most 366 days ahead
    # (docs/events.md, "Scheduled notifications").
    deliver_at: datetime


def _given(data: dict[str, Any]) -> dict[str, Any]:
    """The data without the optional fields the caller left out (None), as a producer writing
    the JSON by hand would omit them."""
    return {key: value for key, value in data.items() if value is not None}


# The methods of the catalog's types

STUB_PATH = Path(__file__).with_name("sdk_methods.pyi")
# Writes the stub and the other files generated from the catalog (``main`` below).
REGENERATE = "python -m producers.service --regenerate"

_Parameter = inspect.Parameter
_POSITIONAL, _KEYWORD = _Parameter.POSITIONAL_OR_KEYWORD, _Parameter.KEYWORD_ONLY

# A docstring line in the stub: 100 columns less the indent and the opening quotes.
_DOC_WIDTH = 88

_RECIPIENT = {Audience.USER: "user_id", Audience.AGENT: "agent_id"}

_AUDIENCE_TEXT = {
    Audience.USER: "to the user ``user_id``",
    Audience.AGENT: "to the agent ``agent_id`` (the agent's user id)",
    Audience.BROADCAST: "to everybody",
    Audience.ROOM_OR_BROADCAST: "to the users in ``room``, or to everybody without one",
}

# What a parameter accepts for a data field of each type: what pydantic validates it from, as a
# caller has it (an amount as a Decimal, a number or a decimal string; a day as a date or an ISO
# string). A field of another type needs its line here.
_PARAMETER_TYPES: dict[object, str] = {
    str: "str",
    int: "int",
    float: "float",
    bool: "bool",
    Decimal: "Money",
    date: "date | str",
    datetime: "When",
    AwareDatetime: "When",
    Any: "Any",
}

# The imports of the stub, each written when its name appears in an annotation.
_STUB_IMPORTS = {
    "uuid": ("", "import uuid"),
    "Mapping": ("collections.abc", "Mapping"),
    "date": ("datetime", "date"),
    "datetime": ("datetime", "datetime"),
    "Any": ("typing", "Any"),
    "Unpack": ("typing", "Unpack"),
    "Priority": ("producers.catalog", "Priority"),
    "Money": ("producers.service", "Money"),
    "Options": ("producers.service", "Options"),
    "When": ("producers.service", "When"),
}


def parameter_type(annotation: object) -> str:
    """The annotation, as text, of the SDK parameter for a data field of this type."""
    if typing.get_origin(annotation) is typing.Annotated:
        return parameter_type(typing.get_args(annotation)[0])
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        members = typing.get_args(annotation)
        text = " | ".join(parameter_type(m) for m in members if m is not type(None))
        return text + " | None" if type(None) in members else text
    try:
        return _PARAMETER_TYPES[annotation]
    except (KeyError, TypeError):
        raise TypeError(
            f"no SDK parameter type for {annotation!r}: add one to producers.service "
            "_PARAMETER_TYPES"
        ) from None


def _data_parameters(entry: CatalogEntry) -> dict[str, str]:
    """Data field -> parameter name, required fields first, each group in declared order."""
    fields = entry.data_model.model_fields
    ordered = sorted(fields, key=lambda name: not fields[name].is_required())
    return {name: entry.sdk.parameters.get(name, name) for name in ordered}


def method_signature(entry: CatalogEntry) -> inspect.Signature:
    """The signature of the type's method: ``self``; for an announcement ``title, message,
    priority``; the recipient; the data fields; ``room`` if it may go to a room; then the
    options (an announcement's: ``data`` and ``action_url``)."""
    sdk = entry.sdk
    parameters = [_Parameter("self", _POSITIONAL)]
    if sdk.announcement:
        parameters += [
            _Parameter("title", _POSITIONAL, annotation="str"),
            _Parameter("message", _POSITIONAL, annotation="str"),
            _Parameter(
                "priority", _POSITIONAL, annotation="Priority | str", default=entry.priority
            ),
        ]
    if sdk.audience in _RECIPIENT:
        parameters.append(_Parameter(_RECIPIENT[sdk.audience], _POSITIONAL, annotation="str"))
    fields = entry.data_model.model_fields
    for name, parameter in _data_parameters(entry).items():
        field = fields[name]
        annotation = parameter_type(field.annotation)
        if field.is_required():
            parameters.append(_Parameter(parameter, _POSITIONAL, annotation=annotation))
        else:
            if not annotation.endswith(" | None"):
                annotation += " | None"
            parameters.append(
                _Parameter(parameter, _POSITIONAL, annotation=annotation, default=None)
            )
    if sdk.audience is Audience.ROOM_OR_BROADCAST:
        parameters.append(_Parameter("room", _KEYWORD, annotation="str | None", default=None))
    if sdk.announcement:
        parameters += [
            _Parameter("data", _KEYWORD, annotation="Mapping[str, Any] | None", default=None),
            _Parameter("action_url", _KEYWORD, annotation="str | None", default=None),
            _Parameter("deliver_at", _KEYWORD, annotation="datetime | None", default=None),
        ]
    else:
        parameters.append(
            _Parameter("options", _Parameter.VAR_KEYWORD, annotation="Unpack[Options]")
        )
    taken = [p.name for p in parameters if p.name in Options.__optional_keys__]
    if taken and not sdk.announcement:
        raise TypeError(f"{entry.notification_type}: a parameter is named like an option: {taken}")
    try:
        return inspect.Signature(parameters, return_annotation="uuid.UUID")
    except ValueError as error:
        raise TypeError(f"{entry.notification_type}: {error}") from None


def method_doc(entry: CatalogEntry) -> str:
    """The docstring of the type's method, wrapped to fit the stub's lines."""
    sdk = entry.sdk
    summary = (
        f"Publish one ``{entry.notification_type}`` notification "
        f"{_AUDIENCE_TEXT[sdk.audience]}; return its event_id once the broker has confirmed it."
    )
    details = [
        f"Category {entry.category}, default priority {entry.priority}, data "
        f"``{entry.data_model.__name__}`` (producers.catalog)."
    ]
    details += [
        f"``{parameter}`` is the data's ``{name}``."
        for name, parameter in _data_parameters(entry).items()
        if parameter != name
    ]
    if sdk.action_url:
        details.append(f"It links to ``{sdk.action_url}``.")
    if sdk.announcement:
        details.append("The caller writes the title and message; ``data`` is free-form.")
    else:
        details.append(
            "The keyword options title, message, priority, action_url, occurred_at and "
            "event_id override the catalog's defaults; deliver_at schedules it for later."
        )
    paragraphs = [textwrap.fill(summary, _DOC_WIDTH), textwrap.fill(" ".join(details), _DOC_WIDTH)]
    return "\n\n".join(paragraphs)


MethodFunction = Callable[..., Awaitable[uuid.UUID]]


def catalog_method(entry: CatalogEntry) -> MethodFunction:
    """The method of ``NotificationService`` that publishes a notification of the type."""
    signature = method_signature(entry)
    sdk = entry.sdk
    data_parameters = _data_parameters(entry)
    recipient = _RECIPIENT.get(sdk.audience)

    async def method(self: NotificationService, /, *args: Any, **kwargs: Any) -> uuid.UUID:
        given = signature.bind(self, *args, **kwargs).arguments
        declared = {name: given.get(parameter) for name, parameter in data_parameters.items()}
        fields: dict[str, Any] = {}
        if recipient is not None:
            fields["user_id"] = given[recipient]
        elif sdk.audience is Audience.ROOM_OR_BROADCAST and given.get("room"):
            fields["room"] = given["room"]
        else:
            fields["broadcast"] = True
        if sdk.action_url is not None:
            fields["action_url"] = sdk.url_for(declared)
        if sdk.announcement:
            data = {**(given.get("data") or {}), **_given(declared)}
            fields["title"], fields["message"] = given["title"], given["message"]
            fields["priority"] = given.get("priority", entry.priority)
            fields["action_url"] = given.get("action_url")
            fields["deliver_at"] = given.get("deliver_at")
        else:
            data = _given(declared)
            fields.update(given.get("options", {}))
        return await self.notify(entry.notification_type, data=data, **fields)

    method.__name__ = entry.method_name
    method.__qualname__ = f"NotificationService.{entry.method_name}"
    method.__doc__ = method_doc(entry)
    method.__dict__["__signature__"] = signature
    return method


def catalog_methods(
    catalog: Mapping[NotificationType, CatalogEntry] = CATALOG,
) -> dict[str, MethodFunction]:
    """One method per type of the catalog, by name."""
    return {entry.method_name: catalog_method(entry) for entry in catalog.values()}


_Class = TypeVar("_Class", bound=type)


def _with_catalog_methods(cls: _Class) -> _Class:
    for name, method in catalog_methods().items():
        if name in vars(cls):
            raise TypeError(f"{cls.__name__}.{name} is written by hand and made from the catalog")
        method.__qualname__ = f"{cls.__qualname__}.{name}"
        setattr(cls, name, method)
    return cls


@_with_catalog_methods
class NotificationService(CatalogMethods):
    def __init__(
        self,
        publisher: Publisher | None = None,
        *,
        producer: str | None = None,
        settings: Settings | None = None,
        registry: CollectorRegistry | None = None,
    ) -> None:
        # ``registry``: where a publisher made here counts (``Publisher``, docs/metrics.md).
        self.publisher = publisher or Publisher(settings, registry=registry)
        self.producer = producer

    def build(
        self,
        notification_type: NotificationType | str,
        *,
        user_id: str | None = None,
        room: str | None = None,
        broadcast: bool = False,
        data: Mapping[str, Any] | None = None,
        title: str | None = None,
        message: str | None = None,
        priority: Priority | str | None = None,
        action_url: str | None = None,
        occurred_at: datetime | None = None,
        event_id: uuid.UUID | None = None,
        deliver_at: datetime | None = None,
    ) -> Envelope:
        """A validated envelope; raises pydantic.ValidationError naming the bad field.
        ``deliver_at`` (an aware datetime, at most 366 days ahead) schedules it: it is logged
        at once and delivered at that time; ``cancel`` withdraws it until then."""
        data = dict(data or {})
        if notification_type in CATALOG:
            # Validated on its own first, so that an error names the data field itself
            # (``tour_date``) under the type's model (``BookingCreated``).
            CATALOG[NotificationType(notification_type)].parse_data(data)
        return Envelope.model_validate(
            {
                "event_id": event_id or new_event_id(),
                "schema_version": SCHEMA_VERSION,
                "notification_type": notification_type,
                "priority": priority,
                "user_id": user_id,
                "room": room,
                "broadcast": broadcast,
                "title": title,
                "message": message,
                "data": data,
                "action_url": action_url,
                "occurred_at": occurred_at,
                "producer": self.producer,
                **({"deliver_at": deliver_at} if deliver_at is not None else {}),
            }
        )

    async def notify(self, notification_type: NotificationType | str, **fields: Any) -> uuid.UUID:
        """Build and publish one notification of any catalog type; return its event_id."""
        envelope = await self.publisher.publish(self.build(notification_type, **fields))
        return envelope.event_id

    async def publish_many(self, envelopes: Iterable[Envelope]) -> list[uuid.UUID]:
        """Publish built envelopes as one batch; return their event_ids once all are confirmed."""
        return [e.event_id for e in await self.publisher.publish_many(list(envelopes))]

    async def cancel(self, event_id: uuid.UUID) -> uuid.UUID:
        """Withdraw a notification scheduled with ``deliver_at`` before it is due; return the
        cancel event's id once the broker has confirmed it. Too late (already delivered) or
        an unknown id: nothing changes."""
        cancelled = await self.publisher.cancel(event_id, producer=self.producer)
        return cancelled.event_id

    # The seed's connection-manager calls, which here publish events (producers.messages)

    async def send_personal_message(self, message: Mapping[str, Any], user_id: str) -> uuid.UUID:
        return await self.notify(user_id=user_id, **event_fields(message))

    async def broadcast(self, message: Mapping[str, Any]) -> uuid.UUID:
        return await self.notify(broadcast=True, **event_fields(message))

    async def broadcast_to_room(self, message: Mapping[str, Any], room: str) -> uuid.UUID:
        return await self.notify(room=room, **event_fields(message))

    async def close(self) -> None:
        await self.publisher.close()


# The stub of the methods' static types


def _default_text(value: object) -> str:
    if isinstance(value, Priority):
        return f"Priority.{value.name}"
    return repr(value)


def _stub_method(entry: CatalogEntry) -> list[str]:
    signature = method_signature(entry)
    lines = [f"    async def {entry.method_name}("]
    keyword_only = False
    for parameter in signature.parameters.values():
        if parameter.kind is _KEYWORD and not keyword_only:
            lines.append("        *,")
            keyword_only = True
        text = parameter.name
        if parameter.kind is _Parameter.VAR_KEYWORD:
            text = "**" + text
        if parameter.annotation is not _Parameter.empty:
            text += f": {parameter.annotation}"
        if parameter.default is not _Parameter.empty:
            text += f" = {_default_text(parameter.default)}"
        lines.append(f"        {text},")
    lines.append(f"    ) -> {signature.return_annotation}:")
    doc = method_doc(entry).splitlines()
    lines.append(f'        """{doc[0]}')
    lines += [f"        {line}".rstrip() for line in doc[1:]]
    lines.append('        """')
    return lines


def _stub_imports(text: str) -> list[str]:
    used = set(re.findall(r"\w+", text))
    modules: dict[str, list[str]] = {}
    plain = []
    for name, (module, imported) in _STUB_IMPORTS.items():
        if name not in used:
            continue
        if module:
            modules.setdefault(module, []).append(imported)
        else:
            plain.append(imported)
    standard = sorted(plain) + [
        f"from {module} import {', '.join(sorted(names))}"
        for module, names in sorted(modules.items())
        if not module.startswith("producers.")
    ]
    own = [
        f"from {module} import {', '.join(sorted(names))}"
        for module, names in sorted(modules.items())
        if module.startswith("producers.")
    ]
    return [*standard, "", *own]


def sdk_stub(catalog: Mapping[NotificationType, CatalogEntry] = CATALOG) -> str:
    """The text of producers/sdk_methods.pyi: the static types of the catalog's methods."""
    methods = ["\n".join(_stub_method(entry)) for entry in catalog.values()]
    body = "\n\n".join(methods)
    header = [
        '"""The static types of the methods ``NotificationService`` makes from the catalog.',
        "",
        f"Generated from producers.catalog by ``{REGENERATE}``: edit the",
        'catalog, not this file."""',
        "",
        *_stub_imports(body),
        "",
        "class CatalogMethods:",
        '    """The methods of the catalog\'s types, one per type."""',
        "",
    ]
    return "\n".join(header) + "\n" + body + "\n"


# The files generated from the catalog


ASYNCAPI_PATH = Path(__file__).resolve().parents[1] / "docs" / "asyncapi.yaml"
ASYNCAPI_HEADER = (
    "# The AsyncAPI 3.0 document of the notification pipeline. It is generated from the code:\n"
    "# `notify schema asyncapi` prints it (as JSON), and a test keeps this file equal to it.\n"
)


def asyncapi_yaml() -> str:
    """The text of docs/asyncapi.yaml: the AsyncAPI document of producers.asyncapi."""
    from producers.asyncapi import asyncapi_document

    yaml = importlib.import_module("yaml")  # PyYAML, which uvicorn[standard] brings
    document = json.loads(json.dumps(asyncapi_document()))
    body: str = yaml.safe_dump(document, sort_keys=False, width=100, allow_unicode=True)
    return ASYNCAPI_HEADER + body


def generated_files() -> dict[Path, Callable[[], str]]:
    """Each file generated from the catalog, and what makes its text: the stub, and in a
    source checkout docs/asyncapi.yaml."""
    files: dict[Path, Callable[[], str]] = {STUB_PATH: sdk_stub}
    if ASYNCAPI_PATH.parent.is_dir():
        files[ASYNCAPI_PATH] = asyncapi_yaml
    return files


def outdated_files() -> dict[Path, str]:
    """The generated files whose text is not what the catalog makes, with that text."""
    stale = {}
    for path, make in generated_files().items():
        text = make()
        if not path.exists() or path.read_text() != text:
            stale[path] = text
    return stale


def main(argv: list[str] | None = None) -> int:
    """``python -m producers.service --regenerate`` writes the files generated from the
    catalog that are out of date; ``--check`` only names them, and exits 1 if there are any."""
    parser = argparse.ArgumentParser(
        prog="python -m producers.service",
        description="Write the files generated from the notification catalog: "
        "producers/sdk_methods.pyi and docs/asyncapi.yaml.",
    )
    action = parser.add_mutually_exclusive_group(required=True)
    action.add_argument("--regenerate", action="store_true", help="write those out of date")
    action.add_argument("--check", action="store_true", help="name those out of date; exit 1")
    arguments = parser.parse_args(argv)
    stale = outdated_files()
    for path, text in stale.items():
        if arguments.regenerate:
            path.write_text(text)
            print(f"wrote {path.name}")
        else:
            print(f"out of date: {path.name}", file=sys.stderr)
    if not stale:
        print("up to date")
    return 1 if stale and arguments.check else 0


if __name__ == "__main__":
    sys.exit(main())
