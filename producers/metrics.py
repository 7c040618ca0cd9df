"""The producer SDK's Prometheus metrics (docs/metrics.md).

They are registered in the registry the application gives the ``Publisher`` (or the
``NotificationService``), prometheus-client's default ``REGISTRY`` otherwise, so that an
application embedding the SDK serves them with its own ``/metrics``. Every publisher of one
registry counts into the same series; they move once per ``publish_many`` call, not per event.
"""

from __future__ import annotations

import weakref

from prometheus_client import REGISTRY, CollectorRegistry, Counter

OUTCOMES = ("confirmed", "in_doubt", "failed")


class ProducerMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.publishes = Counter(
            "notify_producer_publishes",
            "Events published, by outcome: confirmed by RabbitMQ; in_doubt (no confirm within "
            "PUBLISH_TIMEOUT: may or may not be stored, safe to publish again); failed (the "
            "call failed, an event reaching no queue: its events are not known to be stored)",
            ["outcome"],
            registry=registry,
        )
        self.confirmed, self.in_doubt, self.failed = (
            self.publishes.labels(outcome) for outcome in OUTCOMES
        )
        self.resends = Counter(
            "notify_producer_resends",
            "Events sent again because the connection to RabbitMQ was lost before their confirm",
            registry=registry,
        )
        self.refusals = Counter(
            "notify_producer_refusals",
            "Events RabbitMQ refused with a negative confirm, each sent again after a pause",
            registry=registry,
        )


_by_registry: weakref.WeakKeyDictionary[CollectorRegistry, ProducerMetrics] = (
    weakref.WeakKeyDictionary()
)


def producer_metrics(registry: CollectorRegistry | None = None) -> ProducerMetrics:
    """The SDK's metrics in ``registry`` (default: prometheus-client's ``REGISTRY``),
    registered there on first use."""
    registry = REGISTRY if registry is None else registry
    found = _by_registry.get(registry)
    if found is None:
        found = _by_registry[registry] = ProducerMetrics(registry)
    return found
