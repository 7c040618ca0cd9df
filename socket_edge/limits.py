"""Rate limits and the origin allow-list: pure decisions, no I/O, the clock passed in."""

from __future__ import annotations

from dataclasses import dataclass
from fnmatch import fnmatchcase, translate


@dataclass(slots=True)
class TokenBucket:
    """``rate`` tokens a second, at most ``burst`` saved up."""

    rate: float
    burst: float
    tokens: float
    updated: float

    @classmethod
    def full(cls, rate: float, burst: float, now: float) -> TokenBucket:
        return cls(rate, burst, burst, now)

    def take(self, now: float) -> bool:
        self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False


class HandshakeLimiter:
    """One bucket per client address; buckets that have refilled are forgotten, so a flood of
    addresses costs memory only for as long as they keep knocking."""

    def __init__(self, rate: float, burst: float, max_addresses: int = 100_000) -> None:
        self.rate = rate
        self.burst = burst
        self.max_addresses = max_addresses
        self._buckets: dict[str, TokenBucket] = {}
        self._pruned = 0.0

    def allow(self, address: str, now: float) -> bool:
        if now - self._pruned > self.burst / self.rate or len(self._buckets) > self.max_addresses:
            self._prune(now)
        bucket = self._buckets.get(address)
        if bucket is None:
            bucket = self._buckets[address] = TokenBucket.full(self.rate, self.burst, now)
        return bucket.take(now)

    def _prune(self, now: float) -> None:
        refill = self.burst / self.rate
        self._buckets = {a: b for a, b in self._buckets.items() if now - b.updated < refill}
        self._pruned = now


class FrameLimiter:
    """A socket's client frames. Over the rate, a frame is refused: the first refusal of an
    episode earns an error frame, and more than ``burst`` refusals in one episode end the
    socket. An episode ends after a second without refusals."""

    EPISODE_GAP = 1.0
    __slots__ = ("bucket", "last_refusal", "strikes")

    def __init__(self, rate: float, now: float) -> None:
        self.bucket = TokenBucket.full(rate, 2 * rate, now)
        self.strikes = 0
        self.last_refusal = float("-inf")

    def check(self, now: float) -> str:
        """``ok``, ``warn`` (send an error frame), ``drop`` (ignore) or ``close`` (1008)."""
        if self.bucket.take(now):
            return "ok"
        if now - self.last_refusal > self.EPISODE_GAP:
            self.strikes = 0
        self.strikes += 1
        self.last_refusal = now
        if self.strikes == 1:
            return "warn"
        if self.strikes > self.bucket.burst:
            return "close"
        return "drop"


def origin_allowed(origin: str | None, allowed: list[str]) -> bool:
    """No Origin: not a browser, allowed. Otherwise it must match an entry of the allow-list
    (exact, or a glob such as ``https://*.example.com``; ``*`` allows any)."""
    if origin is None:
        return True
    return any(fnmatchcase(origin, pattern) for pattern in allowed)


def origin_regex(allowed: list[str]) -> str | None:
    """The allow-list as one regular expression, for the REST API's CORS: each entry
    translated by ``fnmatch`` itself, so that CORS and sockets read every pattern (``*``,
    ``?``, ``[...]``) the same way."""
    if not allowed:
        return None
    return "|".join(f"(?:{translate(pattern)})" for pattern in allowed)
