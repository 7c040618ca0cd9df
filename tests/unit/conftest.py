"""Fixtures of the unit tests: an SDK whose publisher records what it is given instead of
sending it (the SDK's pure logic, no broker)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar

import pytest

from producers.publisher import Publisher
from producers.service import NotificationService

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
