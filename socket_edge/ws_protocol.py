"""The edge's WebSocket protocol: one object per upgraded connection, speaking ASGI to the
application and RFC 6455 to the client through the ``websockets`` sans-I/O state machine.

uvicorn hands an upgraded connection to the protocol class named by its ``ws`` option; the edge
names this one. It does what uvicorn's own sans-I/O protocol does for the ASGI application
(the handshake, the denial-response extension, frames both ways, keepalive pings, the closing
handshake, a 1012 on shutdown, here spread over the drain window: see ``Drain``), with what the
edge holds tens of thousands of times made small:

- ``__slots__`` instead of an instance dict of some forty attributes;
- the messages for the application in a plain list, with one future while it waits, instead
  of an ``asyncio.Queue`` (four deques and an event per socket), and no event at all for
  "writable": a future exists only while somebody waits for the buffer to drain;
- the handshake's request, response and headers let go once the socket is accepted: the
  application reads what it needs of the headers before it accepts (``routes_ws.admit``);
- one keepalive timer at a time (the next ping, or the deadline of the pong);
- no log line per socket: the server's lines per handshake, open and close would drown an edge
  that holds tens of thousands, and the handshake line would carry the query string with the
  client's token (``LOG_LEVEL=debug`` shows the ``websockets`` state machine's own lines).

It also answers for the fast path of ``socket_edge.sinks``: ``transport``, ``is_open()`` and
``wait_writable()`` are what a ``TransportSink`` writes through.

uvicorn calls ``EdgeWebSocket(config=, server_state=, app_state=)``, ``connection_made``,
``data_received`` (first with the request it has already read), ``connection_lost`` and, when
it shuts down, ``shutdown``; it keeps the protocol in ``server_state.connections`` and the
application's task in ``server_state.tasks``. That is not uvicorn's public API: the module
refuses to load outside the versions it was checked against (``UVICORN_CHECKED``), and
tests/unit/test_dependency_contracts.py checks the calls against the installed uvicorn.
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import os
import random
import struct
import weakref
from http import HTTPStatus
from typing import Any
from urllib.parse import unquote

from websockets.datastructures import Headers
from websockets.exceptions import InvalidState
from websockets.extensions.permessage_deflate import ServerPerMessageDeflateFactory
from websockets.frames import Frame, Opcode
from websockets.http11 import Request, Response
from websockets.server import ServerProtocol

from producers.runner import version_in

log = logging.getLogger("notify.edge")

# The state machine's own lines ("connection open", "connection closed", one per socket) are
# shown only when the edge logs at debug.
_WIRE_LOG = logging.getLogger("notify.edge.wire")
if os.environ.get("LOG_LEVEL", "").lower() != "debug":
    _WIRE_LOG.setLevel(logging.WARNING)

UVICORN_CHECKED = ((0, 37), (1,))
if not version_in("uvicorn", *UVICORN_CHECKED):
    raise ImportError(
        "socket_edge.ws_protocol is called by uvicorn's HTTP protocol and server as their "
        "WebSocket protocol and was checked with uvicorn >=0.37,<1 (the range pyproject.toml "
        "pins); install a version in that range"
    )

CLOSE_TIMEOUT = 10.0  # after our close frame, how long the client has to answer it
CLOSE_INVALID_DATA = 1007
CLOSE_SERVICE_RESTART = 1012
# uvicorn's graceful shutdown timeout is the drain window plus this (``server.py``): time for
# the last sockets' sessions to end after their 1012, and for a loop that runs late.
DRAIN_MARGIN = 10.0


def drain_window(config: Any) -> float:
    """The seconds over which a stopping server closes its sockets: the graceful shutdown
    timeout the edge gave uvicorn, less ``DRAIN_MARGIN`` (``EDGE_DRAIN_SECONDS``, through
    ``server.uvicorn_options``; the config travels to ``--workers`` processes with it). No
    timeout, or one within the margin: no drain, every socket at once."""
    timeout = getattr(config, "timeout_graceful_shutdown", None)
    return max(0.0, float(timeout) - DRAIN_MARGIN) if timeout else 0.0


class Drain:
    """The 1012s of one server's sockets, spread evenly over the drain window.

    uvicorn's shutdown closes its listening sockets, then calls ``shutdown()`` on every
    connection in one loop: closing them all there would send every client of the edge to the
    next edge in the same second, a reconnect storm of replays and binds. Instead, the first
    ``shutdown()`` of a server plans the drain of every socket open at that moment: socket i of
    N gets its 1012 at ``i * window / N`` seconds (the first at once, the last one step before
    the window ends), each by a timer of the loop. Sockets keep their live frames until their
    turn; their clients reconnect elsewhere with ``since`` and miss nothing. uvicorn waits for
    its connections to be gone (within its graceful shutdown timeout, window + margin) before
    the application's lifespan shuts down.
    """

    __slots__ = ("due", "start", "window")

    def __init__(self, loop: asyncio.AbstractEventLoop, window: float, sockets: list[Any]) -> None:
        self.start = loop.time()
        self.window = window
        step = window / len(sockets) if sockets else 0.0
        self.due: dict[Any, float] = {
            socket: self.start + i * step for i, socket in enumerate(sockets)
        }

    def delay(self, socket: Any, now: float) -> float:
        """Seconds until ``socket``'s turn (0: now, or a socket the plan does not know)."""
        due = self.due.pop(socket, None)
        return 0.0 if due is None else max(0.0, due - now)


