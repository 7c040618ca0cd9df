"""Raw HTTP on a socket, for the tests that need bytes no client library would send: half
requests, huge declared bodies, handshakes with arbitrary headers."""

from __future__ import annotations

import base64
import os


def upgrade_request(target: str, extra: str = "") -> bytes:
    """A WebSocket handshake for ``target`` (path and query) with ``extra`` header lines, each
    ending in CRLF."""
    key = base64.b64encode(os.urandom(16)).decode()
    return (
        f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
        f"{extra}\r\n"
    ).encode()
