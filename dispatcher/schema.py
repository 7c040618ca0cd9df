"""The PostgreSQL schema, defined once: alembic's migrations are generated from this metadata
and the dispatcher, the edge and the reports all query these tables.

- ``notification_events`` is the append-only event log, ordered by ``seq``. Nothing updates or
  deletes a row: a trigger refuses it (migration 0001). ``event_type`` is one of
  ``dispatcher.events.EVENT_TYPES``. It is partitioned by month of ``recorded_at``
  (migration 0006, ``dispatcher.partitions``): its partitions are made at run time, so they are
  not in this metadata (``include_name``).
- ``notification_event_ids`` holds the event_id, seq and recorded_at of every event ever
  logged, detached partitions included: the log's global uniqueness of ``event_id`` (a
  partitioned table's unique constraints must contain its partition key), the target of the
  projections' foreign keys, and the index from an event_id or a seq to its partition. The
  append writes it and the log in one statement (``statements.INSERT_LOG``); the log's
  foreign key on ``seq`` refuses a row whose ids row was not written first.
- ``notifications`` is a projection of the log: one row per notification, keyed by the seq of
  the event that created it.
- ``notification_recipients`` is the per-user state of personal and broadcast notifications
  (delivered_at, read_at, archived_at, and what the user's preferences made of it). A
  personal notification gets its row when it is stored; a broadcast gets a row for a user
  only once that user's state for it changes.
- ``notification_users`` is the per-user state that is not about one notification: how far
  the user has seen (``seen_seq``) and their preferences (``producers.preferences``).
- ``notification_schedule`` holds each scheduled notification until it is due (``pending``),
  then ``released`` (its ``notifications`` row has the seq of the release event) or
  ``cancelled``.
- ``notification_routing`` is one row: the log position up to which every event's deliveries
  have been published and confirmed by RabbitMQ (``dispatcher.store``, "Routing in log
  order").
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from sqlalchemy import (
    TIMESTAMP,
    BigInteger,
    CheckConstraint,
    Column,
    ForeignKey,
    Identity,
    Index,
    Integer,
    MetaData,
    Table,
    Text,
    Uuid,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

Timestamp = TIMESTAMP(timezone=True)

notification_events = Table(
    "notification_events",
    metadata,
    Column(
        "seq",
        BigInteger,
        Identity(always=True),
        ForeignKey("notification_event_ids.seq"),
        primary_key=True,
    ),
    Column("event_id", Uuid, nullable=False),
    Column("event_type", Text, nullable=False),
    Column("occurred_at", Timestamp, nullable=False),
    Column("recorded_at", Timestamp, primary_key=True, nullable=False, server_default=func.now()),
    Column("producer", Text),
    Column("payload", JSONB, nullable=False),
    comment="Append-only event log; seq is a total order that matches commit order.",
    postgresql_partition_by="RANGE (recorded_at)",
)

notification_event_ids = Table(
    "notification_event_ids",
    metadata,
    Column("event_id", Uuid, primary_key=True),
    Column("seq", BigInteger, nullable=False, unique=True),
    Column("recorded_at", Timestamp, nullable=False),
    comment="Every event_id ever logged, with its seq and recorded_at (written with "
    "notification_events by the append; kept when a partition is detached).",
)

# The log's partitions (``dispatcher.partitions``): one per month, named after it.
PARTITION_NAME = re.compile(r"notification_events_y\d{4}m\d{2}")


def include_name(name: str | None, type_: str, parent_names: Mapping[Any, str | None]) -> bool:
    """For alembic's comparisons: the log's partitions are made at run time, not by a
    migration, and are not part of the metadata."""
    return not (type_ == "table" and name is not None and PARTITION_NAME.fullmatch(name))


notifications = Table(
    "notifications",
    metadata,
    Column("seq", BigInteger, ForeignKey("notification_event_ids.seq"), primary_key=True),
    Column("event_id", Uuid, nullable=False, unique=True),
    Column("audience", Text, nullable=False),
    Column("user_id", Text),
    Column("room", Text),
    Column("notification_type", Text, nullable=False),
    Column("category", Text, nullable=False),
    Column("priority", Text, nullable=False),
    Column("title", Text, nullable=False),
    Column("message", Text, nullable=False),
    Column("data", JSONB, nullable=False),
    Column("action_url", Text),
    Column("producer", Text),
    Column("occurred_at", Timestamp, nullable=False),
    Column("created_at", Timestamp, nullable=False, server_default=func.now()),
    CheckConstraint(
        "(audience = 'user' AND user_id IS NOT NULL AND room IS NULL)"
        " OR (audience = 'room' AND room IS NOT NULL AND user_id IS NULL)"
        " OR (audience = 'broadcast' AND user_id IS NULL AND room IS NULL)",
        name="one_audience",
    ),
    Index(
        "ix_notifications_user_id_seq",
        "user_id",
        "seq",
        postgresql_where=text("user_id IS NOT NULL"),
    ),
    Index("ix_notifications_room_seq", "room", "seq", postgresql_where=text("room IS NOT NULL")),
    Index(
        "ix_notifications_broadcast_seq",
        "seq",
        postgresql_where=text("audience = 'broadcast'"),
    ),
    # "Broadcasts inside the unread window" is a range on created_at: without this index
    # every unread count would walk all broadcasts ever sent (docs/event-store.md).
    Index(
        "ix_notifications_broadcast_created_at",
        "created_at",
        postgresql_where=text("audience = 'broadcast'"),
    ),
    comment="Projection of notification.created events: one row per notification.",
)

notification_recipients = Table(
    "notification_recipients",
    metadata,
    Column("user_id", Text, primary_key=True),
    Column(
        "seq",
        BigInteger,
        ForeignKey("notifications.seq", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("delivered_at", Timestamp),
    Column("read_at", Timestamp),
    Column(
        "read_seq",
        BigInteger,
        comment="seq of the read event that marked this notification read",
    ),
    Column("archived_at", Timestamp),
    Column(
        "archived_seq",
        BigInteger,
        comment="seq of the archive or unarchive event that last changed archived_at",
    ),
    Column(
        "suppressed",
        Text,
        comment="muted or quiet: what the user's preferences made of it when it was routed",
    ),
    CheckConstraint("suppressed IN ('muted', 'quiet')", name="suppressed_kind"),
    Index(
        "ix_notification_recipients_unread",
        "user_id",
        "seq",
        postgresql_where=text("read_at IS NULL"),
    ),
    # A deleted notification's recipients, found by its foreign key's cascade (a prune).
    Index("ix_notification_recipients_seq", "seq"),
    comment="Per-user delivery and read state of personal and broadcast notifications.",
)  # fmt: skip

notification_users = Table(
    "notification_users",
    metadata,
    Column("user_id", Text, primary_key=True),
    Column(
        "seen_seq",
        BigInteger,
        nullable=False,
        server_default=text("0"),
        comment="every notification of the user up to this seq has been seen",
    ),
    Column("seen_at", Timestamp),
    Column("preferences", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    Column("preferences_seq", BigInteger),
    Column("preferences_at", Timestamp),
    comment="Per-user state that is not about one notification: the seen mark, preferences.",
)

notification_schedule = Table(
    "notification_schedule",
    metadata,
    Column("seq", BigInteger, ForeignKey("notification_event_ids.seq"), primary_key=True),
    Column("event_id", Uuid, nullable=False, unique=True),
    Column("deliver_at", Timestamp, nullable=False),
    Column("status", Text, nullable=False, server_default=text("'pending'")),
    Column("released_seq", BigInteger),
    Column("cancelled_seq", BigInteger),
    CheckConstraint("status IN ('pending', 'released', 'cancelled')", name="status_kind"),
    Index(
        "ix_notification_schedule_pending_deliver_at",
        "deliver_at",
        postgresql_where=text("status = 'pending'"),
    ),
    comment="Scheduled notifications: logged at once, projected into notifications when due.",
)

notification_routing = Table(
    "notification_routing",
    metadata,
    Column("id", Integer, primary_key=True, server_default=text("1")),
    Column("routed_seq", BigInteger, nullable=False, server_default=text("0")),
    Column("routed_at", Timestamp, nullable=False, server_default=func.now()),
    CheckConstraint("id = 1", name="one_row"),
    comment="One row: every event up to routed_seq has had its deliveries published.",
)
