"""Sockets without a network, for unit tests of what is sent to a connection: a WebSocket
that only records its close, and a sink that records the frames written to it."""

from __future__ import annotations

from socket_edge.sinks import OutFrame


class FakeWebSocket:
    client = None

    def __init__(self) -> None:
        self.closed: tuple[int, str] | None = None

    async def close(self, code: int = 1000, reason: str = "") -> None:
        self.closed = (code, reason)


class RecordingSink:
    """Accepts ``room`` frames before it reports the client as too slow."""

    kind = "recording"

    def __init__(self, room: int = 1_000) -> None:
        self.sent: list[str] = []
        self.room = room

    def write(self, frame: OutFrame) -> bool:
        if len(self.sent) >= self.room:
            return False
        self.sent.append(frame.text)
        return True

    async def write_paced(self, frame: OutFrame) -> None:
        self.sent.append(frame.text)

    def buffered(self) -> int:
        return 0

    async def stop(self) -> None:
        return None
