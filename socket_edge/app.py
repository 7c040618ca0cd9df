"""The edge's FastAPI application: routes by resource, the node started in the lifespan."""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Response
from fastapi.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp

from producers.runner import setup_logging
from socket_edge import http_errors, metrics, routes_api, routes_demo, routes_health
from socket_edge.edge import EdgeNode
from socket_edge.guard import RestGuard
from socket_edge.limits import origin_regex
from socket_edge.routes_ws import SocketEndpoints
from socket_edge.settings import EdgeSettings, get_edge_settings


def create_app(settings: EdgeSettings | None = None, node_id: str | None = None) -> ASGIApp:
    """The edge's ASGI application: FastAPI for the REST API and the health checks, with the
    WebSocket paths served in front of it (``routes_ws.SocketEndpoints``)."""
    settings = settings or get_edge_settings()
    if not logging.getLogger().handlers:  # a worker process of `notify edge --workers N`
        setup_logging(os.environ.get("LOG_LEVEL", "info"))

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        edge = EdgeNode(settings, node_id)
        await edge.start()
        app.state.edge = edge
        try:
            yield
        finally:
            await edge.stop()
            metrics.worker_exited()

    docs = settings.api_docs or settings.dev_mode
    app = FastAPI(
        title="Tour notifications: socket edge",
        version="0.1.0",
        lifespan=lifespan,
        docs_url="/docs" if docs else None,
        redoc_url="/redoc" if docs else None,
        openapi_url="/openapi.json" if docs else None,
    )
    http_errors.install(app)
    # Added first, so that CORS (added next) runs in front of it and answers preflights.
    app.add_middleware(RestGuard, max_body_bytes=settings.http_max_body_bytes)
    origins = origin_regex(settings.allowed_origins)
    if origins is not None:
        app.add_middleware(
            CORSMiddleware,
            allow_origin_regex=origins,
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "Content-Type"],
        )
    app.include_router(routes_health.router)

    @app.get("/metrics", include_in_schema=False)
    def prometheus_metrics() -> Response:
        # A plain function: FastAPI runs it in a thread, off the event loop, since with
        # --workers it reads every worker's files.
        body, content_type = metrics.render()
        return Response(body, media_type=content_type)

    app.include_router(routes_api.router)
    if settings.dev_mode:
        app.include_router(routes_demo.router)
    if settings.websocket_enabled:
        return SocketEndpoints(app)
    return app
