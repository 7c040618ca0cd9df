"""Regression test for a bug the chaos run found (docs/reliability.md): with two dispatchers,
one connection's live frames did not always come in seq order.

Each dispatcher published a batch to the delivery exchange after its own commit, so two
batches committed one after the other by two dispatchers could reach the edge in the other
order; a client keeping the greatest seq it had seen as its ``since`` cursor then skipped the
earlier one when its socket dropped. Dispatchers now hold the routing lock from append to
confirmed publish (dispatcher/store.py, "Routing in log order"). Before that, this test failed
in most runs on the 2-core machine (the chaos run counted 3 to 21 such frames a run).
"""

from __future__ import annotations

import asyncio
import itertools

import pytest

from producers.service import NotificationService
from tests.support.client import ws_client
from tests.support.processes import NotifyProcess, start_dispatcher

pytestmark = pytest.mark.chaos

EVENTS = 3000
BATCH = 50
WAIT = 60.0


async def test_live_frames_of_one_connection_come_in_seq_order_with_two_dispatchers(
    process_env: dict[str, str],
    dispatcher_process: NotifyProcess,
    edge_url: str,
    service: NotificationService,
    user_id: str,
) -> None:
    second = await start_dispatcher(process_env)
    try:
        async with ws_client(edge_url, user_id) as client:
            envelopes = [
                service.build("chat_read", user_id=user_id,
                              data={"conversation_id": "c1", "reader_id": f"r{i}"})
                for i in range(EVENTS)
            ]  # fmt: skip
            batches = [envelopes[i : i + BATCH] for i in range(0, EVENTS, BATCH)]
            await asyncio.gather(*(service.publish_many(batch) for batch in batches))
            seqs: list[int] = []
            async with asyncio.timeout(WAIT):
                while len(seqs) < EVENTS:
                    seqs.append((await client.notification(WAIT))["seq"])
    finally:
        await second.stop()
    behind = [(a, b) for a, b in itertools.pairwise(seqs) if b <= a]
    assert behind == [], f"{len(behind)} live frames came after a greater seq: {behind[:5]}"
