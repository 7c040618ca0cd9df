"""Real services for the tests: RabbitMQ and PostgreSQL.

Where they come from, in order:
1. ``DATABASE_URL`` / ``AMQP_URL`` (default: the local services) when they answer;
2. otherwise, where a Docker engine answers, containers started with testcontainers;
3. otherwise the run stops with a message naming what is missing.

Each test session then works in a database of its own (created, migrated, dropped) and, when
``rabbitmqctl`` can reach the broker, in a RabbitMQ virtual host of its own (created, deleted),
so that a session never sees another's queues, nor a pipeline running beside it.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import quote, urlsplit, urlunsplit

import aio_pika
import asyncpg
from sqlalchemy.engine import make_url

from dispatcher.database import connect_to_server, migrate
from producers.settings import DEFAULT_AMQP_URL, DEFAULT_DATABASE_URL, async_database_url

PROBE_TIMEOUT = 5.0


@dataclass(frozen=True)
class Services:
    database_url: str  # the session's own database, migrated to head
    amqp_url: str  # the session's own vhost where possible


async def _postgres_answers(url: str) -> bool:
    try:
        conn = await connect_to_server(url, timeout=PROBE_TIMEOUT)
    except (OSError, asyncpg.PostgresError, TimeoutError):
        return False
    await conn.close()
    return True


async def _rabbitmq_answers(url: str) -> bool:
    try:
        connection = await aio_pika.connect(url, timeout=PROBE_TIMEOUT)
    except (OSError, TimeoutError, aio_pika.exceptions.AMQPError):
        return False
    await connection.close()
    return True


def _docker_answers() -> bool:
    try:
        import docker  # comes with testcontainers

        docker.from_env().ping()
    except Exception:  # noqa: BLE001 - no engine, no socket, no permission: all mean "no"
        return False
    return True


@contextlib.contextmanager
def _containers() -> Iterator[tuple[str, str]]:
    from testcontainers.core.container import DockerContainer
    from testcontainers.core.waiting_utils import wait_for_logs
    from testcontainers.postgres import PostgresContainer

    with (
        PostgresContainer("postgres:15", driver=None) as pg,
        DockerContainer("rabbitmq:3.13").with_exposed_ports(5672) as mq,
    ):
        wait_for_logs(mq, "Server startup complete")
        host = mq.get_container_host_ip()
        port = mq.get_exposed_port(5672)
        yield async_database_url(pg.get_connection_url()), f"amqp://guest:guest@{host}:{port}/"


def _with_vhost(amqp_url: str, vhost: str) -> str:
    parts = urlsplit(amqp_url)
    return urlunsplit(parts._replace(path="/" + quote(vhost, safe="")))


def _rabbitmqctl(*args: str) -> bool:
    tool = shutil.which("rabbitmqctl")
    if tool is None:
        return False
    done = subprocess.run([tool, *args], capture_output=True, text=True, timeout=60, check=False)
    return done.returncode == 0


@contextlib.contextmanager
def own_vhost(amqp_url: str) -> Iterator[str]:
    """A fresh vhost on a broker this machine administers; else the URL as given."""
    parts = urlsplit(amqp_url)
    local = parts.hostname in ("127.0.0.1", "localhost", "::1")
    vhost = f"notify-test-{uuid.uuid4().hex[:8]}"
    user = parts.username or "guest"
    if not (local and _rabbitmqctl("add_vhost", vhost)):
        yield amqp_url
        return
    try:
        _rabbitmqctl("set_permissions", "-p", vhost, user, ".*", ".*", ".*")
        yield _with_vhost(amqp_url, vhost)
    finally:
        _rabbitmqctl("delete_vhost", vhost)


async def create_database(base_url: str) -> str:
    name = f"notify_test_{uuid.uuid4().hex[:8]}"
    url = make_url(base_url).set(database=name).render_as_string(hide_password=False)
    await migrate(url)
    return url


async def drop_database(url: str) -> None:
    parsed = make_url(url)
    conn = await connect_to_server(url)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{parsed.database}" WITH (FORCE)')
    finally:
        await conn.close()


@contextlib.contextmanager
def session_services(database_url: str | None, amqp_url: str | None) -> Iterator[Services]:
    database_url = async_database_url(database_url or DEFAULT_DATABASE_URL)
    amqp_url = amqp_url or DEFAULT_AMQP_URL
    with contextlib.ExitStack() as stack:
        pg_ok = asyncio.run(_postgres_answers(database_url))
        mq_ok = asyncio.run(_rabbitmq_answers(amqp_url))
        if not (pg_ok and mq_ok):
            missing = [n for n, ok in (("PostgreSQL", pg_ok), ("RabbitMQ", mq_ok)) if not ok]
            if not _docker_answers():
                raise RuntimeError(
                    f"{' and '.join(missing)} did not answer (DATABASE_URL={database_url}, "
                    f"AMQP_URL={amqp_url}) and no Docker engine is available for "
                    "testcontainers: start the services, or point the variables at them"
                )
            database_url, amqp_url = stack.enter_context(_containers())
        session_amqp = stack.enter_context(own_vhost(amqp_url))
        session_db = asyncio.run(create_database(database_url))
        try:
            yield Services(database_url=session_db, amqp_url=session_amqp)
        finally:
            asyncio.run(drop_database(session_db))
