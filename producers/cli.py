"""The ``notify`` command: run the pipeline's processes and talk to it from a shell.

Errors the operator can act on are printed as one line, without a traceback. The commands of
the dispatcher and of the edge live with their packages and are loaded when first asked for:
importing this module imports neither.
"""

from __future__ import annotations

import importlib
import os
import signal
import subprocess
import sys
import threading
import uuid
from datetime import timedelta
from typing import Any

import click
import orjson
from pydantic import ValidationError

from producers.catalog import NotificationType, Priority
from producers.envelope import describe
from producers.invocation import DEFAULT_HOST, DEFAULT_PORT, DEFAULT_URL, command_name
from producers.outbox_relay import DEFAULT_BATCH_SIZE, DEFAULT_KEEP_SENT, DEFAULT_POLL_INTERVAL
from producers.runner import load_settings, pass_settings, run, setup_logging
from producers.settings import Settings, async_database_url, get_settings, redact

SHUTDOWN_GRACE = 10.0
# Each adds the commands of its own process (its list COMMANDS).
PROCESS_COMMANDS = ("dispatcher.commands", "socket_edge.commands")


class NotifyGroup(click.Group):
    """The ``notify`` group: its own commands, and those of the processes' packages, imported
    the first time a command is asked for that is not its own (or when all are listed)."""

    _loaded = False

    def _load_process_commands(self) -> None:
        if self._loaded:
            return
        self._loaded = True
        for module in PROCESS_COMMANDS:
            for command in importlib.import_module(module).COMMANDS:
                self.add_command(command)

    def list_commands(self, ctx: click.Context) -> list[str]:
        self._load_process_commands()
        return super().list_commands(ctx)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        found = super().get_command(ctx, cmd_name)
        if found is None:
            self._load_process_commands()
            found = super().get_command(ctx, cmd_name)
        return found


@click.group(cls=NotifyGroup)
@click.option(
    "--log-level", default=lambda: os.environ.get("LOG_LEVEL", "info"), show_default="info"
)
def cli(log_level: str) -> None:
    """Real-time notification pipeline: RabbitMQ in, PostgreSQL event log, WebSockets out.

    Each command reads the settings of its own process from the environment."""
    setup_logging(log_level)


@cli.command()
@click.option("--host", default=DEFAULT_HOST, show_default=True)
@click.option("--port", default=DEFAULT_PORT, show_default=True, type=int)
@click.option(
    "--dev",
    is_flag=True,
    help="generate a signing secret for this session (local demos only)",
)
def up(host: str, port: int, dev: bool) -> None:
    """Migrate, then run a dispatcher and an edge until Ctrl-C."""
    from dispatcher.database import migrate as run_migrations
    from dispatcher.settings import get_dispatcher_settings
    from socket_edge import devmode
    from socket_edge.auth import new_secret
    from socket_edge.commands import check_port
    from socket_edge.settings import get_edge_settings

    # Both processes' settings, checked before anything starts.
    settings = load_settings(get_edge_settings)
    load_settings(get_dispatcher_settings)
    notify = command_name()
    session: devmode.DevSession | None = None
    if dev and not settings.auth_configured:
        # Before anything else: a second session must not touch the first one's secret.
        try:
            session = devmode.start_session()
        except devmode.DevSessionRunning as running:
            pid = f" (pid {running.pid})" if running.pid is not None else ""
            raise click.ClickException(
                f"another `{notify} up --dev` is running{pid}: stop it first"
            ) from None
    elif not settings.auth_configured:
        raise click.ClickException(
            f"no AUTH_JWT_SECRET is set: set one, or run `{notify} up --dev` for a local demo"
        )
    try:
        check_port(host, port)
        env = dict(os.environ)
        if session is not None:
            env["AUTH_JWT_SECRET"] = new_secret()
            env.setdefault("ALLOWED_ORIGINS", "http://localhost:*,http://127.0.0.1:*")
            env["DEV_MODE"] = "true"  # the demo inbox at /demo, and the API docs
            path = session.write_secret(env["AUTH_JWT_SECRET"])
            click.secho(
                "DEVELOPMENT MODE: tokens are signed with a secret generated for this session "
                f"(kept in {path} until Ctrl-C). Never use --dev in production.\n"
                f"Mint a token with: {notify} token --user alice [--rooms 'tour_*'] [--admin]",
                fg="yellow",
                bold=True,
                err=True,
            )
        run(run_migrations(settings.database_url))
        click.echo(f"database {redact(settings.database_url)} is at head", err=True)
        code = _run_pipeline(env, host, port, notify)
    finally:
        if session is not None:
            session.close()
    sys.exit(code)


def _client_url(host: str, port: int) -> str:
    """The ws:// URL a client on this machine reaches an edge listening on host:port at."""
    host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)
    return f"ws://[{host}]:{port}" if ":" in host else f"ws://{host}:{port}"


