"""The ``notify`` command: run the pipeline's processes and talk to it from a shell.

Errors the operator can act on are printed as one line, without a traceback.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from typing import Any

import click
import orjson
from pydantic import ValidationError

from producers.envelope import describe
from producers.runner import run, setup_logging
from producers.settings import Settings, get_settings, redact
from socket_edge.commands import DEFAULT_HOST, DEFAULT_PORT

SHUTDOWN_GRACE = 10.0


@click.group()
@click.option(
    "--log-level", default=lambda: os.environ.get("LOG_LEVEL", "info"), show_default="info"
)
@click.pass_context
def cli(ctx: click.Context, log_level: str) -> None:
    """Real-time notification pipeline: RabbitMQ in, PostgreSQL event log, WebSockets out."""
    setup_logging(log_level)
    try:
        ctx.obj = get_settings()
    except ValidationError as exc:
        raise click.ClickException(f"invalid configuration: {describe(exc)}") from None


@cli.command()
@click.option("--host", default=DEFAULT_HOST, show_default=True)
@click.option("--port", default=DEFAULT_PORT, show_default=True, type=int)
@click.pass_obj
def up(settings: Settings, host: str, port: int) -> None:
    """Migrate, then run a dispatcher and an edge until Ctrl-C."""
    from dispatcher.database import migrate as run_migrations

    run(run_migrations(settings.database_url))
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

    run(publish())
    click.echo(str(envelope.event_id))


def _register() -> None:
    # Each package contributes the commands of its own processes.
    from dispatcher.commands import COMMANDS as dispatcher_commands
    from socket_edge.commands import COMMANDS as edge_commands

    for command in (*dispatcher_commands, *edge_commands):
        cli.add_command(command)


_register()


def main() -> None:
    cli()


if __name__ == "__main__":
    main()
