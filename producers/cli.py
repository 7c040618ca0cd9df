"""The ``notify`` command: run the pipeline's processes and talk to it from a shell.

Errors the operator can act on are printed as one line, without a traceback.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import subprocess
import sys
from collections.abc import Coroutine
from typing import Any

import click
import orjson
from pydantic import ValidationError

from producers.envelope import describe
from producers.errors import NotifyError
from producers.settings import Settings, get_settings, redact

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000
SHUTDOWN_GRACE = 10.0


def _setup_logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger("aio_pika").setLevel(logging.WARNING)
    logging.getLogger("aiormq").setLevel(logging.WARNING)
    logging.getLogger("alembic").setLevel(logging.WARNING)


def _run(coro: Coroutine[Any, Any, Any]) -> Any:
    """Run a coroutine on uvloop when available, turning NotifyError into a clean exit."""
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


@click.group()
@click.option(
    "--log-level", default=lambda: os.environ.get("LOG_LEVEL", "info"), show_default="info"
)
@click.pass_context
def cli(ctx: click.Context, log_level: str) -> None:
    """Real-time notification pipeline: RabbitMQ in, PostgreSQL event log, WebSockets out."""
    _setup_logging(log_level)
    try:
        ctx.obj = get_settings()
    except ValidationError as exc:
        raise click.ClickException(f"invalid configuration: {describe(exc)}") from None


@cli.command()
@click.pass_obj
def migrate(settings: Settings) -> None:
    """Create the database if it is missing and migrate it to the newest revision."""
    from dispatcher.database import migrate as run_migrations

    created = _run(run_migrations(settings.database_url))
    verb = "created and migrated" if created else "migrated"
    click.echo(f"database {redact(settings.database_url)} {verb} to head")


@cli.command()
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

    _run(main())


@cli.command()
@click.option("--host", default=DEFAULT_HOST, show_default=True)
@click.option("--port", default=DEFAULT_PORT, show_default=True, type=int)
@click.pass_obj
def edge(settings: Settings, host: str, port: int) -> None:
    """Serve WebSocket clients and the REST API."""
    from socket_edge.server import preflight, serve

    _run(preflight(settings))
    serve(settings, host, port)


@cli.command()
@click.option("--host", default=DEFAULT_HOST, show_default=True)
@click.option("--port", default=DEFAULT_PORT, show_default=True, type=int)
@click.pass_obj
def up(settings: Settings, host: str, port: int) -> None:
    """Migrate, then run a dispatcher and an edge until Ctrl-C."""
    from dispatcher.database import migrate as run_migrations

    _run(run_migrations(settings.database_url))
    click.echo(f"database {redact(settings.database_url)} is at head", err=True)
    base = [sys.executable, "-m", "producers.cli"]
    children = [
        subprocess.Popen([*base, "dispatcher"]),
        subprocess.Popen([*base, "edge", "--host", host, "--port", str(port)]),
    ]
    click.echo(
        f"pipeline up: WebSocket ws://{host}:{port}/ws/connect?user_id=... (Ctrl-C stops)",
        err=True,
    )
    sys.exit(_supervise(children))


def _supervise(children: list[subprocess.Popen[bytes]]) -> int:
    """Wait until a child exits or a signal arrives, then stop every child and return."""
    stopping = False

    def on_signal(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    code = 0
    while not stopping:
        exited = [c for c in children if c.poll() is not None]
        if exited:
            code = exited[0].returncode or 1
            click.echo(f"a pipeline process exited ({code}); stopping the others", err=True)
            break
        signal.sigtimedwait([signal.SIGCHLD], 1.0)
    for child in children:
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
    for child in children:
        try:
            child.wait(SHUTDOWN_GRACE)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
    return code


def _parse_data(data_json: str | None, pairs: tuple[str, ...]) -> dict[str, Any]:
    data: dict[str, Any] = {}
    if data_json:
        try:
            loaded = orjson.loads(data_json)
        except orjson.JSONDecodeError as exc:
            raise click.BadParameter(f"not valid JSON: {exc}", param_hint="--data") from None
        if not isinstance(loaded, dict):
            raise click.BadParameter("must be a JSON object", param_hint="--data")
        data.update(loaded)
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{pair!r} is not KEY=VALUE", param_hint="-d")
        data[key] = value
    return data


@cli.command()
@click.option("--type", "notification_type", required=True, help="a catalog notification_type")
@click.option("--user", "user_id", help="the recipient user id")
@click.option("--room", help="the recipient room")
@click.option("--broadcast", is_flag=True, help="send to everybody")
@click.option("--data", "data_json", help="the data object as JSON")
@click.option("-d", "pairs", multiple=True, metavar="KEY=VALUE", help="one data field")
@click.option("--title")
@click.option("--message")
@click.option("--priority", type=click.Choice(["urgent", "high", "medium", "low"]))
@click.option("--action-url")
@click.option("--producer", default="notify-cli", show_default=True)
@click.pass_obj
def send(
    settings: Settings,
    notification_type: str,
    user_id: str | None,
    room: str | None,
    broadcast: bool,
    data_json: str | None,
    pairs: tuple[str, ...],
    title: str | None,
    message: str | None,
    priority: str | None,
    action_url: str | None,
    producer: str,
) -> None:
    """Publish one event and print its event_id."""
    from producers.service import NotificationService

    service = NotificationService(producer=producer, settings=settings)
    try:
        envelope = service.build(
            notification_type,
            user_id=user_id,
            room=room,
            broadcast=broadcast,
            data=_parse_data(data_json, pairs),
            title=title,
            message=message,
            priority=priority,
            action_url=action_url,
        )
    except ValidationError as exc:
        raise click.ClickException(f"invalid event: {describe(exc)}") from None

    async def publish() -> None:
        try:
            await service.publisher.publish(envelope)
        finally:
            await service.close()

    _run(publish())
    click.echo(str(envelope.event_id))


@cli.command()
@click.option("--user", "user_id", required=True)
@click.option("--url", default=f"ws://{DEFAULT_HOST}:{DEFAULT_PORT}", show_default=True)
@click.option("--since", type=int, help="replay every notification after this seq")
@click.option("--token", envvar="NOTIFY_TOKEN", help="JWT (or NOTIFY_TOKEN)")
@click.option("--count", type=int, help="exit after this many notifications")
def listen(user_id: str, url: str, since: int | None, token: str | None, count: int | None) -> None:
    """Connect as a user and print every frame, one JSON object a line."""
    from socket_edge.listen import listen as run_listen

    def emit(line: str) -> None:
        click.echo(line)

    with contextlib.suppress(KeyboardInterrupt):
        _run(run_listen(url, user_id, since=since, token=token, count=count, emit=emit))


def main() -> None:
    cli()


if __name__ == "__main__":
    main()
