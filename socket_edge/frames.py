"""Control frames of the WebSocket protocol (docs/websocket.md), encoded once each.

Notification frames are built by ``dispatcher.records.notification_frame``.
"""

from __future__ import annotations

from datetime import UTC, datetime

from dispatcher.records import encode_frame, timestamp

PONG = encode_frame({"type": "pong"})


def connection_established(connection_id: str, user_id: str, heartbeat_interval: float) -> str:
    interval = int(heartbeat_interval) if heartbeat_interval.is_integer() else heartbeat_interval
    return encode_frame(
        {
            "type": "connection_established",
            "data": {
                "connection_id": connection_id,
                "user_id": user_id,
                "heartbeat_interval": interval,
                "server_time": timestamp(datetime.now(UTC)),
            },
        }
    )


def replay_complete(
    count: int,
    unread_count: int,
    last_seq: int,
    truncated: bool,
    *,
    unseen_count: int = 0,
    seen_up_to_seq: int = 0,
) -> str:
    """The end of a connect's replay: how many frames it held, the badge counts and the seen
    mark of the same snapshot, and its high-water mark (the client's cursor)."""
    return encode_frame(
        {
            "type": "replay_complete",
            "data": {
                "count": count,
                "unread_count": unread_count,
                "unseen_count": unseen_count,
                "seen_up_to_seq": seen_up_to_seq,
                "last_seq": last_seq,
                "truncated": truncated,
            },
        }
    )


def error(code: str, message: str) -> str:
    return encode_frame({"type": "error", "code": code, "message": message})


def subscribed(room: str, replayed: int, last_seq: int | None, truncated: bool = False) -> str:
    frame: dict[str, object] = {"type": "subscribed", "room": room}
    if last_seq is not None:
        frame.update(replayed=replayed, last_seq=last_seq, truncated=truncated)
    return encode_frame(frame)


def unsubscribed(room: str) -> str:
    return encode_frame({"type": "unsubscribed", "room": room})
