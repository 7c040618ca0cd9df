"""Prometheus metrics (docs/metrics.md) read from the real processes' /metrics while the real
pipeline runs: a dispatcher with ``--metrics-port``, an edge (and one with ``--workers 2``),
in a vhost and a database of this module's own, so that no other test's traffic moves them.
Also: the dashboard and the alert rules query only metrics that exist."""

from __future__ import annotations

import asyncio
import json
import re
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import aio_pika
import httpx
import orjson
import pytest
import yaml  # type: ignore[import-untyped]  # PyYAML, which uvicorn[standard] brings
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families
from websockets.exceptions import InvalidStatus

from producers.publisher import Publisher
from producers.service import NotificationService
from producers.settings import Settings
from tests.e2e.test_security import raw_socket_that_never_reads
from tests.support import broker_admin
from tests.support.client import ws_client
from tests.support.processes import NotifyProcess, free_port, start_edge, wait_for_listener
from tests.support.services import create_database, drop_database, own_vhost
from tests.support.tokens import token_for

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "compose" / "grafana" / "dashboards" / "notify.json"
ALERTS = ROOT / "compose" / "prometheus" / "alerts.yml"
WAIT = 30.0

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


@dataclass
class Pipeline:
    env: dict[str, str]
    dispatcher: NotifyProcess
    dispatcher_url: str
    edge: NotifyProcess
    edge_port: int
    service: NotificationService
    registry: CollectorRegistry
    amqp_url: str

    @property
    def edge_url(self) -> str:
        return f"http://127.0.0.1:{self.edge_port}/metrics"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.edge_port}"


@pytest.fixture(scope="module")
def vhost(settings: Settings) -> Iterator[str]:
    with own_vhost(settings.amqp_url) as amqp_url:
        yield amqp_url


@pytest.fixture(scope="module")
async def pipeline(
    settings: Settings, vhost: str, process_env: dict[str, str]
) -> AsyncIterator[Pipeline]:
    database = await create_database(settings.database_url)
    env = {
        **process_env,
        "DATABASE_URL": database,
        "AMQP_URL": vhost,
        # Small, so that a socket that does not read is a slow consumer soon.
        "WEBSOCKET_SEND_BUFFER": "65536",
    }
    port = free_port()
    dispatcher = NotifyProcess(
        "notify dispatcher", ["dispatcher", "--metrics-port", str(port)], env
    )
    await dispatcher.start("dispatcher consuming")
    edge, edge_port = await start_edge(env)
    registry = CollectorRegistry()
    own = Settings(database_url=database, amqp_url=vhost)
    service = NotificationService(
        Publisher(own, name="notify-tests metrics", registry=registry), producer="tests"
    )
    try:
        yield Pipeline(
            env,
            dispatcher,
            f"http://127.0.0.1:{port}/metrics",
            edge,
            edge_port,
            service,
            registry,
            vhost,
        )
    finally:
        await service.close()
        await edge.stop()
        await dispatcher.stop()
        await drop_database(database)


# -- reading /metrics ----------------------------------------------------------------------


def parse(text: str) -> Samples:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


async def scrape(url: str) -> Samples:
    async with httpx.AsyncClient(timeout=10) as http:
        response = await http.get(url)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return parse(response.text)


def value(samples: Samples, name: str, **labels: str) -> float:
    """The sum of the samples of ``name`` whose labels include ``labels``."""
    wanted = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and wanted <= ls)


async def until(url: str, check: Callable[[Samples], bool], what: str) -> Samples:
    """Scrape ``url`` until ``check`` holds, or fail after ``WAIT`` seconds."""
    deadline = time.monotonic() + WAIT
    while True:
        samples = await scrape(url)
        if check(samples):
            return samples
        if time.monotonic() > deadline:
            found = {
                f"{n}{dict(ls)}": v
                for (n, ls), v in samples.items()
                if n.startswith("notify_") and not n.endswith(("_bucket", "_created"))
            }
            raise AssertionError(f"{url}: {what} within {WAIT}s; got {found}")
        await asyncio.sleep(0.1)


def grew(before: Samples, name: str, by: float = 1, **labels: str) -> Callable[[Samples], bool]:
    return lambda now: value(now, name, **labels) >= value(before, name, **labels) + by


# -- the tests -----------------------------------------------------------------------------


