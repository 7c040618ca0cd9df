"""The edge's HTTP protocol: uvicorn's, with a deadline on every request.

A client that opens a connection and sends half a request line, or trickles its headers a
byte at a time (slowloris), holds a file descriptor and a protocol object for as long as it
likes: uvicorn's keep-alive timeout only runs between requests, and every byte that arrives
cancels it. Here a request, its head and its body (for a WebSocket handshake: its head), must
arrive in full within ``HTTP_REQUEST_TIMEOUT`` seconds of its first byte (of the connection,
for the first request), or the connection is closed. What the application then takes to
answer is not counted, and an upgraded WebSocket is no longer an HTTP request.

The subclass overrides methods of uvicorn's httptools protocol, which is not its public API:
the edge refuses to start with a uvicorn outside the versions it was checked against
(``UVICORN_CHECKED``, the pin of pyproject.toml), and tests/unit/test_dependency_contracts.py
checks that the methods it overrides are still there.
"""

from __future__ import annotations

import asyncio
import logging

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from producers.runner import version_in
from socket_edge.settings import get_edge_settings

log = logging.getLogger("notify.edge")

UVICORN_CHECKED = ((0, 37), (1,))
if not version_in("uvicorn", *UVICORN_CHECKED):
    raise ImportError(
        "socket_edge.protocol extends uvicorn's httptools protocol and was checked with uvicorn "
        ">=0.37,<1 (the range pyproject.toml pins); install a version in that range"
    )


class DeadlineHttpProtocol(HttpToolsProtocol):
    _deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._arm()

    def on_message_complete(self) -> None:
        self._disarm()
        super().on_message_complete()

    def handle_websocket_upgrade(self) -> None:
        self._disarm()
        super().handle_websocket_upgrade()

    def _arm(self) -> None:
        if self._deadline is None:
            timeout = get_edge_settings().http_request_timeout  # read once per process
            self._deadline = self.loop.call_later(timeout, self._expired)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expired(self) -> None:
        self._deadline = None
        if not self.transport.is_closing():
            log.debug("closing %s: no complete request in time", self.client)
            self.transport.close()
