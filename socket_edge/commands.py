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
@click.option(
    "--workers",
    default=1,
    show_default=True,
    type=click.IntRange(1, 64),
    help="processes sharing the port, each its own edge node",
)
@click.pass_obj
def edge(settings: Settings, host: str, port: int, workers: int) -> None:
    """Serve WebSocket clients and the REST API."""
    from socket_edge.server import preflight, serve

    run(preflight(settings))
    serve(settings, host, port, workers)


@click.command()
@click.option("--user", "user_id", required=True, help="the token's sub")
@click.option("--rooms", default="", help="comma-separated room names or glob patterns")
@click.option("--admin", is_flag=True, help="role admin: the stats and broadcast endpoints")
@click.option("--ttl", default=3600, show_default=True, help="seconds until it expires")
@click.pass_obj
def token(settings: Settings, user_id: str, rooms: str, admin: bool, ttl: int) -> None:
    """Mint an HS256 token (with AUTH_JWT_SECRET, or the secret of `notify up --dev`)."""
    from socket_edge.auth import mint
    from socket_edge.devmode import signing_secret

    secret = signing_secret(settings)
    if secret is None:
        raise click.ClickException(
            "no signing secret: set AUTH_JWT_SECRET, or start `notify up --dev` first"
        )
    room_list = [r.strip() for r in rooms.split(",") if r.strip()]
    click.echo(mint(secret, user_id, rooms=room_list, admin=admin, ttl=ttl))


@click.command()
@click.option("--user", "user_id", required=True)
@click.option("--url", default=f"ws://{DEFAULT_HOST}:{DEFAULT_PORT}", show_default=True)
@click.option("--since", type=int, help="replay every notification after this seq")
@click.option("--token", envvar="NOTIFY_TOKEN", help="JWT (or NOTIFY_TOKEN)")
@click.option("--count", type=int, help="exit after this many notifications")
@click.pass_obj
def listen(
    settings: Settings,
    user_id: str,
    url: str,
    since: int | None,
    token: str | None,
    count: int | None,
) -> None:
    """Connect as a user and print every frame, one JSON object a line."""
    from socket_edge.auth import mint
    from socket_edge.devmode import signing_secret
    from socket_edge.listen import listen as run_listen

    if token is None:
        secret = signing_secret(settings)
        token = mint(secret, user_id, rooms=["*"]) if secret else None

    def emit(line: str) -> None:
        click.echo(line)

    with contextlib.suppress(KeyboardInterrupt):
        run(run_listen(url, user_id, since=since, token=token, count=count, emit=emit))


COMMANDS: list[click.Command] = [edge, listen, token]
