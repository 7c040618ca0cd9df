"""``notify`` commands of the socket edge: serving, and a listening client."""

from __future__ import annotations

import contextlib
import errno
import socket
from collections.abc import Callable

import click

from producers.invocation import DEFAULT_HOST, DEFAULT_PORT, DEFAULT_URL, command_name
from producers.runner import load_settings, pass_settings, run
from socket_edge.settings import EdgeSettings, get_edge_settings


def check_port(host: str, port: int) -> None:
    """Fail with one line, before anything starts, if the edge could not listen on
    ``host:port``: bound here the way uvicorn binds it (every address of ``host``, with
    SO_REUSEADDR), then released at once."""
    try:
        addresses = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise click.ClickException(
            f"cannot listen on host {host!r} ({exc.strerror}): choose another with --host"
        ) from None
    for family, kind, proto, _, address in addresses:
        with socket.socket(family, kind, proto) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            try:
                sock.bind(address)
            except OSError as exc:
                if exc.errno == errno.EADDRINUSE:
                    raise click.ClickException(
                        f"port {port} on {host} is already in use: stop what is listening "
                        "there, or choose another port with --port"
                    ) from None
                raise click.ClickException(
                    f"cannot listen on port {port} on {host} ({exc.strerror}): "
                    "choose another port with --port"
                ) from None


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
@pass_settings(get_edge_settings)
def edge(settings: EdgeSettings, host: str, port: int, workers: int) -> None:
    """Serve WebSocket clients and the REST API."""
    from socket_edge.metrics import prepare_multiprocess
    from socket_edge.server import preflight, serve

    check_port(host, port)
    run(preflight(settings))
    # With several workers on one port, any of them answers GET /metrics: they share their
    # metrics through files in a directory of this run (socket_edge.metrics).
    cleanup = prepare_multiprocess(workers)
    try:
        serve(settings, host, port, workers)
    finally:
        cleanup()


@click.command()
@click.option("--user", "user_id", help="the token's sub  [required without --admin]")
@click.option("--rooms", default="", help="comma-separated room names or glob patterns")
@click.option(
    "--admin", is_flag=True, help="role admin: the stats and broadcast endpoints (sub: admin)"
)
@click.option("--ttl", default=3600, show_default=True, help="seconds until it expires")
@click.pass_context
def token(ctx: click.Context, user_id: str | None, rooms: str, admin: bool, ttl: int) -> None:
    """Mint an HS256 token (with AUTH_JWT_SECRET, or the secret of `notify up --dev`)."""
    from socket_edge.auth import ADMIN_ROLE, mint
    from socket_edge.devmode import signing_secret

    if user_id is None:
        if not admin:
            param = next(p for p in ctx.command.params if p.name == "user_id")
            raise click.MissingParameter(ctx=ctx, param=param)
        user_id = ADMIN_ROLE
    settings = load_settings(get_edge_settings)
    secret = signing_secret(settings)
    if secret is None:
        raise click.ClickException(
            f"no signing secret: set AUTH_JWT_SECRET, or start `{command_name()} up --dev` first"
        )
    room_list = [r.strip() for r in rooms.split(",") if r.strip()]
    click.echo(mint(secret, user_id, rooms=room_list, admin=admin, ttl=ttl))


@click.command()
@click.option("--user", "user_id", required=True)
@click.option("--url", default=DEFAULT_URL, show_default=True)
@click.option("--since", type=int, help="replay every notification after this seq")
@click.option("--token", envvar="NOTIFY_TOKEN", help="JWT (or NOTIFY_TOKEN)")
@click.option(
    "--token-ttl",
    default=3600,
    show_default=True,
    type=click.IntRange(min=5),
    help="lifetime of the tokens listen mints itself when it has the signing secret; "
    "each is replaced before it expires",
)
@click.option("--count", type=int, help="exit after this many notifications")
@pass_settings(get_edge_settings)
def listen(
    settings: EdgeSettings,
    user_id: str,
    url: str,
    since: int | None,
    token: str | None,
    token_ttl: int,
    count: int | None,
) -> None:
    """Connect as a user and print every frame, one JSON object a line."""
    from socket_edge.auth import mint
    from socket_edge.devmode import signing_secret
    from socket_edge.listen import listen as run_listen

    notify = command_name()
    minter: Callable[[], str] | None = None
    if token is None:
        found = signing_secret(settings)
        if found is None:
            raise click.ClickException(
                "no token and no signing secret: pass --token (or NOTIFY_TOKEN), set "
                f"AUTH_JWT_SECRET, or start `{notify} up --dev` first"
            )
        secret: str = found

        def fresh() -> str:
            # Read again each time: a restarted `notify up --dev` has a new secret.
            nonlocal secret
            secret = signing_secret(settings) or secret
            return mint(secret, user_id, rooms=["*"], ttl=token_ttl)

        minter = fresh

    def emit(line: str) -> None:
        click.echo(line)

    with contextlib.suppress(KeyboardInterrupt):
        run(
            run_listen(
                url,
                user_id,
                since=since,
                token=token,
                mint=minter,
                count=count,
                emit=emit,
                given_token_hint=(
                    " The token given with --token or NOTIFY_TOKEN is refused: pass a "
                    f"fresh one (`{notify} token --user {user_id}` mints one with the "
                    "configured secret)"
                ),
                minted_token_hint=(
                    " The secret it is signed with is not the edge's, or the clocks disagree: "
                    f"check AUTH_JWT_SECRET, or that `{notify} up --dev` runs as this user on "
                    "this machine"
                ),
            )
        )


COMMANDS: list[click.Command] = [edge, listen, token]
