"""The edge's FastAPI application: routes by resource, the node started in the lifespan."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from producers.settings import Settings, get_settings
from socket_edge import routes_health, routes_ws
from socket_edge.edge import EdgeNode


def create_app(settings: Settings | None = None, node_id: str | None = None) -> FastAPI:
    settings = settings or get_settings()

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
    app.include_router(routes_health.router)
    if settings.websocket_enabled:
        app.include_router(routes_ws.router)
    return app
