"""Opening the database, creating it when missing, and migrating it to the newest revision."""

from __future__ import annotations

import asyncio
from importlib import resources
from pathlib import Path
from typing import Any

import asyncpg
import orjson
from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import exc as sa_exc
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from producers.errors import DatabaseNotMigrated, DatabaseUnavailable
from producers.settings import redact

CONNECT_TIMEOUT = 10.0


def _json_dumps(value: object) -> str:
    return orjson.dumps(value).decode()


def create_engine(
    database_url: str, pool_size: int = 5, pre_ping: bool = True, overflow: bool = True
) -> AsyncEngine:
    """An engine on the asyncpg driver. ``pre_ping`` costs a round trip per checkout; a caller
    that retries on a lost connection anyway (the dispatcher) does without it. With
    ``overflow``, a burst may open as many connections again, closed as they come back: fine
    for an occasional burst, ruinous for a steady stream of short queries, where a burst opens
    and closes connections for every few queries (a caller like the edge asks for a larger pool
    without it: a query then waits for a connection rather than open one)."""
    return create_async_engine(
        database_url,
        pool_size=pool_size,
        max_overflow=pool_size if overflow else 0,
        pool_pre_ping=pre_ping,
        json_serializer=_json_dumps,
        json_deserializer=orjson.loads,
        connect_args={"timeout": CONNECT_TIMEOUT},
    )


def driver_url(database_url: str) -> str:
    """The URL as asyncpg itself takes it (``postgresql://``), for a pool of the driver's own."""
    scheme, sep, rest = database_url.partition("://")
    return f"postgresql://{rest}" if sep and scheme.startswith("postgres") else database_url


def unavailable(database_url: str, exc: BaseException) -> DatabaseUnavailable:
    return DatabaseUnavailable(
        f"cannot reach PostgreSQL at {redact(database_url)} ({type(exc).__name__}: {exc}): "
        "is it running, and are DATABASE_URL's user, password and database right?"
    )


async def check(engine: AsyncEngine) -> None:
    """Raise DatabaseUnavailable unless the database answers a query."""
    try:
        async with engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        raise unavailable(engine.url.render_as_string(hide_password=True), exc) from exc


async def check_schema(engine: AsyncEngine) -> None:
    """Raise DatabaseNotMigrated unless the database is at this code's newest migration: a
    process started against an older schema would fail on every batch instead of once."""
    head = head_revision()
    try:
        async with engine.connect() as conn:
            found = (await conn.execute(text("SELECT version_num FROM alembic_version"))).scalar()
    except sa_exc.ProgrammingError:  # no alembic_version table: never migrated
        found = None
    if found != head:
        where = redact(engine.url.render_as_string(hide_password=True))
        raise DatabaseNotMigrated(
            f"the database at {where} has schema revision {found or 'none'}, and this version "
            f"needs {head}: run `notify migrate` first"
        )


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config("postgresql://")).get_current_head()
    assert head is not None
    return head


async def connect_to_server(database_url: str, timeout: float = CONNECT_TIMEOUT) -> Any:
    """A plain asyncpg connection to the ``postgres`` database of the URL's server, for what
    is done outside any one database (creating or dropping one)."""
    url = make_url(database_url)
    return await asyncpg.connect(
        host=url.host,
        port=url.port,
        user=url.username,
        password=url.password,
        database="postgres",
        timeout=timeout,
    )


async def create_database_if_missing(database_url: str) -> bool:
    """Create the database named in the URL (connecting to ``postgres``); True if created."""
    url = make_url(database_url)
    name = url.database
    if not name:
        raise DatabaseUnavailable(f"DATABASE_URL {redact(database_url)} names no database")
    try:
        conn = await connect_to_server(database_url)
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        raise unavailable(database_url, exc) from exc
    try:
        exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
        if exists:
            return False
        quoted = '"' + name.replace('"', '""') + '"'
        try:
            await conn.execute(f"CREATE DATABASE {quoted}")
        except asyncpg.DuplicateDatabaseError:
            return False
        return True
    finally:
        await conn.close()


def alembic_config(database_url: str) -> Config:
    migrations_dir = Path(str(resources.files("migrations")))
    config = Config()
    config.set_main_option("script_location", str(migrations_dir))
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    config.attributes["database_url"] = database_url
    return config


def upgrade_to_head(database_url: str) -> None:
    """Run alembic to head (blocking; alembic drives its own event loop in env.py)."""
    command.upgrade(alembic_config(database_url), "head")


async def migrate(database_url: str) -> bool:
    """Create the database if missing, upgrade it to head and make the event log's partitions
    of this month and the next ones (``dispatcher.partitions``); True if it was created."""
    from dispatcher.partitions import ensure

    created = await create_database_if_missing(database_url)
    await asyncio.to_thread(upgrade_to_head, database_url)
    engine = create_engine(database_url, pool_size=1)
    try:
        await ensure(engine)
    finally:
        await engine.dispose()
    return created
