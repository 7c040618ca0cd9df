"""Logging one event the way the append does, for tests that write the log directly.

The append (``dispatcher.statements.INSERT_LOG``) writes ``notification_event_ids`` and
``notification_events`` in one statement; a test that inserts into the log by hand must write
the ids row first too, or the log's foreign key on seq refuses the row."""

from __future__ import annotations

from sqlalchemy import text

# :id, :type, :payload (JSON text), :occurred and :at (null for the time it is logged, now()),
# :producer; returns the seq.
LOG_ONE = text("""
WITH ids AS (
    INSERT INTO notification_event_ids (event_id, seq, recorded_at)
    VALUES (:id, nextval('notification_events_seq_seq'),
            coalesce(CAST(:at AS timestamptz), now()))
    RETURNING event_id, seq, recorded_at
)
INSERT INTO notification_events (seq, event_id, event_type, occurred_at, recorded_at, producer,
    payload) OVERRIDING SYSTEM VALUE
SELECT seq, event_id, CAST(:type AS text), coalesce(CAST(:occurred AS timestamptz), recorded_at),
    recorded_at, CAST(:producer AS text), CAST(:payload AS jsonb)
FROM ids
RETURNING seq
""")


def log_one(
    event_id: object,
    event_type: str,
    payload: str = "{}",
    *,
    occurred: object = None,
    at: object = None,
    producer: str | None = None,
) -> dict[str, object]:
    """The parameters of ``LOG_ONE`` (``occurred`` defaults to the time it is logged)."""
    return {"id": event_id, "type": event_type, "payload": payload, "at": at,
            "occurred": occurred, "producer": producer}  # fmt: skip
