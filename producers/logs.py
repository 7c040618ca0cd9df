"""The log format of every ``notify`` process: text lines (the default) or, with
``LOG_FORMAT=json``, one JSON object a line (docs/metrics.md, "Logs").

A JSON line has ``time`` (UTC, ISO 8601), ``level``, ``logger`` and ``message``, an ``exc``
with the traceback when there is one, and the context the line is about, when the code that
logs it names it (``extra=context(...)``): ``event_id``, ``seq``, ``connection_id``,
``event_type``, ``count``. A user id is never a field of its own, and nothing from a request
(its query string, its headers, and so a token) is ever added to a line.

Following one notification: every process logs its event_id at level debug, once it is
published (producer), stored at its seq (dispatcher), and delivered (edge), so that
``grep EVENT_ID`` over the three processes' logs with ``LOG_LEVEL=debug`` shows its way.
"""

from __future__ import annotations

import logging
import os
import re
from datetime import UTC, datetime
from typing import Any

import orjson

FORMAT_ENV = "LOG_FORMAT"
FORMATS = ("text", "json")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

# The context fields a line may carry (``context``), in the order they are written.
CONTEXT_FIELDS = ("event_id", "seq", "connection_id", "event_type", "count")


def context(**fields: object) -> dict[str, Any]:
    """The ``extra`` of a log call: the context fields given (``CONTEXT_FIELDS``), as
    strings or integers."""
    unknown = set(fields) - set(CONTEXT_FIELDS)
    if unknown:
        raise ValueError(f"not a log context field: {sorted(unknown)}")
    return {
        name: value if isinstance(value, int | str) or value is None else str(value)
        for name, value in fields.items()
    }


# A JWT (three base64url parts, the first an encoded JSON object), the value of a ``token``
# query parameter, and what follows ``Bearer`` (a header) or ``bearer.`` (a subprotocol).
_SECRETS = re.compile(
    r"eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*"
    r"|(?<=[?&]token=)[^&\s\"']+"
    r"|(?<=[Bb]earer )[^\s,\"']+"
    r"|(?<=bearer\.)[^\s,\"']+"
)
_HINTS = ("eyJ", "token=", "earer")


def redact(text: str) -> str:
    """``text`` with every token in it replaced by ``[redacted]``."""
    if not any(hint in text for hint in _HINTS):
        return text
    return _SECRETS.sub("[redacted]", text)


class Redact(logging.Filter):
    """Takes tokens out of every line, whoever logs it: a library's debug lines (the
    WebSocket state machine's request line carries the query string) included."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = redact(message)
        if clean is not message:
            record.msg, record.args = clean, ()
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in CONTEXT_FIELDS:
            value = record.__dict__.get(name)
            if value is not None:
                line[name] = value
        if record.exc_info and record.exc_info[1] is not None:
            line["exc"] = self.formatException(record.exc_info)
        elif record.exc_text:
            line["exc"] = record.exc_text
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        return orjson.dumps(line, default=str).decode()


def log_format() -> str:
    """``LOG_FORMAT`` (``text`` or ``json``); anything else is refused with a readable error."""
    value = os.environ.get(FORMAT_ENV, "text").strip().lower() or "text"
    if value not in FORMATS:
        raise ValueError(f"{FORMAT_ENV} must be one of {', '.join(FORMATS)}, not {value!r}")
    return value


def formatter(kind: str) -> logging.Formatter:
    return JsonFormatter() if kind == "json" else logging.Formatter(TEXT_FORMAT)
