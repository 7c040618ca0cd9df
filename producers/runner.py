"""Running a ``notify`` command's coroutine: uvloop when available, logging set up once, and
the pipeline's own errors printed as one line instead of a traceback."""

from __future__ import annotations

import asyncio
import logging
import re
import sys
from collections.abc import Coroutine
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import click

from producers.errors import NotifyError


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
    logging.basicConfig(
        level=level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    for handler in logging.getLogger().handlers:
        handler.addFilter(_OneLine())
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
