"""Health probes: ``/healthz`` (the process is up), ``/readyz`` (broker and database reachable)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from dispatcher import database
from producers.errors import DatabaseUnavailable
from socket_edge.edge import EdgeNode

router = APIRouter()


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz")
async def readyz(request: Request) -> JSONResponse:
    edge: EdgeNode = request.app.state.edge
    checks = {"broker": "ok" if edge.ready else "unreachable", "database": "ok"}
    try:
        await database.check(edge.engine)
    except DatabaseUnavailable:
        checks["database"] = "unreachable"
    ok = all(v == "ok" for v in checks.values())
    return JSONResponse(
        {"status": "ready" if ok else "unavailable", "node_id": edge.node_id, "checks": checks},
        status_code=200 if ok else 503,
    )
