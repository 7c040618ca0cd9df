"""The transactional outbox: a producer writes its notification into its own database, in
the same transaction as the change it announces, and a relay publishes it after the commit.

    async with session.begin():
        session.add(Booking(...))
        outbox.add(session, notification_service.build("booking_created", user_id=..., data=...))

A rolled-back booking leaves no notification behind, and a committed one always gets its
notification, however soon the process dies after the commit. ``add`` works with a
``Session`` and an ``AsyncSession`` alike, since it only adds an ORM object to the session.

The table ``notification_outbox`` lives in the producer's database, not in the pipeline's; it
is no part of the pipeline's alembic migrations. Create it with ``create_table`` (or
``create_table_sync``), with ``notify outbox-relay --create-table``, or with the SQL that
``create_table_sql()`` returns (printed in docs/events.md).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, cast

import orjson
from sqlalchemy import (
    TIMESTAMP,
    BigInteger,
    Engine,
    Identity,
    Index,
    MetaData,
    Table,
    Text,
    Uuid,
    func,
    text,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column
from sqlalchemy.schema import CreateIndex, CreateTable

from producers.envelope import Envelope, ReadEvent, ScheduleEvent

TABLE = "notification_outbox"


class OutboxBase(DeclarativeBase):
    """The outbox's own metadata, apart from the pipeline's and from the producer's models."""

    metadata = MetaData()


class OutboxRow(OutboxBase):
    __tablename__ = TABLE
    __table_args__ = (
        # The relay's query: the oldest unsent rows. Sent rows leave this index at once.
        Index("ix_notification_outbox_pending", "id", postgresql_where=text("sent_at IS NULL")),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(always=False), primary_key=True)
    event_id: Mapped[uuid.UUID] = mapped_column(Uuid, unique=True)
    routing_key: Mapped[str] = mapped_column(Text)
    payload: Mapped[dict[str, Any]] = mapped_column(JSONB)
    created_at: Mapped[datetime] = mapped_column(
        TIMESTAMP(timezone=True), server_default=func.now()
    )
    sent_at: Mapped[datetime | None] = mapped_column(TIMESTAMP(timezone=True), nullable=True)


# The Core table behind the ORM class, for the relay's queries and the DDL.
outbox_table = cast(Table, OutboxRow.__table__)
metadata = OutboxBase.metadata


def add(session: Session | AsyncSession, event: Envelope | ReadEvent | ScheduleEvent) -> OutboxRow:
    """Stage ``event`` for publishing when the session's transaction commits.

    The event is validated already (an Envelope, with ``deliver_at`` if it is scheduled; a
    ReadEvent; or the ScheduleEvent of a cancel), so a bad field fails here, inside the
    caller's transaction, rather than later in the relay. The payload is the event's JSON as
    the SDK would publish it.
    """
    row = OutboxRow(
        event_id=event.event_id,
        routing_key=event.routing_key,
        payload=orjson.loads(event.to_json()),
    )
    session.add(row)
    return row


def create_table_sql() -> str:
    """The DDL of the outbox table and its index, for PostgreSQL, idempotent."""
    dialect = postgresql.dialect()  # type: ignore[no-untyped-call]
    table = str(CreateTable(outbox_table, if_not_exists=True).compile(dialect=dialect))
    indexes = [
        str(CreateIndex(index, if_not_exists=True).compile(dialect=dialect))
        for index in sorted(outbox_table.indexes, key=lambda i: str(i.name))
    ]
    statements = (table, *indexes)
    sql = ";\n".join(s.strip() for s in statements) + ";\n"
    # The compiler leaves a space at the end of some lines; the docs quote this text verbatim.
    return "\n".join(line.rstrip().replace("\t", "    ") for line in sql.splitlines()) + "\n"


async def create_table(engine: AsyncEngine) -> None:
    """Create the outbox table in the producer's database if it does not exist."""
    async with engine.begin() as conn:
        await conn.run_sync(metadata.create_all)


def create_table_sync(engine: Engine) -> None:
    """Create the outbox table with a synchronous engine, if it does not exist."""
    metadata.create_all(engine)
