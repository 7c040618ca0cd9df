"""Producers at a steady rate, through the SDK, with broker confirms: personal notifications
to random clients, room notifications, and a broadcast now and then.

Every event goes into the ledger before it is published; it counts as confirmed only once
``Publisher.publish_many`` says the broker confirmed it. An event left unconfirmed by a
``PublishTimeout`` (or a refused batch) stays in the ledger as "in doubt": it may or may not be
stored, and the checker accounts for it either way.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass

from producers.envelope import Envelope
from producers.errors import PublishError
from producers.publisher import PublishTimeout
from producers.service import NotificationService
from tests.chaos.harness.checker import Audience, Sent

log = logging.getLogger("notify.chaos")

TICK = 0.1
MAX_BATCHES_IN_FLIGHT = 40
ROOM_SHARE = 0.15
BURST_PAD = 15_000  # bytes of data per slow-consumer event (the limit is 16 KiB)


@dataclass(frozen=True, slots=True)
class Target:
    audience: Audience
    target: str


class Traffic:
    def __init__(
        self,
        service: NotificationService,
        users: Sequence[str],
        rooms: Sequence[str],
        rate: float,
        broadcast_every: float,
        rng: random.Random,
    ) -> None:
        self.service = service
        self.users = list(users)
        self.rooms = list(rooms)
        self.rate = rate
        self.broadcast_every = broadcast_every
        self.rng = rng
        self.sent: dict[str, Sent] = {}
        self.confirmed: set[str] = set()
        self.errors: dict[str, int] = {}
        self.started_at = 0.0
        self.stopped_at = 0.0
        self._window = asyncio.Semaphore(MAX_BATCHES_IN_FLIGHT)
        self._tasks: set[asyncio.Task[None]] = set()
        self._counter = 0

    def _envelope(self, to: Target, pad: int = 0) -> Envelope:
        self._counter += 1
        n = self._counter
        if to.audience == "user":
            if pad:
                data = {"component": "chaos", "pad": "x" * pad}
                envelope = self.service.build("system_alert", user_id=to.target, data=data,
                                              title="Burst", message="m" * 1900)  # fmt: skip
            else:
                envelope = self.service.build(
                    "booking_confirmed", user_id=to.target,
                    data={"booking_id": f"b{n}", "tour_name": "Chaos Tour"},
                )  # fmt: skip
        elif to.audience == "room":
            envelope = self.service.build(
                "chat_message", room=to.target,
                data={"conversation_id": to.target, "sender_id": "guide", "preview": f"m{n}"},
            )  # fmt: skip
        else:
            envelope = self.service.build("system_alert", broadcast=True,
                                          data={"component": "chaos", "n": n},
                                          title="Chaos", message=f"broadcast {n}")  # fmt: skip
        event_id = str(envelope.event_id)
        self.sent[event_id] = Sent(event_id, to.audience, to.target,
                                   envelope.notification_type, confirmed=False)  # fmt: skip
        return envelope

    def _pick(self) -> Target:
        if self.rooms and self.rng.random() < ROOM_SHARE:
            return Target("room", self.rng.choice(self.rooms))
        return Target("user", self.rng.choice(self.users))

    async def _publish(self, batch: list[Envelope]) -> None:
        ids = [str(e.event_id) for e in batch]
        try:
            await self.service.publish_many(batch)
        except PublishTimeout as exc:
            doubt = {str(i) for i in exc.unconfirmed}
            self.confirmed.update(i for i in ids if i not in doubt)
            self._error("PublishTimeout")
            return
        except PublishError as exc:
            self._error(type(exc).__name__)
            return
        except (OSError, TimeoutError, ConnectionError) as exc:
            self._error(type(exc).__name__)
            return
        finally:
            self._window.release()
        self.confirmed.update(ids)

    def _error(self, name: str) -> None:
        self.errors[name] = self.errors.get(name, 0) + 1

    async def send(self, batch: list[Envelope]) -> None:
        """Publish in the background; wait only while too many batches are in flight."""
        if not batch:
            return
        await self._window.acquire()
        task = asyncio.create_task(self._publish(batch))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def run(self, stop: asyncio.Event) -> None:
        loop = asyncio.get_running_loop()
        self.started_at = start = loop.time()
        owed = 0.0
        next_broadcast = start + self.broadcast_every / 2
        ticks = 0
        while not stop.is_set():
            ticks += 1
            owed += self.rate * TICK
            count, owed = int(owed), owed - int(owed)
            batch = [self._envelope(self._pick()) for _ in range(count)]
            if self.broadcast_every > 0 and loop.time() >= next_broadcast:
                batch.append(self._envelope(Target("broadcast", "")))
                next_broadcast += self.broadcast_every
            await self.send(batch)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), max(0.0, start + ticks * TICK - loop.time()))
        self.stopped_at = loop.time()

    async def burst(self, user_id: str, size: int) -> None:
        """About ``size`` bytes of large notifications to one user, for the slow consumer."""
        count = max(1, size // BURST_PAD)
        await self.send([self._envelope(Target("user", user_id), BURST_PAD) for _ in range(count)])

    async def drain(self, timeout: float) -> None:
        """Wait for the publishes in flight (each bounded by PUBLISH_TIMEOUT)."""
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=timeout)

    def ledger(self) -> dict[str, Sent]:
        return {
            event_id: Sent(
                s.event_id, s.audience, s.target, s.notification_type, event_id in self.confirmed
            )
            for event_id, s in self.sent.items()
        }

    def achieved_rate(self) -> float:
        elapsed = (self.stopped_at or time.monotonic()) - self.started_at
        return len(self.sent) / elapsed if elapsed > 0 else 0.0
