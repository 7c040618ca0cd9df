"""The WebSocket endpoints (docs/websocket.md).

A session: admit (origin, handshake rate, token: refused with an HTTP status and a reason
before accept) -> accept -> register and bind -> ``connection_established`` -> replay from one
Postgres snapshot -> ``replay_complete`` -> live frames, while the client's frames are read,
rate-limited and answered. Whatever ends it, cleanup runs in one ``finally``.

The two paths are served by ``SocketEndpoints``, a plain ASGI layer in front of the FastAPI
application rather than by router routes. A socket's session lives as long as the socket, and
everything its call chain holds is held once per socket: FastAPI's and Starlette's layers
(telemetry and error middleware, exception wrappers, route matching, dependency solving and
its exit stacks) cost about 12 KiB per idle socket, a third of the edge's memory per
connection (docs/performance.md). Query parameters
are checked here, before anything else: a bad one is refused with HTTP 400 and the error body
every refusal has (``http_errors``).
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from aio_pika.exceptions import AMQPError
from starlette.datastructures import Headers, QueryParams
from starlette.types import ASGIApp, Receive, Scope, Send
from starlette.websockets import WebSocket, WebSocketDisconnect

from dispatcher.failures import broker_cancelled, is_transient, one_line
from producers.envelope import ID_RULE, SEQ_MAX, is_identifier
from producers.logs import context
from socket_edge import frames
from socket_edge import metrics as edge_metrics
from socket_edge.auth import (
    LEEWAY_SECONDS,
    SUBPROTOCOL,
    AuthError,
    Principal,
    forbidden,
    token_from,
)
from socket_edge.connection import CLOSE_TRY_AGAIN_LATER, Connection
from socket_edge.edge import EdgeNode
from socket_edge.http_errors import error_response
from socket_edge.limits import FrameLimiter, origin_allowed
from socket_edge.session import ClientSession
from socket_edge.sinks import RAW_SEND_KEY, OutFrame

log = logging.getLogger("notify.edge")

CLOSE_POLICY = 1008
CLOSE_SERVER_ERROR = 1011
CLOSE_ABNORMAL = 1006  # never sent: the TCP connection ended without a close frame
NORMAL_CLOSES = {1000, 1001, 1005}

CONNECT_PATH = "/ws/connect"
NOTIFICATIONS_PREFIX = "/ws/notifications/"
LABEL_MAX = 32  # device_type, app_version
_LABEL = re.compile(rf"[\x20-\x7e]{{1,{LABEL_MAX}}}")  # printable ASCII

_SEQ = re.compile(r"[0-9]{1,19}")  # ASCII digits only: str.isdigit also accepts "²"


class BadParameter(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class SessionParams:
    user_id: str
    device_type: str
    app_version: str | None
    since: int | None
    bidirectional: bool


def session_params(path: str, query: QueryParams) -> SessionParams | None:
    """The parameters of a handshake on one of the two paths; None for another path. Raises
    ``BadParameter`` naming what is wrong."""
    if path == CONNECT_PATH:
        user_id = query.get("user_id")
        if user_id is None:
            raise BadParameter("user_id is required")
        bidirectional = True
        device_type = _label(query, "device_type") or "unknown"
        app_version = _label(query, "app_version")
    elif path.startswith(NOTIFICATIONS_PREFIX) and "/" not in path[len(NOTIFICATIONS_PREFIX) :]:
        user_id = path[len(NOTIFICATIONS_PREFIX) :]  # ASGI's path is already decoded
        bidirectional = False
        device_type, app_version = "unknown", None
    else:
        return None
    if not is_identifier(user_id):
        raise BadParameter(f"user_id must be {ID_RULE}")
    return SessionParams(user_id, device_type, app_version, _seq(query), bidirectional)


def _seq(query: QueryParams) -> int | None:
    since = query.get("since")
    if since is None:
        return None
    if _SEQ.fullmatch(since) is None or int(since) > SEQ_MAX:
        raise BadParameter(f"since must be a seq: an integer from 0 to {SEQ_MAX}")
    return int(since)


def _label(query: QueryParams, name: str) -> str | None:
    value = query.get(name)
    if value is not None and _LABEL.fullmatch(value) is None:
        raise BadParameter(f"{name} must be 1-{LABEL_MAX} printable ASCII characters")
    return value


class SocketEndpoints:
    """Serves ``/ws/connect`` and ``/ws/notifications/{user_id}`` in front of the FastAPI
    application ``app`` (whose ``state.edge`` is the node), and keeps the server's own
    ``send`` in the scope for ``TransportSink``; a WebSocket on any other path is refused with
    404, and every HTTP request goes to ``app``."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "websocket":
            await self.app(scope, receive, send)
            return
        scope[RAW_SEND_KEY] = send
        scope["app"] = self.app
        websocket = WebSocket(scope, receive, send)
        try:
            # Parsed here and not kept: the query (token included) is not held per socket.
            query = QueryParams(scope["query_string"])
            params = session_params(scope["path"], query)
        except BadParameter as exc:
            edge_metrics.shared().refused.inc()
            await websocket.send_denial_response(error_response(400, "invalid_parameter", str(exc)))
            return
        if params is None:  # the application serves no other WebSocket path
            edge_metrics.shared().refused.inc()
            message = f"no WebSocket endpoint here: use {CONNECT_PATH} or {NOTIFICATIONS_PREFIX}ID"
            await websocket.send_denial_response(error_response(404, "not_found", message))
            return
        session = run_session(
            websocket,
            query,
            params.user_id,
            params.device_type,
            params.app_version,
            params.since,
            bidirectional=params.bidirectional,
        )
        del query  # the session lets go of it once admitted
        await session