# One drain per server (its ``server_state``), planned by its first ``shutdown()`` call.
_DRAINS: weakref.WeakKeyDictionary[Any, Drain] = weakref.WeakKeyDictionary()


class ClientGone(OSError):
    """Sending to a socket whose client has gone (Starlette turns it into a disconnect)."""


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""


class EdgeWebSocket(asyncio.Protocol):
    __slots__ = (
        "_close_timer",
        "_denial",
        "_inbox",
        "_keepalive",
        "_ping_payload",
        "_ping_sent_at",
        "_read_paused",
        "_receiver",
        "_response",
        "_rtt",
        "_writable",
        "_write_paused",
        "accepted",
        "app",
        "app_state",
        "client",
        "close_sent",
        "config",
        "conn",
        "disconnected",
        "fragments",
        "loop",
        "scope",
        "server",
        "server_state",
        "text",
        "transport",
    )

    def __init__(
        self,
        config: Any,
        server_state: Any,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        if not config.loaded:
            config.load()
        self.config = config
        self.app = config.loaded_app
        self.loop = _loop or asyncio.get_event_loop()
        self.server_state = server_state
        self.app_state = app_state
        extensions = []
        if config.ws_per_message_deflate:
            extensions = [
                ServerPerMessageDeflateFactory(
                    server_max_window_bits=12,
                    client_max_window_bits=12,
                    compress_settings={"memLevel": 5},
                )
            ]
        self.conn = ServerProtocol(
            extensions=extensions, max_size=config.ws_max_size, logger=_WIRE_LOG
        )
        self.transport: asyncio.Transport = None  # type: ignore[assignment]
        self.server: tuple[str, int] | None = None
        self.client: tuple[str, int] | None = None
        self.scope: dict[str, Any] | None = None
        self._response: Response | None = None
        # The handshake is over once accepted (101 sent) or denied (an HTTP response sent).
        self.accepted = False
        self._denial: tuple[int, list[tuple[str, str]], bytes] | None = None
        self.close_sent = False
        self.disconnected = False
        self._close_timer: asyncio.TimerHandle | None = None
        self._inbox: list[dict[str, Any]] = []
        self._receiver: asyncio.Future[None] | None = None
        self._read_paused = False
        self._write_paused = False
        self._writable: asyncio.Future[None] | None = None
        self._keepalive: asyncio.TimerHandle | None = None
        self._ping_payload: bytes | None = None
        self._ping_sent_at = 0.0
        self._rtt = 0.0
        self.fragments: list[bytes] = []
        self.text = False

    # -- transport callbacks ---------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.server_state.connections.add(self)
        self.server = _address(transport.get_extra_info("sockname"))
        self.client = _address(transport.get_extra_info("peername"))

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_keepalive()
        code = 1005 if self.accepted and self._denial is None else 1006
        self._push({"type": "websocket.disconnect", "code": code})
        self.server_state.connections.discard(self)
        self.accepted = True  # whatever the handshake was, it is over
        self.disconnected = True
        self._wake_writers()
        if self._close_timer is not None:
            self._close_timer.cancel()
            self._close_timer = None
        if exc is None:
            self.transport.close()

    def eof_received(self) -> None:
        return None

    def pause_writing(self) -> None:
        self._write_paused = True

    def resume_writing(self) -> None:
        self._write_paused = False
        self._wake_writers()

    def data_received(self, data: bytes) -> None:
        conn = self.conn
        conn.receive_data(data)
        if conn.parser_exc is not None:
            self._parser_failed()
            return
        if conn.handshake_exc is not None and self.scope is None:
            self._bad_request()
            return
        for event in conn.events_received():
            if isinstance(event, Request):
                self._handshake(event)
            elif isinstance(event, Frame):
                self._frame(event)

    def shutdown(self) -> None:
        """The server stops: a 1012 to an open socket at its turn in the drain (``Drain``), a
        500 to a handshake under way at once."""
        if self._drainable():
            delay = self._drain().delay(self, self.loop.time())
            if delay > 0:
                self.loop.call_later(delay, self._shutdown_now)
                return
        self._shutdown_now()

    def _drainable(self) -> bool:
        return (
            self.accepted
            and self._denial is None
            and not self.close_sent
            and not self.disconnected
            and not self.transport.is_closing()
        )

    def _drain(self) -> Drain:
        drain = _DRAINS.get(self.server_state)
        if drain is None:
            window = drain_window(self.config)
            sockets = [
                connection
                for connection in self.server_state.connections
                if isinstance(connection, EdgeWebSocket) and connection._drainable()
            ]
            drain = _DRAINS[self.server_state] = Drain(self.loop, window, sockets)
            if sockets:
                log.info(
                    "closing %d sockets with %d over %.1f s",
                    len(sockets),
                    CLOSE_SERVICE_RESTART,
                    window,
                )
        return drain

    def _shutdown_now(self) -> None:
        if self.disconnected:
            return
        self._stop_keepalive()
        if self.close_sent:
            if self._close_timer is not None:
                self._close_timer.cancel()
                self._close_timer = None
            self.transport.close()
            return
        if self.accepted and self._denial is None:
            self._push({"type": "websocket.disconnect", "code": CLOSE_SERVICE_RESTART})
            self.conn.send_close(CLOSE_SERVICE_RESTART)
            self._flush()
        else:
            self._internal_error()
        self.transport.close()

    # -- for the edge's fast path ----------------------------------------------------------

    def is_open(self) -> bool:
        return not (self.close_sent or self.disconnected or self.transport.is_closing())

    async def wait_writable(self) -> None:
        """Return once the transport's buffer is below its high-water mark (or it is gone)."""
        while self._write_paused and not self.disconnected:
            if self._writable is None:
                self._writable = self.loop.create_future()
            await asyncio.shield(self._writable)

    def _wake_writers(self) -> None:
        waiter, self._writable = self._writable, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # -- the handshake ---------------------------------------------------------------------

    def _handshake(self, request: Request) -> None:
        response = self.conn.accept(request)
        if response.status_code != 101:
            self.accepted = True
            self.close_sent = True
            self.conn.send_response(response)
            self._flush()
            self.transport.close()
            return
        self._response = response
        path, _, query = request.path.partition("?")
        offered = [
            token.strip()
            for header in request.headers.get_all("Sec-WebSocket-Protocol")
            for token in header.split(",")
        ]
        root = self.config.root_path
        self.scope = {
            "type": "websocket",
            "asgi": {"version": self.config.asgi_version, "spec_version": "2.4"},
            "http_version": "1.1",
            "scheme": "wss" if self.transport.get_extra_info("sslcontext") else "ws",
            "server": self.server,
            "client": self.client,
            "root_path": root,
            "path": root + unquote(path),
            "raw_path": (root + path).encode("ascii"),
            "query_string": query.encode("ascii"),
            # websockets reads header values as ISO-8859-1 (its documented behaviour from 17).
            "headers": [
                (name.lower().encode("ascii"), value.encode("latin-1"))
                for name, value in request.headers.raw_items()
            ],
            "subprotocols": offered,
            "state": self.app_state.copy(),
            "extensions": {"websocket.http.response": {}},
        }
        self._push({"type": "websocket.connect"})
        task = self.loop.create_task(self._run_app())
        tasks = self.server_state.tasks
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    async def _run_app(self) -> None:
        assert self.scope is not None
        try:
            await self.app(self.scope, self.receive, self.send)
        except ClientGone:
            pass
        except BaseException:
            log.exception("WebSocket session failed")
            self._internal_error()
        else:
            if not self.accepted:
                log.error("the application returned without accepting or denying a WebSocket")
                self._internal_error()
        if self._close_timer is None:
            self.transport.close()

    def _internal_error(self) -> None:
        if self.accepted or self._denial is not None:
            return
        self.accepted = True
        self.conn.send_response(self.conn.reject(500, "Internal Server Error"))
        self._flush()

    def _bad_request(self) -> None:
        # websockets answers a request over its limits (414, 431) itself; anything else it
        # could not read gets a 400.
        self.accepted = True
        self.close_sent = True
        output = b"".join(self.conn.data_to_send())
        if not output:
            message = "Failed to open a WebSocket connection: invalid request.\n"
            output = self.conn.reject(400, message).serialize()
        self.transport.write(output)
        self.transport.close()

    # -- frames from the client ------------------------------------------------------------

    def _frame(self, frame: Frame) -> None:
        opcode = frame.opcode
        if opcode is Opcode.TEXT or opcode is Opcode.BINARY:
            self.text = opcode is Opcode.TEXT
            self.fragments = [frame.data]  # type: ignore[list-item]
            if frame.fin:
                self._message()
        elif opcode is Opcode.CONT:
            self.fragments.append(frame.data)  # type: ignore[arg-type]
            if frame.fin:
                self._message()
        elif opcode is Opcode.PING:
            self._flush()  # the state machine has queued the pong
        elif opcode is Opcode.PONG:
            self._pong(frame)
        elif opcode is Opcode.CLOSE:
            self._close_received()

    def _message(self) -> None:
        fragments, self.fragments = self.fragments, []
        data = fragments[0] if len(fragments) == 1 else b"".join(fragments)
        if self.close_sent:
            return  # past our close frame: read on until the client's answer, drop the rest
        message: dict[str, Any]
        if self.text:
            try:
                message = {"type": "websocket.receive", "text": data.decode()}
            except UnicodeDecodeError:
                log.info("a client sent a text frame that is not UTF-8: closed with 1007")
                self.conn.send_close(CLOSE_INVALID_DATA)
                self._parser_failed()
                return
        else:
            message = {"type": "websocket.receive", "bytes": data}
        self._push(message)
        if not self._read_paused:  # one message at a time: the application reads it first
            self._read_paused = True
            self.transport.pause_reading()

    def _close_received(self) -> None:
        if self.close_sent:  # the client answered our close frame: the closing handshake is done
            if self._close_timer is not None:
                self._close_timer.cancel()
                self._close_timer = None
                self.transport.close()
            return
        if not self.transport.is_closing():
            received = self.conn.close_rcvd
            assert received is not None
            self._push(
                {"type": "websocket.disconnect", "code": received.code, "reason": received.reason}
            )
            self._flush()  # the state machine has queued the answering close frame
            self.transport.close()

    def _parser_failed(self) -> None:
        sent = self.conn.close_sent
        assert sent is not None
        self._push({"type": "websocket.disconnect", "code": sent.code, "reason": sent.reason})
        self._flush()
        self.close_sent = True
        self.transport.close()

    # -- keepalive -------------------------------------------------------------------------

    def _start_keepalive(self) -> None:
        interval = self.config.ws_ping_interval
        if interval:
            delay = max(0.0, interval - self._rtt)
            self._keepalive = self.loop.call_later(delay, self._ping)

    def _stop_keepalive(self) -> None:
        if self._keepalive is not None:
            self._keepalive.cancel()
            self._keepalive = None
        self._ping_payload = None

    def _ping(self) -> None:
        self._keepalive = None
        if self.close_sent or self.transport.is_closing():
            return
        # A payload of its own, so that a late or unsolicited pong is not taken for its answer.
        payload = self._ping_payload = struct.pack("!I", random.getrandbits(32))
        self._ping_sent_at = self.loop.time()
        self.conn.send_ping(payload)
        self._flush()
        timeout = self.config.ws_ping_timeout
        if timeout is not None:
            self._keepalive = self.loop.call_later(timeout, self._pong_missing)
        else:
            self._start_keepalive()

    def _pong(self, frame: Frame) -> None:
        if self._ping_payload is None or bytes(frame.data) != self._ping_payload:
            return
        self._rtt = self.loop.time() - self._ping_sent_at
        self._ping_payload = None
        if self.config.ws_ping_timeout is not None:  # else the next ping is already due
            if self._keepalive is not None:
                self._keepalive.cancel()
            self._start_keepalive()

    def _pong_missing(self) -> None:
        self._keepalive = None
        self._ping_payload = None
        if self.close_sent or self.transport.is_closing():
            return
        self.conn.fail(1011, "keepalive ping timeout")
        self._flush()
        self.close_sent = True
        self.transport.close()

    # -- ASGI ------------------------------------------------------------------------------

    def _push(self, message: dict[str, Any]) -> None:
        self._inbox.append(message)
        receiver, self._receiver = self._receiver, None
        if receiver is not None and not receiver.done():
            receiver.set_result(None)

    async def receive(self) -> dict[str, Any]:
        while not self._inbox:
            if self._receiver is None or self._receiver.done():  # (a cancelled wait)
                self._receiver = self.loop.create_future()
            await self._receiver
        message = self._inbox.pop(0)
        if self._read_paused and not self._inbox:
            self._read_paused = False
            self.transport.resume_reading()
        return message

    def _flush(self) -> None:
        self.transport.write(b"".join(self.conn.data_to_send()))

    async def send(self, message: dict[str, Any]) -> None:
        if self._write_paused:
            await self.wait_writable()
        if self.disconnected:
            raise ClientGone()
        kind = message["type"]
        if not self.accepted and self._denial is None:
            if kind == "websocket.accept":
                self._accept(message)
            elif kind == "websocket.close":
                self._refuse()
            elif kind == "websocket.http.response.start":
                self._denial_start(message)
            else:
                raise RuntimeError(
                    f"expected websocket.accept, .close or .http.response.start, got {kind!r}"
                )
        elif self._denial is not None:
            if kind != "websocket.http.response.body":
                raise RuntimeError(f"expected websocket.http.response.body, got {kind!r}")
            self._denial_body(message)
        elif self.close_sent:
            raise RuntimeError(f"{kind!r} after websocket.close")
        else:
            try:
                if kind == "websocket.send":
                    if message.get("bytes") is not None:
                        self.conn.send_binary(message["bytes"])
                    elif message.get("text") is not None:
                        self.conn.send_text(message["text"].encode())
                    self._flush()
                elif kind == "websocket.close":
                    self._close(message.get("code", 1000), message.get("reason") or "")
                else:
                    raise RuntimeError(f"expected websocket.send or .close, got {kind!r}")
            except InvalidState:
                raise ClientGone() from None

    def _accept(self, message: dict[str, Any]) -> None:
        response, self._response = self._response, None
        assert response is not None and self.scope is not None
        headers = [
            (name.decode("latin-1").lower(), value.decode("latin-1"))
            for name, value in [*self.server_state.default_headers, *message.get("headers", [])]
        ]
        if message.get("subprotocol"):
            headers.append(("Sec-WebSocket-Protocol", message["subprotocol"]))
        del response.headers["Date"]  # the server's default headers carry one
        response.headers.update(headers)
        if self.transport.is_closing():
            return
        self.accepted = True
        self.conn.send_response(response)
        self._flush()
        # The handshake's headers are not kept for the life of the socket.
        self.scope["headers"] = []
        self._start_keepalive()

    def _refuse(self) -> None:
        self._response = None
        self._push({"type": "websocket.disconnect", "code": 1006})
        self.accepted = True
        self.close_sent = True
        self.conn.send_response(self.conn.reject(HTTPStatus.FORBIDDEN, ""))
        self._flush()
        self.transport.close()

    def _denial_start(self, message: dict[str, Any]) -> None:
        status = message["status"]
        if not 100 <= status < 600:
            raise RuntimeError(f"invalid HTTP status {status} in a denial response")
        self._response = None
        headers = [
            (n.decode("latin-1"), v.decode("latin-1")) for n, v in message.get("headers", [])
        ]
        self._denial = (status, headers, b"")

    def _denial_body(self, message: dict[str, Any]) -> None:
        assert self._denial is not None
        status, headers, body = self._denial
        body += message.get("body", b"")
        self._denial = (status, headers, body)
        if message.get("more_body", False):
            return
        response_headers = Headers(headers)
        response_headers.setdefault("Date", email.utils.formatdate(usegmt=True))
        response_headers.setdefault("Connection", "close")
        response_headers.setdefault("Content-Length", str(len(body)))
        response_headers.setdefault("Content-Type", "text/plain; charset=utf-8")
        self._push({"type": "websocket.disconnect", "code": 1006})
        self.accepted = True
        self.close_sent = True
        self.conn.send_response(Response(status, _phrase(status), response_headers, body))
        self._flush()
        self.transport.close()

    def _close(self, code: int, reason: str) -> None:
        if self.transport.is_closing():
            return
        self._push({"type": "websocket.disconnect", "code": code, "reason": reason})
        self.conn.send_close(code, reason)
        self._flush()
        self.close_sent = True
        if self._read_paused:  # read on, to see the client's answer
            self._read_paused = False
            self.transport.resume_reading()
        self._close_timer = self.loop.call_later(CLOSE_TIMEOUT, self.transport.close)


def _address(value: Any) -> tuple[str, int] | None:
    if isinstance(value, tuple) and len(value) >= 2:
        return str(value[0]), int(value[1])
    return None