async def test_a_notification_moves_the_producer_dispatcher_and_edge_metrics(
    pipeline: Pipeline, user_id: str
) -> None:
    d0, e0 = await scrape(pipeline.dispatcher_url), await scrape(pipeline.edge_url)
    service = pipeline.service
    async with ws_client(pipeline.ws_url, user_id) as client:
        await client.subscribe("tour_metrics")
        envelope = service.build(
            "booking_confirmed", user_id=user_id, data={"booking_id": "b1", "tour_name": "T"}
        )
        await service.publisher.publish(envelope)
        frame = await client.notification()
        assert frame["id"] == str(envelope.event_id)
        await service.publisher.publish(
            service.build("system_alert", room="tour_metrics", title="t", message="m")
        )
        assert (await client.notification())["room"] == "tour_metrics"
        await service.publisher.publish(
            service.build("system_alert", broadcast=True, title="t", message="m")
        )
        assert (await client.notification())["notification_type"] == "system_alert"
        await client.send({"action": "mark_read", "ids": [frame["id"]]})
        assert (await client.expect("read"))["ids"] == [frame["id"]]
        await client.nothing_more()

        edge = await until(
            pipeline.edge_url,
            lambda s: (
                value(s, "notify_edge_sockets") >= 1
                and value(s, "notify_edge_users") >= 1
                and value(s, "notify_edge_rooms") >= 1
            ),
            "the sampled gauges count the socket, its user and its room",
        )
    assert value(edge, "notify_edge_handshakes_total", outcome="accepted") >= 1 + value(
        e0, "notify_edge_handshakes_total", outcome="accepted"
    )
    for kind in ("notification", "room", "broadcast", "read", "control"):
        assert grew(e0, "notify_edge_frames_sent_total", kind=kind)(edge), kind
    assert grew(e0, "notify_edge_replay_frames_count")(edge)
    assert grew(e0, "notify_edge_replay_seconds_count")(edge)
    assert value(edge, "notify_edge_event_loop_lag_seconds_count") >= 1
    assert "notify_edge_send_buffer_bytes" in {n for n, _ in edge}

    # The client's normal close.
    await until(
        pipeline.edge_url,
        grew(e0, "notify_edge_closes_total", code="1000"),
        "the client's close 1000 is counted",
    )
    # Three notifications and one read event; each batch's transaction and turn measured.
    dispatcher = await until(
        pipeline.dispatcher_url,
        grew(d0, "notify_dispatcher_events_total", 4, outcome="stored"),
        "four events stored",
    )
    for name in (
        "notify_dispatcher_batch_size_count",
        "notify_dispatcher_commit_seconds_count",
        "notify_dispatcher_publish_to_commit_seconds_count",
        "notify_dispatcher_confirm_wait_seconds_count",
    ):
        assert grew(d0, name)(dispatcher), name
    assert value(dispatcher, "notify_dispatcher_routing_lag") == 0
    # The SDK counted into the registry it was given.
    assert pipeline.registry.get_sample_value(
        "notify_producer_publishes_total", {"outcome": "confirmed"}
    ) == pytest.approx(3)
    # The edge published the read event with its own SDK publisher: counted on its /metrics.
    assert value(edge, "notify_producer_publishes_total", outcome="confirmed") >= 1


async def test_a_duplicate_is_counted_as_one(pipeline: Pipeline, user_id: str) -> None:
    before = await scrape(pipeline.dispatcher_url)
    envelope = pipeline.service.build("system_alert", user_id=user_id)
    await pipeline.service.publisher.publish_many([envelope, envelope])
    await until(
        pipeline.dispatcher_url,
        lambda s: (
            grew(before, "notify_dispatcher_events_total", outcome="stored")(s)
            and grew(before, "notify_dispatcher_events_total", outcome="duplicate")(s)
        ),
        "one stored, one duplicate",
    )


async def test_refused_handshakes_are_counted_by_code(pipeline: Pipeline, user_id: str) -> None:
    before = await scrape(pipeline.edge_url)
    with pytest.raises(InvalidStatus):
        async with ws_client(pipeline.ws_url, user_id, token="not-a-token"):
            pass
    with pytest.raises(InvalidStatus):
        async with ws_client(pipeline.ws_url, user_id, token=token_for("someone-else")):
            pass
    with pytest.raises(InvalidStatus):
        async with ws_client(pipeline.ws_url, "bad user id!"):
            pass
    await until(
        pipeline.edge_url,
        lambda s: (
            grew(before, "notify_edge_refusals_total", code="invalid_token")(s)
            and grew(before, "notify_edge_refusals_total", code="wrong_user")(s)
            and grew(before, "notify_edge_handshakes_total", 3, outcome="refused")(s)
        ),
        "three refused handshakes, two refusal codes",
    )


