"""Running the edge under uvicorn."""

from __future__ import annotations

import uvicorn

from dispatcher import database
from producers.broker import connect
from producers.settings import Settings
from socket_edge.app import create_app


async def preflight(settings: Settings) -> None:
    """Fail fast, with a readable error, if the broker or the database cannot be reached."""
    connection = await connect(settings.amqp_url, "notify-edge preflight")
    await connection.close()
    engine = database.create_engine(settings.database_url, pool_size=1)
    try:
        await database.check(engine)
    finally:
        await engine.dispose()


def uvicorn_config(settings: Settings, host: str, port: int) -> uvicorn.Config:
    interval = settings.websocket_heartbeat_interval
    return uvicorn.Config(
        create_app(settings),
        host=host,
        port=port,
        ws="websockets-sansio",
        ws_ping_interval=interval,
        # A client that has not answered a ping within two intervals is gone.
        ws_ping_timeout=2 * interval,
        ws_per_message_deflate=False,
        lifespan="on",
        # Access logs would carry the query string, and with it a client's token.
        access_log=False,
        log_config=None,
        timeout_graceful_shutdown=10,
    )


def serve(settings: Settings, host: str, port: int) -> None:
    uvicorn.Server(uvicorn_config(settings, host, port)).run()
