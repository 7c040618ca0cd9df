"""A routing turn across a lost broker connection: the batch written before the loss never
reached RabbitMQ, the robust connection is back (on the same node here, on another in a
cluster) with a new channel, and the turn goes on with its next batch. Written on the new
channel, that batch would reach the edges before the lost one, which the next turn sends
again from the routing mark: a socket would get the later seq first. The turn must not hand
anything over behind a send whose channel was lost (dispatcher/routing.py, ``after``)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import aiormq
import pytest
from aio_pika.abc import AbstractIncomingMessage, AbstractRobustConnection
from sqlalchemy.ext.asyncio import AsyncEngine

from dispatcher.database import create_engine
from dispatcher.routing import DeliveryRoute
from dispatcher.store import EventStore
from producers import topology
from producers.broker import connect
from producers.settings import Settings
from tests.integration.test_routing_order import note, routed_seq
from tests.support.services import create_database, drop_database

pytestmark = pytest.mark.integration


@pytest.fixture
async def own_engine(settings: Settings) -> AsyncIterator[AsyncEngine]:
    url = await create_database(settings.database_url)
    engine = create_engine(url)
    yield engine
    await engine.dispose()
    await drop_database(url)


def reset(underlay: aiormq.Channel) -> None:
    """Reset the TCP connection under ``underlay`` at once, as a node killed or a link cut
    does: whatever its writer has not written yet never leaves."""
    connection = underlay.connection
    writer_task = connection._writer_task  # type: ignore[attr-defined]
    frame = writer_task.get_coro().cr_frame
    assert frame is not None, "aiormq's writer task is not suspended in its loop"
    frame.f_locals["writer"].transport.abort()


async def restored(channel: object, old: aiormq.Channel) -> aiormq.Channel:
    """The channel aio-pika's robust connection opened in place of ``old``."""
    async with asyncio.timeout(20):
        while True:
            try:
                underlay = await channel.get_underlay_channel()  # type: ignore[attr-defined]
            except aiormq.exceptions.ChannelInvalidStateError:
                underlay = None
            if underlay is not None and underlay is not old and not underlay.is_closed:
                assert isinstance(underlay, aiormq.Channel)
                return underlay
            await asyncio.sleep(0.05)


async def test_a_turn_hands_nothing_over_behind_a_batch_lost_with_its_channel(
    own_engine: AsyncEngine, settings: Settings
) -> None:
    user = f"turn-{uuid.uuid4().hex[:8]}"
    key = topology.user_key(user)
    watcher: AbstractRobustConnection = await connect(settings.amqp_url, "routing test edge")
    dispatcher: AbstractRobustConnection = await connect(settings.amqp_url, "routing test")
    try:
        consuming = await watcher.channel()
        exchange = await topology.declare_deliver_exchange(consuming)
        queue = await consuming.declare_queue(exclusive=True)
        await queue.bind(exchange, key)
        received: list[int] = []
        both = asyncio.Event()

        async def on_message(message: AbstractIncomingMessage) -> None:
            received.append(int(message.headers[topology.SEQ_HEADER]))  # type: ignore[arg-type]
            if len(received) >= 2:
                both.set()

        await queue.consume(on_message, no_ack=True)

        channel = await dispatcher.channel(publisher_confirms=True)
        await topology.declare_deliver_exchange(channel)
        route = DeliveryRoute(channel)
        store = EventStore(own_engine)

        async with store.turn(route) as turn:
            first = await turn.append([note(user)])
            old = await channel.get_underlay_channel()
            assert isinstance(old, aiormq.Channel)
            reset(old)  # before the writer ran: the first batch is lost
            await restored(channel, old)
            second = await turn.append([note(user)])
        (lost,) = (n.seq for n in first.applied.notifications)
        (later,) = (n.seq for n in second.applied.notifications)
        await asyncio.sleep(0.5)
        assert later not in received, (
            f"seq {later} reached the broker while seq {lost}, before it, was lost with the "
            "old channel"
        )
        assert received == []
        assert await routed_seq(own_engine) == 0

        async with store.turn(route) as turn:
            assert turn.rerouted == 2
        await asyncio.wait_for(both.wait(), 10)
        assert received == [lost, later]
        assert await routed_seq(own_engine) == later
    finally:
        await dispatcher.close()
        await watcher.close()
