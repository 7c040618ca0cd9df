"""Regression test for a bug the chaos run found (docs/reliability.md, "Known issues"): with
two dispatchers, one connection's live frames do not always come in seq order.

Each dispatcher publishes a batch to the delivery exchange after its own commit. Two batches
committed one after the other by two dispatchers are published by two connections, and the
later seqs may reach the edge first; the edge sends every live frame above the handover mark
as it comes. A client that keeps the greatest seq it has seen as its ``since`` cursor then
skips the earlier one if its socket drops in between (seen as lost notifications in the chaos
run), and the edge's own catch-up after a broker blip starts from the greatest seq it has
received, with the same gap.
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


@pytest.mark.xfail(
    # Not strict: on an idle machine the two dispatchers may happen to publish in order.
    strict=False,
    raises=AssertionError,
    reason="live frames of one connection can arrive out of seq order with two dispatchers "
    "(docs/reliability.md, known issues)",
)
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
