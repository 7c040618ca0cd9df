"""The demo inbox of development mode (``notify up --dev``): a page built from the browser
packages (web/, built into ``static/demo``) and the endpoint that gives it a token.

``/demo/token`` mints a token for whoever asks, so these routes exist only when DEV_MODE is
set, which `notify up --dev` does with a secret generated for its session alone.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import FileResponse, RedirectResponse, Response

from producers.envelope import ID_PATTERN
from socket_edge.auth import mint
from socket_edge.edge import EdgeNode

STATIC = Path(__file__).parent / "static" / "demo"
DEMO_TOKEN_TTL = 3600
ASSETS = {"demo.js": "text/javascript", "index.html": "text/html"}

router = APIRouter(include_in_schema=False)


@router.get("/demo")
async def to_page(request: Request) -> Response:
    # The page loads its script relative to itself: it lives at /demo/.
    query = request.url.query
    return RedirectResponse("/demo/" + (f"?{query}" if query else ""))


@router.get("/demo/")
async def page() -> Response:
    return _asset("index.html")


@router.get("/demo/token")
async def token(
    request: Request, user: Annotated[str, Query(pattern=ID_PATTERN)]
) -> dict[str, Any]:
    edge: EdgeNode = request.app.state.edge
    secret = edge.settings.auth_jwt_secret
    if secret is None:
        raise HTTPException(503, "the demo needs AUTH_JWT_SECRET (notify up --dev sets one)")
    return {"token": mint(secret, user, rooms=["*"], ttl=DEMO_TOKEN_TTL)}


@router.get("/demo/{name}")
async def asset(name: str) -> Response:
    if name not in ASSETS:
        raise HTTPException(404, "no such file")
    return _asset(name)


def _asset(name: str) -> Response:
    path = STATIC / name
    if not path.is_file():
        raise HTTPException(404, "the demo is not built: run `npm run build` in web/")
    # The page's security headers: nothing from other hosts, no inline script.
    headers = {
        "Content-Security-Policy": "default-src 'self'; connect-src 'self' ws: wss:; "
        "style-src 'self' 'unsafe-inline'; img-src 'self' data:",
        "X-Content-Type-Options": "nosniff",
        "Cache-Control": "no-cache",
    }
    return FileResponse(path, media_type=ASSETS[name], headers=headers)
