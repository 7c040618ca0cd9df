"""``notify`` commands of the dispatcher and its database."""

from __future__ import annotations

import asyncio
import signal
from dataclasses import asdict
from datetime import timedelta

import click
import orjson

from dispatcher.settings import DispatcherSettings, get_dispatcher_settings
from producers.runner import pass_settings, run
from producers.settings import redact

LIST_LIMIT = 100
REPLAY_LIMIT = 10_000


@click.command()
@pass_settings(get_dispatcher_settings)
def migrate(settings: DispatcherSettings) -> None:
    """Create the database if it is missing and migrate it to the newest revision."""
    from dispatcher.database import migrate as run_migrations

    created = run(run_migrations(settings.database_url))
    verb = "created and migrated" if created else "migrated"
    click.echo(f"database {redact(settings.database_url)} {verb} to head")


@click.command()
@click.option(
    "--metrics-port",
    type=click.IntRange(0, 65535),
    help="serve Prometheus metrics at http://0.0.0.0:PORT/metrics  "
    "[default: DISPATCHER_METRICS_PORT, or 0: not served]",
)
@pass_settings(get_dispatcher_settings)
def dispatcher(settings: DispatcherSettings, metrics_port: int | None) -> None:
    """Consume events, store them in PostgreSQL and route them to the edges."""
    from dispatcher import metrics
    from dispatcher.consumer import run_dispatcher

    port = settings.dispatcher_metrics_port if metrics_port is None else metrics_port
    if port:
        try:
            metrics.serve(port)
        except OSError as exc:
            raise click.ClickException(
                f"cannot serve metrics on port {port} ({exc.strerror}): choose another with "
                "--metrics-port"
            ) from None

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await run_dispatcher(settings, stop)

    run(main())


@click.command()
@pass_settings(get_dispatcher_settings)
def rebuild(settings: DispatcherSettings) -> None:
    """Drop the projections and rebuild them from the event log; print their checksum."""
    from dispatcher.database import create_engine
    from dispatcher.rebuild import rebuild as run_rebuild

    async def main() -> None:
        engine = create_engine(settings.database_url, pool_size=1)
        try:
            done = await run_rebuild(
                engine, settings.broadcast_unread_window, settings.critical_types
            )
        finally:
            await engine.dispose()
        sum_ = done.checksum
        click.echo(
            f"rebuilt from {done.events} events ({done.skipped} of unknown types left aside): "
            f"{sum_.notifications} notifications, {sum_.recipients} recipient states, "
            f"{sum_.users} user states, {sum_.scheduled} scheduled"
        )
        click.echo(f"checksum {sum_.digest}")

    run(main())


@click.command()
@click.option("--older-than", "older_than", required=True, metavar="AGE", help="e.g. 90d, 36h, 45m")
@pass_settings(get_dispatcher_settings)
def prune(settings: DispatcherSettings, older_than: str) -> None:
    """Remove read notifications older than AGE from the projections (never from the log)."""
    from dispatcher.database import create_engine
    from dispatcher.retention import prune as run_prune

    age = _older_than(older_than)

    async def main() -> None:
        engine = create_engine(settings.database_url, pool_size=1)
        try:
            done = await run_prune(engine, age, settings.broadcast_unread_window)
        finally:
            await engine.dispose()
        click.echo(
            f"pruned {done.removed} notifications created before {done.cutoff.isoformat()} "
            f"(logged as event {done.event_id})"
        )

    run(main())


@click.group("partitions")
def partitions_group() -> None:
    """The event log's monthly partitions: list, make ahead, detach old ones."""


@partitions_group.command("list")
@pass_settings(get_dispatcher_settings)
def list_partitions(settings: DispatcherSettings) -> None:
    """Print each attached partition: name, months, events; then the retention horizon."""
    from dispatcher.database import create_engine
    from dispatcher.partitions import HORIZON, partitions

    async def main() -> None:
        engine = create_engine(settings.database_url, pool_size=1)
        try:
            found = await partitions(engine, count=True)
            async with engine.connect() as conn:
                horizon = (await conn.exec_driver_sql(HORIZON)).scalar_one()
        finally:
            await engine.dispose()
        for p in found:
            click.echo(f"{p.name}  {p.since.date()} .. {p.until.date()}  {p.events} events")
        click.echo(f"{len(found)} partitions; events up to seq {horizon} detached")

    run(main())


