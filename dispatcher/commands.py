"""``notify`` commands of the dispatcher and its database."""

from __future__ import annotations

import asyncio
import signal

import click

from producers.runner import run
from producers.settings import Settings, redact


@click.command()
@click.pass_obj
def migrate(settings: Settings) -> None:
    """Create the database if it is missing and migrate it to the newest revision."""
    from dispatcher.database import migrate as run_migrations

    created = run(run_migrations(settings.database_url))
    verb = "created and migrated" if created else "migrated"
    click.echo(f"database {redact(settings.database_url)} {verb} to head")


@click.command()
@click.pass_obj
def dispatcher(settings: Settings) -> None:
    """Consume events, store them in PostgreSQL and route them to the edges."""
    from dispatcher.consumer import run_dispatcher

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await run_dispatcher(settings, stop)

    run(main())


COMMANDS: list[click.Command] = [migrate, dispatcher]
