"""``notify`` commands of the socket edge: serving, and a listening client."""

from __future__ import annotations

import contextlib

import click

from producers.runner import run
from producers.settings import Settings

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000


@click.command()
@click.option("--host", default=DEFAULT_HOST, show_default=True)
@click.option("--port", default=DEFAULT_PORT, show_default=True, type=int)
@click.pass_obj
def edge(settings: Settings, host: str, port: int) -> None:
    """Serve WebSocket clients and the REST API."""
    from socket_edge.server import preflight, serve

    run(preflight(settings))
    serve(settings, host, port)


@click.command()
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
        run(run_listen(url, user_id, since=since, token=token, count=count, emit=emit))


COMMANDS: list[click.Command] = [edge, listen]