@partitions_group.command("create")
@click.option("--months-ahead", default=3, show_default=True, type=click.IntRange(0, 120))
@pass_settings(get_dispatcher_settings)
def create_partitions(settings: DispatcherSettings, months_ahead: int) -> None:
    """Make the partitions of this month and the next MONTHS_AHEAD (the dispatcher does it
    every hour for 3)."""
    from dispatcher.database import create_engine
    from dispatcher.partitions import ensure

    async def main() -> int:
        engine = create_engine(settings.database_url, pool_size=1)
        try:
            return await ensure(engine, months_ahead)
        finally:
            await engine.dispose()

    click.echo(f"{run(main())} partitions made")


@partitions_group.command("detach")
@click.option("--older-than", "older_than", required=True, metavar="AGE", help="e.g. 365d")
@click.option("--drop", is_flag=True, help="drop them (default: move to notification_archive)")
@pass_settings(get_dispatcher_settings)
def detach_partitions(settings: DispatcherSettings, older_than: str, drop: bool) -> None:
    """Detach the months of the log that ended more than AGE ago; rebuilds start after them."""
    from dispatcher.database import create_engine
    from dispatcher.partitions import RetentionRefused, detach

    age = _older_than(older_than)

    async def main() -> None:
        engine = create_engine(settings.database_url, pool_size=1)
        try:
            done = await detach(
                engine, age, settings.broadcast_unread_window, settings.critical_types, drop=drop
            )
        except RetentionRefused as exc:
            raise click.ClickException(str(exc)) from None
        finally:
            await engine.dispose()
        where = "moved to notification_archive" if done.archived else "dropped"
        for p in done.partitions:
            click.echo(f"detached {p.name} ({p.since.date()} .. {p.until.date()}), {where}")
        click.echo(
            f"{len(done.partitions)} partitions detached; events up to seq {done.horizon} are "
            "in notification_base"
        )

    run(main())


@click.group("dead-letters")
def dead_letters() -> None:
    """Inspect and replay the dead-letter queue."""


@dead_letters.command("list")
@click.option("--limit", default=LIST_LIMIT, show_default=True, type=click.IntRange(min=1))
@pass_settings(get_dispatcher_settings)
def list_letters(settings: DispatcherSettings, limit: int) -> None:
    """Print each dead letter as one JSON line: id, routing key, reason, body preview."""
    from dispatcher.dead_letters import list_dead_letters

    letters = run(list_dead_letters(settings.amqp_url, limit))
    for letter in letters:
        click.echo(orjson.dumps(asdict(letter)).decode())
    click.echo(f"{len(letters)} dead letters shown", err=True)


@dead_letters.command("replay")
@click.option("--id", "ids", multiple=True, help="the id shown by list; repeatable (default: all)")
@click.option("--limit", default=REPLAY_LIMIT, show_default=True, type=click.IntRange(min=1))
@pass_settings(get_dispatcher_settings)
def replay_letters(settings: DispatcherSettings, ids: tuple[str, ...], limit: int) -> None:
    """Re-publish dead letters to notifications.events under their original routing key."""
    from dispatcher.dead_letters import replay_dead_letters

    done: list[str] = run(replay_dead_letters(settings.amqp_url, set(ids), limit))
    for name in done:
        click.echo(name)
    missing = set(ids) - set(done)
    click.echo(f"{len(done)} dead letters replayed", err=True)
    if missing:
        raise click.ClickException(
            f"not in the dead-letter queue: {', '.join(sorted(missing))} "
            "(see `notify dead-letters list`)"
        )


COMMANDS: list[click.Command] = [
    migrate,
    dispatcher,
    rebuild,
    prune,
    partitions_group,
    dead_letters,
]


def _older_than(value: str) -> timedelta:
    """``--older-than``'s AGE, or the option's usage error."""
    from dispatcher.retention import parse_age

    try:
        return parse_age(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--older-than") from None
