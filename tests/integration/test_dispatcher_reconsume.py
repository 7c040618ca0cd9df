"""The dispatcher consumes below aio-pika's robust channel (dispatcher.consumer.QueueConsumer),
so aio-pika does not restore its consumer: it consumes again itself after its connection was
cut, and after RabbitMQ cancelled it. A real ``notify dispatcher`` in a vhost of its own, the
connection closed on the broker, the queue deleted under it: events published afterwards are
stored and routed, with exactly one consumer on the queue."""

from __future__ import annotations

import socket
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack

import aio_pika
import pytest
from aio_pika.abc import AbstractRobustConnection

from dispatcher.settings import DispatcherSettings
from producers import topology
from producers.publisher import Publisher
from producers.service import NotificationService
from producers.settings import Settings
from tests.support import broker_admin
from tests.support.deliveries import DeliveryWatch, watch_deliveries
from tests.support.processes import NotifyProcess, start_dispatcher
from tests.support.services import own_vhost

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not broker_admin.available(), reason="needs rabbitmqctl"),
]

WAIT = 20.0


class Vhost:
    def __init__(
        self,
        url: str,
        dispatcher: NotifyProcess,
        connection: AbstractRobustConnection,
        service: NotificationService,
    ) -> None:
        self.url = url
        self.dispatcher = dispatcher
        self.connection = connection
        self.service = service

    async def consumers(self) -> int:
        channel = await self.connection.channel()
        try:
            queue = await channel.declare_queue(topology.DISPATCHER_QUEUE, passive=True)
            count = queue.declaration_result.consumer_count
            assert count is not None
            return count
        finally:
            await channel.close()

    async def delivered(self, deliveries: DeliveryWatch, user_id: str) -> None:
        event_id = await self.service.notify(
            "system_alert", user_id=user_id, title="t", message=f"m {uuid.uuid4()}"
        )
        await deliveries.wait_for(event_id, WAIT)


@pytest.fixture
async def vhost(process_env: dict[str, str], settings: Settings) -> AsyncIterator[Vhost]:
    """A dispatcher of its own on a vhost of its own (the session's database)."""
    with own_vhost(settings.amqp_url) as url:
        if url == settings.amqp_url:
            pytest.skip("needs a broker this machine administers")
        async with AsyncExitStack() as stack:
            dispatcher = await start_dispatcher({**process_env, "AMQP_URL": url})
            stack.push_async_callback(dispatcher.stop)
            connection = await aio_pika.connect_robust(url)
            stack.push_async_callback(connection.close)
            own = Settings(database_url=settings.database_url, amqp_url=url)
            service = NotificationService(Publisher(own, name="reconsume-test"), producer="tests")
            stack.push_async_callback(service.close)
            yield Vhost(url, dispatcher, connection, service)


async def test_the_dispatcher_consumes_again_after_its_connection_is_cut(
    vhost: Vhost, user_id: str
) -> None:
    async with watch_deliveries(vhost.connection, topology.user_key(user_id)) as deliveries:
        await vhost.delivered(deliveries, user_id)
        name = f"notify-dispatcher {socket.gethostname()}:{vhost.dispatcher.pid}"
        for _ in range(2):
            assert await broker_admin.close_connections_named(name) == 1
            await vhost.delivered(deliveries, user_id)
            assert await vhost.consumers() == 1


async def test_the_dispatcher_consumes_again_after_the_broker_cancelled_it(
    vhost: Vhost, user_id: str
) -> None:
    async with watch_deliveries(vhost.connection, topology.user_key(user_id)) as deliveries:
        await vhost.delivered(deliveries, user_id)
        mark = len(vhost.dispatcher.lines)
        channel = await vhost.connection.channel()
        await channel.queue_delete(topology.DISPATCHER_QUEUE)
        await channel.close()
        await vhost.dispatcher.wait_for_line("cancelled the dispatcher's consumer", WAIT, mark)
        # The producer declares the queue again (as every producer does) and publishes to it.
        limit = DispatcherSettings().dispatcher_delivery_limit
        declaring = await vhost.connection.channel()
        await topology.declare_dispatcher_queue(declaring, limit)
        await declaring.close()
        await vhost.delivered(deliveries, user_id)
        assert await vhost.consumers() == 1