async def test_poison_events_are_dead_lettered_redelivered_and_counted_by_reason(
    pipeline: Pipeline, user_id: str
) -> None:
    before = await scrape(pipeline.dispatcher_url)
    connection = await aio_pika.connect_robust(pipeline.amqp_url)
    try:
        channel = await connection.channel()
        events = await channel.get_exchange("notifications.events")
        await events.publish(aio_pika.Message(b'{"event_id": "x",'), "booking_created")
        # A valid envelope that PostgreSQL refuses (jsonb holds no U+0000): redelivered until
        # its last delivery, then dead-lettered by the dispatcher.
        body = orjson.dumps(
            {
                "event_id": str(uuid.uuid4()),
                "schema_version": 1,
                "notification_type": "system_alert",
                "user_id": user_id,
                "title": "t",
                "message": "m",
                "data": {"note": "nul \u0000 inside"},
            }
        )
        await events.publish(aio_pika.Message(body), "system_alert")
    finally:
        await connection.close()
    await until(
        pipeline.dispatcher_url,
        lambda s: (
            grew(before, "notify_dispatcher_dead_letters_total", reason="invalid_json")(s)
            and grew(before, "notify_dispatcher_dead_letters_total", reason="storage_failed")(s)
            and grew(before, "notify_dispatcher_events_total", 2, outcome="dead_lettered")(s)
            and grew(before, "notify_dispatcher_redeliveries_total", 4)(s)
        ),
        "two dead letters by reason, four redeliveries",
    )


async def test_a_socket_that_never_reads_is_counted_as_a_slow_consumer(
    pipeline: Pipeline, user_id: str
) -> None:
    before = await scrape(pipeline.edge_url)
    _, writer = await raw_socket_that_never_reads(pipeline.edge_port, user_id)
    try:
        service = pipeline.service
        envelopes = [
            service.build("agent_response", user_id=user_id,
                          data={"agent_name": "planner", "response": "x" * 4000,
                                "execution_time_ms": i})
            for i in range(2000)
        ]  # fmt: skip
        await service.publisher.publish_many(envelopes)
        await until(
            pipeline.edge_url,
            grew(before, "notify_edge_slow_consumer_closes_total"),
            "a slow-consumer close",
        )
    finally:
        writer.close()
    # Its session ends once the client is gone, under the code the server closed it with.
    await until(
        pipeline.edge_url,
        grew(before, "notify_edge_closes_total", code="1013"),
        "the close counted under 1013",
    )


@pytest.mark.skipif(not broker_admin.available(), reason="needs rabbitmqctl")
async def test_a_broker_blip_counts_a_catch_up(pipeline: Pipeline, user_id: str) -> None:
    line = await pipeline.edge.wait_for_line("edge node")
    node_id = line.split("edge node ", 1)[1].split()[0]
    before = await scrape(pipeline.edge_url)
    async with ws_client(pipeline.ws_url, user_id) as client:
        async with broker_admin.no_new_connections(pipeline.amqp_url):
            closed = await broker_admin.close_connections_named(f"notify-edge {node_id}")
            assert closed == 1
        await until(
            pipeline.edge_url,
            grew(before, "notify_edge_catchups_total", outcome="caught_up"),
            "a catch-up after the blip",
        )
        await client.nothing_more()


async def test_series_stay_bounded_with_many_users_rooms_and_refusals(
    pipeline: Pipeline,
) -> None:
    """Label values come from fixed sets: the series are the same after many users, rooms,
    refusals and closes, and no label value names a user or a room."""
    await until(
        pipeline.edge_url,
        lambda s: value(s, "notify_edge_event_loop_lag_seconds_count") >= 1,
        "a first sample",
    )
    before = await scrape(pipeline.edge_url)
    names: list[str] = []
    for i in range(30):
        user = f"card-{uuid.uuid4().hex[:10]}"
        room = f"room_{uuid.uuid4().hex[:10]}"
        names += [user, room]
        async with ws_client(pipeline.ws_url, user) as client:
            await client.subscribe(room)
        with pytest.raises(InvalidStatus):
            async with ws_client(pipeline.ws_url, user, token=f"bad-{i}"):
                pass
    after = await scrape(pipeline.edge_url)
    edge_series = {key for key in after if key[0].startswith("notify_")}
    assert edge_series == {key for key in before if key[0].startswith("notify_")}
    assert len(edge_series) < 300
    labels = {v for _, ls in after for _, v in ls}
    assert not labels & set(names)
    dispatcher = await scrape(pipeline.dispatcher_url)
    assert len([k for k in dispatcher if k[0].startswith("notify_")]) < 200


