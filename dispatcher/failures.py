"""Classifying failures, in one place: a database that is away, an event that cannot be
stored, a broker connection that was closed under a pending operation."""

from __future__ import annotations

import asyncio
from typing import Any

import aiormq
import asyncpg
import sqlalchemy.exc


def is_missing_partition(exc: BaseException) -> bool:
    """True for PostgreSQL's refusal of a row whose month has no partition of the event log
    (dispatcher/partitions.py): a matter of time, not of the events."""
    if isinstance(exc, sqlalchemy.exc.DBAPIError) and exc.orig is not None:
        exc = getattr(exc.orig, "__cause__", None) or exc.orig
    return isinstance(exc, asyncpg.CheckViolationError) and "no partition of relation" in str(exc)


# The header a quorum queue puts on a redelivered message: how often it was returned before.
DELIVERY_COUNT_HEADER = "x-delivery-count"


def is_transient(exc: BaseException) -> bool:
    """True for failures that say "the database is not reachable right now", which are
    retried in place, as opposed to a failure caused by the events themselves."""
    if isinstance(exc, sqlalchemy.exc.DBAPIError):
        if exc.connection_invalidated:
            return True
        exc = exc.orig if exc.orig is not None else exc
        cause = getattr(exc, "__cause__", None)
        if cause is not None:
            exc = cause
    return isinstance(
        exc,
        OSError
        | TimeoutError
        | asyncpg.CannotConnectNowError
        | asyncpg.ConnectionDoesNotExistError
        | asyncpg.InterfaceError
        | asyncpg.AdminShutdownError
        | asyncpg.TooManyConnectionsError
        | sqlalchemy.exc.InterfaceError
        | sqlalchemy.exc.OperationalError,
    )


def one_line(exc: BaseException) -> str:
    """``Type: first line of the message``, for a log line or a dead-letter header."""
    text = str(exc).strip()
    if isinstance(exc, sqlalchemy.exc.DBAPIError) and exc.orig is not None:
        cause = exc.orig.__cause__ or exc.orig
        exc, text = cause, str(cause).strip()
    first = text.splitlines()[0] if text else ""
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__


def is_last_delivery(message: Any, delivery_limit: int) -> bool:
    """True when the broker will not redeliver ``message`` if it is returned once more, so
    the dispatcher dead-letters it itself, with the reason in a header an operator can read
    (the broker's own dead-lettering at the limit would only say "delivery_limit")."""
    returned = (message.headers or {}).get(DELIVERY_COUNT_HEADER, 0)
    count = returned if isinstance(returned, int) else 0
    return count + 1 >= delivery_limit


# What a publish, a confirm, an ack or a nack raises when the broker connection or channel is
# gone; a CancelledError among them counts only as ``broker_cancelled`` says.
BROKER_FAILURES = (
    aiormq.exceptions.AMQPError,
    ConnectionError,
    RuntimeError,
    TimeoutError,
    asyncio.CancelledError,
)


def broker_cancelled(exc: BaseException) -> bool:
    """True for a CancelledError that is not a cancellation of the running task: aiormq
    cancels the pending futures of a connection that the broker closed (a restart, a forced
    close), and those must be handled like a lost connection, not end the process."""
    task = asyncio.current_task()
    return isinstance(exc, asyncio.CancelledError) and task is not None and task.cancelling() == 0
