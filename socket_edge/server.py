"""Running the edge under uvicorn: one process, or ``--workers N`` processes on one port, each
its own edge node with its own queue."""

from __future__ import annotations

import signal
from typing import Any

import uvicorn

from dispatcher import database
from producers.broker import connect
from socket_edge.auth import Authenticator
from socket_edge.settings import EdgeSettings
from socket_edge.ws_protocol import DRAIN_MARGIN

APP_FACTORY = "socket_edge.app:create_app"
HTTP_PROTOCOL = "socket_edge.protocol:DeadlineHttpProtocol"
WS_PROTOCOL = "socket_edge.ws_protocol:EdgeWebSocket"


def graceful_shutdown(settings: EdgeSettings) -> float:
    """uvicorn's graceful shutdown timeout: the drain window and a margin. The protocol reads
    its window back from it (``ws_protocol.drain_window``)."""
    return settings.edge_drain_seconds + DRAIN_MARGIN


async def preflight(settings: EdgeSettings) -> None:
    """Fail fast, with a readable error, if authentication is not configured, the broker or
    the database cannot be reached, or the database is not migrated."""
    Authenticator(settings)
    connection = await connect(settings.amqp_url, "notify-edge preflight")
    await connection.close()
    engine = database.create_engine(settings.database_url, pool_size=1)
    try:
        await database.check(engine)
        await database.check_schema(engine)
    finally:
        await engine.dispose()


def uvicorn_options(settings: EdgeSettings) -> dict[str, Any]:
    interval = settings.websocket_heartbeat_interval
    return {
        "factory": True,
        "http": HTTP_PROTOCOL,
        "ws": WS_PROTOCOL,
        # The client address is the TCP peer's, unless the peer is a proxy named in
        # TRUSTED_PROXIES: only then are X-Forwarded-For and X-Forwarded-Proto believed.
        "proxy_headers": bool(settings.trusted_proxies),
        "forwarded_allow_ips": ",".join(settings.trusted_proxies) or "",
        "ws_ping_interval": interval,
        # A client that has not answered a ping within two intervals is gone.
        "ws_ping_timeout": 2 * interval,
        # Frames are encoded once for every recipient, unless compression is asked for; then
        # the cap on a client message applies to its decompressed size.
        "ws_per_message_deflate": settings.websocket_compression,
        "ws_max_size": settings.websocket_max_frame_bytes,
        "lifespan": "on",
        # Access logs would carry the query string, and with it a client's token.
        "access_log": False,
        "log_config": None,
        # On SIGTERM: stop accepting, close the sockets with 1012 spread over
        # EDGE_DRAIN_SECONDS (ws_protocol.Drain), exit within this.
        "timeout_graceful_shutdown": graceful_shutdown(settings),
        "backlog": 4096,
        # With --workers, the supervisor restarts a worker that does not answer its health
        # check in time; a worker busy accepting thousands of sockets on a shared core needs
        # longer than the default 5 s, or it is killed with all its sockets.
        "timeout_worker_healthcheck": 60,
    }


def _exit_cleanly(signum: int, _frame: object) -> None:
    raise SystemExit(0)


def serve(settings: EdgeSettings, host: str, port: int, workers: int = 1) -> None:
    # uvicorn shuts down gracefully on SIGTERM/SIGINT, then raises the signal again for the
    # previous handler: with this one, a graceful stop ends with exit status 0.
    signal.signal(signal.SIGTERM, _exit_cleanly)
    signal.signal(signal.SIGINT, _exit_cleanly)
    uvicorn.run(APP_FACTORY, host=host, port=port, workers=workers, **uvicorn_options(settings))
