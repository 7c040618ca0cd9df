"""Delivery receipts: which notification reached at least one socket of which user.

Receipts are collected in memory on the delivery path (a set insert per user and frame) and
written to Postgres by a background task, in one statement per batch, so the delivery path
never waits on the database. A receipt lost in a crash only leaves ``delivered_at`` empty:
it is a report, not a guarantee.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable

from dispatcher.store import EventStore
from producers.waiting import cancel_and_wait, wait_event

log = logging.getLogger("notify.edge")

FLUSH_INTERVAL = 1.0
BATCH_MAX = 10_000


class ReceiptRecorder:
    def __init__(self, store: EventStore, interval: float = FLUSH_INTERVAL) -> None:
        self.store = store
        self.interval = interval
        self._pending: set[tuple[str, int]] = set()
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()

    def add(self, users: Iterable[str], seq: int) -> None:
        self._pending.update((user, seq) for user in users)
        if len(self._pending) >= BATCH_MAX:
            self._wake.set()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="delivery-receipts")

    async def _run(self) -> None:
        while True:
            await wait_event(self._wake, self.interval)
            self._wake.clear()
            await self.flush()

    async def flush(self) -> None:
        while self._pending:
            batch = list(self._pending)[:BATCH_MAX]
            self._pending.difference_update(batch)
            try:
                await self.store.record_deliveries(batch)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - receipts must never take the edge down
                log.warning("could not record %d delivery receipts: %s", len(batch), exc)
                return

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        self._task = None
        await self.flush()
