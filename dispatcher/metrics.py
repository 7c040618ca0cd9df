"""The dispatcher's Prometheus metrics (docs/metrics.md), served by ``notify dispatcher
--metrics-port`` (or ``DISPATCHER_METRICS_PORT``) at ``/metrics``.

Each is updated once per batch or per routing turn, never per message: the dispatcher handles
thousands of events a second, and a metric costs a lock each time it moves. Label values come
from fixed sets: an outcome, a reason code (``reason_code``), never an event id.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from datetime import datetime

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram

log = logging.getLogger("notify.dispatcher")

# Batches are at most DISPATCHER_BATCH_SIZE (200 by default) events.
BATCH_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000)
# A transaction of a batch: milliseconds when all is well.
COMMIT_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
# From the producer's timestamp to the commit: includes the queue's backlog.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)

OUTCOMES = ("stored", "duplicate", "dead_lettered")
# Why an event was dead-lettered: the reason text (in ``x-notify-error``) reduced to a code.
REASONS = ("invalid_json", "invalid_event", "storage_failed")


def reason_code(reason: str) -> str:
    """The bounded code of a dead-letter reason (``REASONS``)."""
    if reason.startswith(("body is not valid JSON", "body must be one JSON object")):
        return "invalid_json"
    if reason.startswith("could not be stored"):
        return "storage_failed"
    return "invalid_event"


class DispatcherMetrics:
    """The dispatcher's metrics, registered in ``registry``."""

    def __init__(self, registry: CollectorRegistry = REGISTRY) -> None:
        self.events = Counter(
            "notify_dispatcher_events",
            "Events handled, by outcome: stored in the log, a duplicate of a stored one, or "
            "dead-lettered",
            ["outcome"],
            registry=registry,
        )
        self.stored, self.duplicate, self.dead_lettered = (
            self.events.labels(outcome) for outcome in OUTCOMES
        )
        self.dead_letters = Counter(
            "notify_dispatcher_dead_letters",
            "Events dead-lettered by the dispatcher, by reason code",
            ["reason"],
            registry=registry,
        )
        for reason in REASONS:
            self.dead_letters.labels(reason)
        self.batch_size = Histogram(
            "notify_dispatcher_batch_size",
            "Messages per batch taken from the queue",
            buckets=BATCH_BUCKETS,
            registry=registry,
        )
        self.commit_seconds = Histogram(
            "notify_dispatcher_commit_seconds",
            "Seconds to append a batch to the log and projections and commit it",
            buckets=COMMIT_BUCKETS,
            registry=registry,
        )
        self.publish_to_commit = Histogram(
            "notify_dispatcher_publish_to_commit_seconds",
            "Seconds from the oldest event's occurred_at (set by its producer) to the commit of "
            "its batch; one observation per batch",
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.routing_lag = Gauge(
            "notify_dispatcher_routing_lag",
            "Seqs committed above the routing mark (log head - routed_seq), as this dispatcher "
            "last saw them",
            registry=registry,
        )
        self.confirm_wait = Histogram(
            "notify_dispatcher_confirm_wait_seconds",
            "Seconds a routing turn waited for RabbitMQ's confirms of its deliveries and moved "
            "the routing mark",
            buckets=COMMIT_BUCKETS,
            registry=registry,
        )
        self.redeliveries = Counter(
            "notify_dispatcher_redeliveries",
            "Messages RabbitMQ delivered again (they carry x-delivery-count)",
            registry=registry,
        )

    def batch(self, size: int, redelivered: int) -> None:
        self.batch_size.observe(size)
        if redelivered:
            self.redeliveries.inc(redelivered)

    def committed(
        self, seconds: float, logged: int, duplicates: int, oldest: datetime | None
    ) -> None:
        """A batch's transaction committed after ``seconds``; ``oldest`` is the earliest
        ``occurred_at`` of its events."""
        self.commit_seconds.observe(seconds)
        if logged:
            self.stored.inc(logged)
        if duplicates:
            self.duplicate.inc(duplicates)
        if oldest is not None:
            self.publish_to_commit.observe(max(0.0, time.time() - oldest.timestamp()))

    def dead_letter(self, reason: str) -> None:
        self.dead_lettered.inc()
        self.dead_letters.labels(reason_code(reason)).inc()


_shared: DispatcherMetrics | None = None


def shared() -> DispatcherMetrics:
    """The metrics of this process, in prometheus-client's default registry (created once:
    every dispatcher of the process counts into them)."""
    global _shared
    if _shared is None:
        _shared = DispatcherMetrics()
    return _shared


def oldest(occurred: Sequence[datetime | None]) -> datetime | None:
    known = [at for at in occurred if at is not None]
    return min(known) if known else None


def serve(port: int, address: str = "0.0.0.0", registry: CollectorRegistry = REGISTRY) -> None:
    """Serve ``registry`` at ``http://address:port/metrics`` from a thread of its own."""
    from prometheus_client import start_http_server

    start_http_server(port, address, registry=registry)
    log.info("dispatcher metrics at http://%s:%d/metrics", address, port)
