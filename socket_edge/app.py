"""The edge's FastAPI application: routes by resource, the node started in the lifespan."""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp

from producers.runner import setup_logging
from producers.settings import Settings, get_settings
from socket_edge import routes_api, routes_health
from socket_edge.edge import EdgeNode
from socket_edge.limits import origin_regex
from socket_edge.routes_ws import SocketEndpoints


class _QuietSocketLogs(logging.Filter):
    """Drops uvicorn's line per WebSocket handshake and per open/close: at tens of thousands
    of sockets they drown everything else, and the handshake line carries the query string,
    tokens included."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = str(record.msg)
        return not (
            message.startswith('%s - "WebSocket')
            or message in ("connection open", "connection closed")
        )


_QUIET = _QuietSocketLogs()


def create_app(settings: Settings | None = None, node_id: str | None = None) -> ASGIApp:
    """The edge's ASGI application: FastAPI for the REST API and the health checks, with the
    WebSocket paths served in front of it (``routes_ws.SocketEndpoints``)."""
    settings = settings or get_settings()
    if not logging.getLogger().handlers:  # a worker process of `notify edge --workers N`
        setup_logging(os.environ.get("LOG_LEVEL", "info"))
    logging.getLogger("uvicorn.error").addFilter(_QUIET)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        edge = EdgeNode(settings, node_id)
        await edge.start()
        app.state.edge = edge
        try:
            yield
        finally:
            await edge.stop()

    app = FastAPI(title="Tour notifications: socket edge", version="0.1.0", lifespan=lifespan)
    origins = origin_regex(settings.allowed_origins)
    if origins is not None:
        app.add_middleware(
            CORSMiddleware,
            allow_origin_regex=origins,
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "Content-Type"],
        )
    app.include_router(routes_health.router)
    app.include_router(routes_api.router)
    if settings.websocket_enabled:
        return SocketEndpoints(app)
    return app