def _run_pipeline(env: dict[str, str], host: str, port: int, notify: str) -> int:
    """Start a dispatcher and an edge, print how to use them, and supervise them."""
    stopping = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        stopping.set()

    # Installed before the children start, so that a signal never leaves them running.
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    base = [sys.executable, "-m", "producers.cli"]
    children = [
        subprocess.Popen([*base, "dispatcher"], env=env),
        subprocess.Popen([*base, "edge", "--host", host, "--port", str(port)], env=env),
    ]
    url = _client_url(host, port)
    url_option = "" if url == DEFAULT_URL else f" --url {url}"
    click.echo(
        f"pipeline up: WebSocket {url}/ws/connect?user_id=... (Ctrl-C stops)\n"
        f"Try it: {notify} listen --user alice{url_option}, and in another terminal "
        f"{notify} send --user alice --type booking_confirmed -d booking_id=b1 "
        "-d tour_name=Masada",
        err=True,
    )
    if env.get("DEV_MODE") == "true":
        page = url.replace("ws://", "http://", 1)
        click.echo(f"Demo inbox in a browser: {page}/demo?user=alice", err=True)
    return _supervise(children, stopping)


def _supervise(children: list[subprocess.Popen[bytes]], stopping: threading.Event) -> int:
    """Wait until a child exits or ``stopping`` is set, then stop every child and return."""
    code = 0
    while not stopping.is_set():
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
@click.option("--priority", type=click.Choice([p.value for p in Priority]))
@click.option("--action-url")
@click.option("--event-id", type=click.UUID, help="fix the event_id, to make a retry idempotent")
@click.option("--producer", default="notify-cli", show_default=True)
@pass_settings(get_settings)
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
    event_id: uuid.UUID | None,
    producer: str,
) -> None:
    """Publish one event, wait for the broker's confirm, and print its event_id."""
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
            event_id=event_id,
        )
    except ValidationError as exc:
        # A data model's error names its field alone; on the command line it is under data.
        prefix = "" if exc.title == "Envelope" else "data"
        raise click.ClickException(f"invalid event: {describe(exc, prefix)}") from None

    async def publish() -> None:
        try:
            await service.publisher.publish(envelope)
        finally:
            await service.close()

    run(publish())
    click.echo(str(envelope.event_id))


EVENT_SCHEMAS = {
    "seen-event": ("SeenEvent", "seen-event"),
    "archive-event": ("ArchiveEvent", "archive-event"),
    "preferences-event": ("PreferencesEvent", "preferences-event"),
    "schedule-event": ("ScheduleEvent", "schedule-event"),
}
SCHEMA_CHOICES = [
    "envelope",
    "read-event",
    *EVENT_SCHEMAS,
    "asyncapi",
    *(t.value for t in NotificationType),
]


@cli.command()
@click.argument("what", type=click.Choice(SCHEMA_CHOICES), default="envelope")
def schema(what: str) -> None:
    """Print the JSON Schema of the event envelope (data typed per type), of the read, seen,
    archive, preferences or schedule events, of one notification type's data, or the AsyncAPI
    document, as JSON."""
    from producers import asyncapi, contract, envelope

    documents = {
        "envelope": contract.envelope_schema,
        "read-event": contract.read_event_schema,
        "asyncapi": asyncapi.asyncapi_document,
    }
    if what in documents:
        document = documents[what]()
    elif what in EVENT_SCHEMAS:
        model, urn = EVENT_SCHEMAS[what]
        document = contract.event_schema(getattr(envelope, model), urn)
    else:
        document = contract.data_schema(NotificationType(what))
    click.echo(orjson.dumps(document, option=orjson.OPT_INDENT_2).decode())


@cli.command("outbox-relay")
@click.option(
    "--database-url",
    envvar="OUTBOX_DATABASE_URL",
    required=True,
    help="the producer's database holding notification_outbox (env OUTBOX_DATABASE_URL)",
)
@click.option("--batch-size", default=DEFAULT_BATCH_SIZE, show_default=True, type=click.IntRange(1))
@click.option(
    "--poll-interval",
    default=DEFAULT_POLL_INTERVAL,
    show_default=True,
    type=click.FloatRange(min=0, min_open=True),
    help="seconds between looks at an empty outbox",
)
@click.option(
    "--keep-sent-hours",
    default=DEFAULT_KEEP_SENT.total_seconds() / 3600,
    show_default=True,
    type=click.FloatRange(min=0),
    help="how long sent rows are kept before they are deleted",
)
@click.option("--create-table", is_flag=True, help="create notification_outbox if missing")
@click.option("--once", is_flag=True, help="publish what is pending, then exit")
@pass_settings(get_settings)
def outbox_relay(
    settings: Settings,
    database_url: str,
    batch_size: int,
    poll_interval: float,
    keep_sent_hours: float,
    create_table: bool,
    once: bool,
) -> None:
    """Publish the rows of a producer's transactional outbox, with confirms."""
    from producers.outbox_command import relay_outbox

    run(
        relay_outbox(
            settings,
            async_database_url(database_url),
            batch_size=batch_size,
            poll_interval=poll_interval,
            keep_sent=timedelta(hours=keep_sent_hours),
            create_table=create_table,
            once=once,
        )
    )


def main() -> None:
    cli()


if __name__ == "__main__":
    main()