def admit(
    edge: EdgeNode, websocket: WebSocket, query: QueryParams, user_id: str
) -> tuple[Principal, str | None]:
    """Decide on a handshake before accepting it; raise AuthError to refuse it."""
    settings = edge.settings
    # Read here and not kept: the protocol lets go of the handshake's headers once accepted.
    headers = Headers(scope=websocket.scope)
    if not origin_allowed(headers.get("origin"), settings.allowed_origins):
        raise forbidden("forbidden_origin", "this origin may not open sockets here")
    address = websocket.client.host if websocket.client else "unknown"
    if not edge.handshakes.allow(address, time.monotonic()):
        raise AuthError(429, "rate_limited", "too many handshakes from this address: slow down")
    token, as_subprotocol = token_from(query, headers)
    principal = edge.auth.verify(token)
    if principal.user_id != user_id:
        raise forbidden("wrong_user", "the token belongs to another user")
    offered = headers.get("sec-websocket-protocol", "")
    answer = SUBPROTOCOL if SUBPROTOCOL in (p.strip() for p in offered.split(",")) else None
    if as_subprotocol and answer is None:
        raise AuthError(400, "missing_subprotocol", f"offer {SUBPROTOCOL!r} beside the token")
    return principal, answer


async def run_session(
    websocket: WebSocket,
    query: QueryParams,
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
        principal, subprotocol = admit(edge, websocket, query, user_id)
    except AuthError as refusal:
        edge.refuse(refusal.code)
        edge.metrics.refused.inc()
        headers = {"Retry-After": "1"} if refusal.status == 429 else None
        response = error_response(refusal.status, refusal.code, refusal.reason, headers)
        await websocket.send_denial_response(response)
        return
    finally:
        del query  # the token is not kept for the life of the socket
    await websocket.accept(subprotocol=subprotocol)
    if len(edge.connections) >= settings.websocket_max_connections:
        edge.refuse("connection_limit")
        edge.metrics.refused.inc()
        edge.metrics.closed(CLOSE_TRY_AGAIN_LATER)
        await websocket.close(CLOSE_TRY_AGAIN_LATER, "connection limit reached: try again later")
        return
    if len(edge.user_connections(user_id)) >= settings.websocket_max_connections_per_user:
        edge.refuse("user_connection_limit")
        edge.metrics.refused.inc()
        edge.metrics.closed(CLOSE_TRY_AGAIN_LATER)
        await websocket.close(CLOSE_TRY_AGAIN_LATER, "too many connections for this user")
        return
    connection = Connection(
        websocket,
        user_id,
        device_type=device_type,
        app_version=app_version,
        send_buffer=settings.websocket_send_buffer,
        holding=edge.holding,
    )
    # Admitted up to the verifier's leeway past exp, so closed at the same moment.
    connection.close_at(principal.expires_at + LEEWAY_SECONDS, CLOSE_POLICY, "token expired")
    client_code: int | None = None  # the close code of a client that ended the session
    try:
        await replay_then_go_live(edge, connection, since)
        await receive_loop(ClientSession(edge, connection, principal, bidirectional))
    except WebSocketDisconnect as exc:
        client_code = exc.code
        if exc.code == CLOSE_ABNORMAL:
            log.info(
                "%r lost: the connection ended without a close frame",
                connection,
                extra=context(connection_id=connection.connection_id),
            )
        elif exc.code not in NORMAL_CLOSES:
            log.info(
                "%r closed by the client with code %s",
                connection,
                exc.code,
                extra=context(connection_id=connection.connection_id),
            )
    except asyncio.CancelledError as exc:
        if not broker_cancelled(exc):
            raise
        await unavailable(connection, "RabbitMQ", exc)
    except (AMQPError, ConnectionError) as exc:
        await unavailable(connection, "RabbitMQ", exc)
    except Exception as exc:
        if is_transient(exc):
            await unavailable(connection, "PostgreSQL", exc)
        else:
            log.exception(
                "session of %r failed",
                connection,
                extra=context(connection_id=connection.connection_id),
            )
            await connection.close(CLOSE_SERVER_ERROR, "server error: reconnect")
    finally:
        # The server's code if it closed the socket first, else the client's.
        code = connection.close_code if connection.close_code is not None else client_code
        await edge.detach(connection)
        await connection.close()
        edge.metrics.closed(code if code is not None else connection.close_code)


async def unavailable(connection: Connection, service: str, exc: BaseException) -> None:
    """A service went away under the session (a restart): one line, not a traceback per
    socket, and the client reconnects."""
    log.info(
        "%r closed: %s unavailable (%s)",
        connection,
        service,
        one_line(exc),
        extra=context(connection_id=connection.connection_id),
    )
    await connection.close(CLOSE_SERVER_ERROR, f"{service} unavailable: reconnect")


async def replay_then_go_live(edge: EdgeNode, connection: Connection, since: int | None) -> None:
    """The handover of invariant 4: bind, then read the snapshot, then release live frames."""
    key = connection.user_key
    started = time.perf_counter()
    connection.hold(key)
    await edge.attach(connection)
    connection.send(edge.established(connection))
    replay = await edge.replay.for_user(connection.user_id, since)
    user = replay.user
    edge.load_preferences(connection, user.preferences_seq, user.preferences)
    for text in replay.frames:
        await connection.send_paced(OutFrame(text))
    await connection.send_paced(
        OutFrame(
            frames.replay_complete(
                replay.count,
                user.counts.unread,
                replay.high_water,
                replay.truncated,
                unseen_count=user.counts.unseen,
                seen_up_to_seq=user.seen_seq,
            )
        )
    )
    metrics = edge.metrics
    metrics.replay_seconds.observe(time.perf_counter() - started)
    metrics.replay_frames.observe(len(replay.frames))
    metrics.sent_replay.inc(len(replay.frames))
    metrics.sent_control.inc()  # replay_complete
    edge.catch_up.release(connection, key, replay.high_water)
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
