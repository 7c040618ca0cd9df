"""Running a ``notify`` command: the settings of its process read once, its coroutine run
with uvloop when available, logging set up once, and the pipeline's own errors (invalid
settings among them) printed as one line instead of a traceback."""

from __future__ import annotations

import asyncio
import functools
import logging
import re
import sys
from collections.abc import Callable, Coroutine
from importlib.metadata import PackageNotFoundError, version
from typing import Any, Concatenate, ParamSpec, TypeVar

import click
from pydantic import ValidationError

from producers.envelope import describe
from producers.errors import NotifyError
from producers.settings import Settings

S = TypeVar("S", bound=Settings)
P = ParamSpec("P")
R = TypeVar("R")


def version_in(distribution: str, low: tuple[int, ...], high: tuple[int, ...]) -> bool:
    """Whether the installed ``distribution`` is at least ``low`` and below ``high``: the
    range within which code that leans on its internals was checked (each such use says so
    where it is, and tests/unit/test_dependency_contracts.py checks the installed ones)."""
    try:
        installed = version(distribution)
    except PackageNotFoundError:
        return False
    parts = tuple(int(p) for p in re.findall(r"\d+", installed)[: len(low)])
    return low <= parts < high


class _OneLine(logging.Filter):
    """Keeps the broker client's own message but drops its traceback: a lost connection is
    an expected event, reported in one line, and reconnecting is the library's job."""

    PREFIXES = ("aio_pika", "aiormq")

    def filter(self, record: logging.LogRecord) -> bool:
        if not record.name.startswith(self.PREFIXES):
            return True
        if record.exc_info and record.exc_info[1] is not None:
            record.msg = f"{record.getMessage()} ({record.exc_info[1]!r})"
            record.args = ()
        record.exc_info = None
        record.exc_text = None
        return True


def setup_logging(level: str) -> None:
    """Log to stderr at ``level``, as text lines or, with ``LOG_FORMAT=json``, one JSON
    object a line (``producers.logs``)."""
    from producers.logs import Redact, formatter, log_format

    try:
        kind = log_format()
    except ValueError as exc:
        raise click.ClickException(f"invalid configuration: {exc}") from None
    logging.basicConfig(level=level.upper(), stream=sys.stderr)
    for handler in logging.getLogger().handlers:
        handler.setFormatter(formatter(kind))
        handler.addFilter(_OneLine())
        handler.addFilter(Redact())
    for name in (*_OneLine.PREFIXES, "alembic"):
        logging.getLogger(name).setLevel(logging.WARNING)


def run(coro: Coroutine[Any, Any, Any]) -> Any:
    """Run a coroutine to completion, turning NotifyError into a clean exit."""
    try:
        import uvloop

        runner = asyncio.Runner(loop_factory=uvloop.new_event_loop)
    except ImportError:
        runner = asyncio.Runner()
    try:
        with runner:
            return runner.run(coro)
    except NotifyError as exc:
        raise click.ClickException(str(exc)) from None


def load_settings(get: Callable[[], S]) -> S:
    """The settings ``get`` reads from the environment (each process has its own class);
    invalid ones end the command with one line naming the variables at fault."""
    try:
        return get()
    except ValidationError as exc:
        raise click.ClickException(f"invalid configuration: {describe(exc)}") from None


def pass_settings(
    get: Callable[[], S],
) -> Callable[[Callable[Concatenate[S, P], R]], Callable[P, R]]:
    """A command's decorator, like ``click.pass_obj``: the command receives the settings of
    its process as its first argument, read when it runs (``load_settings``)."""

    def decorator(command: Callable[Concatenate[S, P], R]) -> Callable[P, R]:
        @functools.wraps(command)
        def with_settings(*args: P.args, **kwargs: P.kwargs) -> R:
            return command(load_settings(get), *args, **kwargs)

        return with_settings

    return decorator
