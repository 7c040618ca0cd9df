"""The WebSocket endpoints (DESIGN.md section 4).

A session: accept -> register and bind -> ``connection_established`` -> replay from one
Postgres snapshot -> ``replay_complete`` -> live frames, while the client's frames are read and
answered. Whatever ends it (client gone, server close, error), cleanup runs in one ``finally``.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Path, Query, WebSocket, WebSocketDisconnect

from producers.envelope import ID_PATTERN
from socket_edge import frames
from socket_edge.connection import CLOSE_TRY_AGAIN_LATER, Connection
from socket_edge.edge import EdgeNode

log = logging.getLogger("notify.edge")
router = APIRouter()

CLOSE_SERVER_ERROR = 1011

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
    await websocket.accept()
    if len(edge.connections) >= settings.websocket_max_connections:
        await websocket.close(CLOSE_TRY_AGAIN_LATER, "connection limit reached: try again later")
        return
    connection = Connection(
        websocket,
        user_id,
        device_type=device_type,
        app_version=app_version,
        send_buffer=settings.websocket_send_buffer,
    )
    try:
        await edge.attach(connection)
        connection.start_writer()
        connection.send(
            frames.connection_established(
                connection.connection_id, user_id, settings.websocket_heartbeat_interval
            )
        )
        replay = await edge.replay.for_user(user_id, since)
        for text in replay.frames:
            await connection.send_waiting(text)
        await connection.send_waiting(
            frames.replay_complete(
                replay.count, replay.unread_count, replay.high_water, replay.truncated
            )
        )
        connection.go_live(replay.high_water)
        await receive_loop(connection, bidirectional)
    except WebSocketDisconnect:
        pass
    except Exception:
        log.exception("session of %r failed", connection)
        await connection.close(CLOSE_SERVER_ERROR, "server error: reconnect")
    finally:
        await edge.detach(connection)
        await connection.close()


async def receive_loop(connection: Connection, bidirectional: bool) -> None:
    websocket = connection.websocket
    while True:
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            raise WebSocketDisconnect(message.get("code", 1000))
        connection.last_seen = datetime.now(UTC)
        raw = message.get("text")
        if raw is None:
            connection.send(frames.error("invalid_frame", "frames must be JSON text"))
            continue
        handle_client_frame(connection, raw, bidirectional)


def handle_client_frame(connection: Connection, raw: str, bidirectional: bool) -> None:
    try:
        frame: Any = orjson.loads(raw)
    except orjson.JSONDecodeError:
        connection.send(frames.error("invalid_json", "frame is not valid JSON"))
        return
    action = frame.get("action") if isinstance(frame, dict) else None
    if action == "ping":
        connection.send(frames.PONG)
    elif not bidirectional:
        connection.send(frames.error("not_supported", "this endpoint only accepts the ping action"))
    else:
        connection.send(frames.error("unknown_action", f"unknown action: {action!r}"))
