"""The WebSocket endpoints (DESIGN.md section 4).

A session: admit (origin, handshake rate, token: refused with an HTTP status and a reason
before accept) -> accept -> register and bind -> ``connection_established`` -> replay from one
Postgres snapshot -> ``replay_complete`` -> live frames, while the client's frames are read,
rate-limited and answered. Whatever ends it, cleanup runs in one ``finally``.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Path, Query, WebSocket, WebSocketDisconnect
from fastapi.responses import JSONResponse

from producers.envelope import ID_PATTERN
from socket_edge import frames
from socket_edge.auth import SUBPROTOCOL, AuthError, Principal, forbidden, token_from
from socket_edge.connection import CLOSE_TRY_AGAIN_LATER, Connection
from socket_edge.edge import EdgeNode
from socket_edge.limits import FrameLimiter, origin_allowed
from socket_edge.session import ClientSession
from socket_edge.sinks import OutFrame

log = logging.getLogger("notify.edge")
router = APIRouter()

CLOSE_POLICY = 1008
CLOSE_SERVER_ERROR = 1011
NORMAL_CLOSES = {1000, 1001, 1005}

UserId = Annotated[str, Query(pattern=ID_PATTERN)]
Since = Annotated[int | None, Query(ge=0)]


@router.websocket("/ws/connect")
async def connect(
    websocket: WebSocket,
    user_id: UserId,
    device_type: Annotated[str, Query(max_length=32)] = "unknown",
    app_version: Annotated[str | None, Query(max_length=32)] = None,
    since: Since = None,
) -> None:
    await run_session(websocket, user_id, device_type, app_version, since, bidirectional=True)


@router.websocket("/ws/notifications/{user_id}")
async def notifications_only(
    websocket: WebSocket,
    user_id: Annotated[str, Path(pattern=ID_PATTERN)],
    since: Since = None,
) -> None:
    await run_session(websocket, user_id, "unknown", None, since, bidirectional=False)


def admit(edge: EdgeNode, websocket: WebSocket, user_id: str) -> tuple[Principal, str | None]:
    """Decide on a handshake before accepting it; raise AuthError to refuse it."""
    settings = edge.settings
    if not origin_allowed(websocket.headers.get("origin"), settings.allowed_origins):
        raise forbidden("forbidden_origin", "this origin may not open sockets here")
    address = websocket.client.host if websocket.client else "unknown"
    if not edge.handshakes.allow(address, time.monotonic()):
        raise AuthError(429, "rate_limited", "too many handshakes from this address: slow down")
    token, as_subprotocol = token_from(websocket.query_params, websocket.headers)
    principal = edge.auth.verify(token)
    if principal.user_id != user_id:
        raise forbidden("wrong_user", "the token belongs to another user")
    offered = websocket.headers.get("sec-websocket-protocol", "")
    answer = SUBPROTOCOL if SUBPROTOCOL in (p.strip() for p in offered.split(",")) else None
    if as_subprotocol and answer is None:
        raise AuthError(400, "missing_subprotocol", f"offer {SUBPROTOCOL!r} beside the token")
    return principal, answer


async def run_session(
    websocket: WebSocket,
    user_id: str,
    device_type: str,
    app_version: str | None,
    since: int | None,
    *,
    bidirectional: bool,
) -> None:
    edge: EdgeNode = websocket.app.state.edge
    settings = edge.settings
    try:
        principal, subprotocol = admit(edge, websocket, user_id)
    except AuthError as refusal:
        edge.refuse(refusal.code)
        headers = {"Retry-After": "1"} if refusal.status == 429 else None
        body = {"error": refusal.code, "message": refusal.reason}
        await websocket.send_denial_response(JSONResponse(body, refusal.status, headers))
        return
    await websocket.accept(subprotocol=subprotocol)
    if len(edge.connections) >= settings.websocket_max_connections:
        edge.refuse("connection_limit")
        await websocket.close(CLOSE_TRY_AGAIN_LATER, "connection limit reached: try again later")
        return
    if len(edge.user_connections(user_id)) >= settings.websocket_max_connections_per_user:
        edge.refuse("user_connection_limit")
        await websocket.close(CLOSE_TRY_AGAIN_LATER, "too many connections for this user")
        return
    connection = Connection(
        websocket,
        user_id,
        device_type=device_type,
        app_version=app_version,
        send_buffer=settings.websocket_send_buffer,
    )
    connection.close_at(principal.expires_at, CLOSE_POLICY, "token expired")
    try:
        await replay_then_go_live(edge, connection, since)
        await receive_loop(ClientSession(edge, connection, principal, bidirectional))
    except WebSocketDisconnect as exc:
        if exc.code not in NORMAL_CLOSES:
            log.info("%r lost (close code %s)", connection, exc.code)
    except Exception:
        log.exception("session of %r failed", connection)
        await connection.close(CLOSE_SERVER_ERROR, "server error: reconnect")
    finally:
        await edge.detach(connection)
        await connection.close()


async def replay_then_go_live(edge: EdgeNode, connection: Connection, since: int | None) -> None:
    """The handover of invariant 4: bind, then read the snapshot, then release live frames."""
    key = connection.user_key
    connection.hold(key)
    await edge.attach(connection)
    connection.send(edge.established(connection))
    replay = await edge.replay.for_user(connection.user_id, since)
    for text in replay.frames:
        await connection.send_paced(OutFrame(text))
    await connection.send_paced(
        OutFrame(
            frames.replay_complete(
                replay.count, replay.unread_count, replay.high_water, replay.truncated
            )
        )
    )
    connection.release(key, replay.high_water)
    for seq in replay.seqs:
        edge.receipts.add((connection.user_id,), seq)


async def receive_loop(session: ClientSession) -> None:
    connection = session.connection
    websocket = connection.websocket
    limiter = FrameLimiter(
        session.edge.settings.websocket_client_frames_per_second, time.monotonic()
    )
    while True:
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            raise WebSocketDisconnect(message.get("code", 1000))
        connection.last_seen = datetime.now(UTC)
        verdict = limiter.check(time.monotonic())
        if verdict != "ok":
            session.edge.refuse("rate_limited")
            if verdict == "warn":
                session.error("rate_limited", "too many frames: slow down or be disconnected")
            elif verdict == "close":
                await connection.close(CLOSE_POLICY, "client frame rate exceeded")
                return
            continue
        raw = message.get("text")
        if raw is None:
            raw = message.get("bytes")
        if raw is not None:
            await session.handle(raw)
