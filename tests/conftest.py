"""Fixtures: real services for the session, real processes and clients for the tests."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator

import aio_pika
import pytest
from aio_pika.abc import AbstractRobustConnection
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings
from sqlalchemy.ext.asyncio import AsyncEngine

from dispatcher.database import create_engine
from producers.publisher import Publisher
from producers.service import NotificationService
from producers.settings import Settings
from tests.support import tokens
from tests.support.processes import NotifyProcess, start_dispatcher, start_edge
from tests.support.services import Services, session_services

# The suite shares a two-core machine with the services and the processes it starts: how long
# a generated example takes says nothing about the code under test. Properties are still
# checked on every example; only the timing checks are off.
hypothesis_settings.register_profile(
    "shared-machine", deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
hypothesis_settings.load_profile("shared-machine")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests that broadcast to everybody run last: every other test may then count a user's
    unread notifications without meeting someone else's broadcast."""
    items.sort(key=lambda item: item.get_closest_marker("broadcasts") is not None)


@pytest.fixture(scope="session")
def services() -> Iterator[Services]:
    try:
        context = session_services(os.environ.get("DATABASE_URL"), os.environ.get("AMQP_URL"))
        with context as found:
            yield found
    except RuntimeError as exc:
        pytest.exit(str(exc), returncode=3)


@pytest.fixture(scope="session")
def settings(services: Services) -> Settings:
    return Settings(database_url=services.database_url, amqp_url=services.amqp_url)


@pytest.fixture(scope="session")
def process_env(services: Services) -> dict[str, str]:
    """The environment of every ``notify`` process a test starts."""
    return {
        "DATABASE_URL": services.database_url,
        "AMQP_URL": services.amqp_url,
        "DISPATCHER_BATCH_WAIT_MS": "5",
        "AUTH_JWT_SECRET": tokens.SECRET,
        # The tests open sockets far faster than a real client would; the limits have tests
        # of their own, on edges started with the defaults.
        "WEBSOCKET_HANDSHAKES_PER_SECOND": "100000",
        "WEBSOCKET_CLIENT_FRAMES_PER_SECOND": "100000",
        # A SIGTERM'd edge closes its sockets over this window: short, to keep the suite fast
        # (tests/e2e/test_drain.py measures the drain with a window of its own).
        "EDGE_DRAIN_SECONDS": "1",
        "LOG_LEVEL": "info",
    }


@pytest.fixture(scope="session")
async def engine(settings: Settings) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(settings.database_url)
    yield engine
    await engine.dispose()


@pytest.fixture
async def amqp(
    settings: Settings, request: pytest.FixtureRequest
) -> AsyncIterator[AbstractRobustConnection]:
    """A connection of the test's own, named after it in the management UI."""
    connection = await aio_pika.connect_robust(
        settings.amqp_url, client_properties={"connection_name": f"test {request.node.name}"}
    )
    yield connection
    await connection.close()


@pytest.fixture(scope="session")
async def service(settings: Settings) -> AsyncIterator[NotificationService]:
    svc = NotificationService(Publisher(settings, name="notify-tests"), producer="tests")
    yield svc
    await svc.close()


@pytest.fixture(scope="session")
async def dispatcher_process(process_env: dict[str, str]) -> AsyncIterator[NotifyProcess]:
    proc = await start_dispatcher(process_env)
    yield proc
    await proc.stop()


@pytest.fixture(scope="session")
async def edge_process(
    process_env: dict[str, str], dispatcher_process: NotifyProcess
) -> AsyncIterator[tuple[NotifyProcess, int]]:
    proc, port = await start_edge(process_env)
    yield proc, port
    await proc.stop()


@pytest.fixture
def edge_url(edge_process: tuple[NotifyProcess, int]) -> str:
    return f"ws://127.0.0.1:{edge_process[1]}"


@pytest.fixture
def user_id() -> str:
    """A user no other test uses, so tests never see each other's notifications."""
    return f"u-{uuid.uuid4().hex[:12]}"
