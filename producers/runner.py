"""Running a ``notify`` command's coroutine: uvloop when available, logging set up once, and
the pipeline's own errors printed as one line instead of a traceback."""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Coroutine
from typing import Any

import click

from producers.errors import NotifyError


def setup_logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger("aio_pika").setLevel(logging.WARNING)
    logging.getLogger("aiormq").setLevel(logging.WARNING)
    logging.getLogger("alembic").setLevel(logging.WARNING)


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