async def test_an_edge_with_workers_answers_for_all_of_them(
    pipeline: Pipeline, user_id: str
) -> None:
    port = free_port()
    edge = NotifyProcess(
        f"notify edge :{port} --workers 2",
        ["edge", "--port", str(port), "--workers", "2"],
        pipeline.env,
    )
    await edge.start(None)
    try:
        await edge.wait_for_lines("Application startup complete", 2)
        await wait_for_listener(port)
        url = f"http://127.0.0.1:{port}/metrics"
        users = [f"{user_id}-{i}" for i in range(6)]
        async with contextlib_clients(f"ws://127.0.0.1:{port}", users):
            # Whichever worker answers, the sum over both: every scrape agrees.
            await until(url, lambda s: value(s, "notify_edge_sockets") == 6, "six sockets")
            for _ in range(10):
                samples = await scrape(url)
                assert value(samples, "notify_edge_sockets") == 6
                assert value(samples, "notify_edge_handshakes_total", outcome="accepted") == 6
        await until(url, lambda s: value(s, "notify_edge_sockets") == 0, "no socket left")
        samples = await scrape(url)
        assert value(samples, "notify_edge_closes_total", code="1000") == 6
    finally:
        await edge.stop()


class contextlib_clients:
    """Several connected clients at once."""

    def __init__(self, base_url: str, users: list[str]) -> None:
        self._managers = [ws_client(base_url, u) for u in users]

    async def __aenter__(self) -> None:
        for manager in self._managers:
            await manager.__aenter__()

    async def __aexit__(self, *exc: object) -> None:
        for manager in reversed(self._managers):
            await manager.__aexit__(None, None, None)


# -- the dashboard and the alert rules -----------------------------------------------------

_METRIC = re.compile(r"\b(notify_[a-z0-9_]+)")


def dashboard_queries() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    return [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]


def alert_rules() -> list[dict[str, object]]:
    document = yaml.safe_load(ALERTS.read_text())
    return [rule for group in document["groups"] for rule in group["rules"]]


def test_the_alert_rules_have_what_prometheus_requires() -> None:
    document = yaml.safe_load(ALERTS.read_text())
    assert set(document) == {"groups"}
    names = set()
    for group in document["groups"]:
        assert isinstance(group["name"], str) and group["name"] not in names
        names.add(group["name"])
        assert set(group) <= {"name", "interval", "rules", "limit"}
        assert group["rules"]
        for rule in group["rules"]:
            assert set(rule) <= {"alert", "expr", "for", "labels", "annotations"}, rule
            assert re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", rule["alert"]), rule
            assert isinstance(rule["expr"], str) and rule["expr"].strip()
            assert rule["expr"].count("(") == rule["expr"].count(")"), rule["alert"]
            if "for" in rule:
                assert re.fullmatch(r"\d+[smhd]", rule["for"]), rule
            assert all(isinstance(v, str) for v in rule.get("labels", {}).values())
            annotations = rule["annotations"]
            assert annotations["summary"] and annotations["description"], rule["alert"]
    alerts = {rule["alert"] for rule in alert_rules()}
    assert {
        "NotifyRoutingLag",
        "NotifyDeadLettersGrowing",
        "NotifyRefusalSpike",
        "NotifyReplaySlow",
        "NotifyDispatcherQueueNoConsumers",
    } <= alerts


async def test_every_metric_the_dashboard_and_the_alerts_query_exists(
    pipeline: Pipeline,
) -> None:
    exposed = {name for name, _ in await scrape(pipeline.edge_url)}
    exposed |= {name for name, _ in await scrape(pipeline.dispatcher_url)}
    queries = dashboard_queries() + [str(rule["expr"]) for rule in alert_rules()]
    queried = {name for query in queries for name in _METRIC.findall(query)}
    assert len(queried) > 20
    missing = sorted(queried - exposed)
    assert not missing, f"queried but not exposed by an edge or a dispatcher: {missing}"
    prometheus = yaml.safe_load((ALERTS.parent / "prometheus.yml").read_text())
    targets = {
        target
        for job in prometheus["scrape_configs"]
        for config in job["static_configs"]
        for target in config["targets"]
    }
    assert {"dispatcher-1:9100", "dispatcher-2:9100", "edge-1:8000", "edge-2:8000"} <= targets
    assert "rabbitmq:15692" in targets
