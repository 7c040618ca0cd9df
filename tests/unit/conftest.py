"""Fixtures of the unit tests: an SDK whose publisher records what it is given instead of
sending it (the SDK's pure logic, no broker), and an edge node whose registry binds in memory
(its sequencing, no broker)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any, TypeVar

import pytest

from producers.publisher import Publisher
from producers.service import NotificationService
from socket_edge.auth import new_secret
from socket_edge.edge import EdgeNode
from socket_edge.registry import Registry
from socket_edge.settings import EdgeSettings
from tests.support.edge_node import MemoryBinder

E = TypeVar("E")


class RecordingPublisher(Publisher):
    def __init__(self) -> None:
        super().__init__()
        self.published: list[Any] = []

    async def publish_many(self, events: Sequence[E]) -> list[E]:
        self.published.extend(events)
        return list(events)


@pytest.fixture
def recorder() -> RecordingPublisher:
    return RecordingPublisher()


@pytest.fixture
def svc(recorder: RecordingPublisher) -> NotificationService:
    return NotificationService(recorder, producer="booking-service")


@pytest.fixture
async def node() -> AsyncIterator[EdgeNode]:
    edge = EdgeNode(EdgeSettings(auth_jwt_secret=new_secret()), node_id="unit")
    edge.registry = Registry(MemoryBinder())
    yield edge
    await edge.engine.dispose()
