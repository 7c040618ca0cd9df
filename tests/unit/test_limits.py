"""Rate limits and the origin allow-list: pure decisions with the clock passed in."""

from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from socket_edge.limits import FrameLimiter, HandshakeLimiter, origin_allowed, origin_regex


def test_handshakes_get_a_burst_then_the_rate_per_address() -> None:
    limiter = HandshakeLimiter(rate=10, burst=20)
    assert all(limiter.allow("10.0.0.1", 0.0) for _ in range(20))
    assert not limiter.allow("10.0.0.1", 0.0)
    assert limiter.allow("10.0.0.2", 0.0)  # another address has its own bucket
    assert limiter.allow("10.0.0.1", 0.1)  # 0.1 s at 10/s refilled one
    assert not limiter.allow("10.0.0.1", 0.1)


def test_idle_addresses_are_forgotten() -> None:
    limiter = HandshakeLimiter(rate=10, burst=20)
    for i in range(1000):
        limiter.allow(f"10.0.{i // 256}.{i % 256}", 0.0)
    limiter.allow("10.9.9.9", 100.0)
    assert len(limiter._buckets) == 1


def test_a_flooding_socket_is_warned_once_then_closed() -> None:
    limiter = FrameLimiter(rate=20, now=0.0)
    verdicts = [limiter.check(0.0) for _ in range(100)]
    assert verdicts[:40] == ["ok"] * 40
    assert verdicts[40] == "warn"
    assert verdicts[41:80] == ["drop"] * 39
    assert verdicts[80] == "close"


def test_a_socket_over_the_rate_for_a_moment_is_only_warned() -> None:
    limiter = FrameLimiter(rate=20, now=0.0)
    assert [limiter.check(0.0) for _ in range(45)].count("warn") == 1
    # two seconds later the bucket is full again and the episode is over
    assert [limiter.check(2.0) for _ in range(45)].count("warn") == 1
    assert "close" not in [limiter.check(4.0) for _ in range(45)]


def test_origins_match_exactly_or_by_glob() -> None:
    allowed = ["https://app.example.com", "https://*.tours.example"]
    assert origin_allowed(None, allowed)  # not a browser
    assert origin_allowed("https://app.example.com", allowed)
    assert origin_allowed("https://rome.tours.example", allowed)
    assert not origin_allowed("https://app.example.com.evil.net", allowed)
    assert not origin_allowed("http://app.example.com", allowed)
    assert not origin_allowed("https://app.example.com", [])
    assert origin_allowed("https://anything.example", ["*"])


def test_the_cors_regex_says_the_same() -> None:
    import re

    pattern = origin_regex(["https://app.example.com", "https://*.tours.example"])
    assert pattern is not None
    assert re.fullmatch(pattern, "https://rome.tours.example")
    assert not re.fullmatch(pattern, "https://app.example.com.evil.net")
    assert origin_regex([]) is None


ORIGIN_CHARS = "ab1.:/*?[]!-"


@settings(max_examples=2000, deadline=None, database=None)
@given(
    patterns=st.lists(st.text(alphabet=ORIGIN_CHARS, min_size=1, max_size=12), max_size=3),
    origin=st.text(alphabet="ab1.:/-", max_size=12),
)
def test_cors_and_sockets_read_the_origin_allow_list_alike(
    patterns: list[str], origin: str
) -> None:
    regex = origin_regex(patterns)
    allowed_by_cors = regex is not None and re.fullmatch(regex, origin) is not None
    assert allowed_by_cors == (bool(patterns) and origin_allowed(origin, patterns))


def test_a_question_mark_pattern_admits_the_same_origins_for_cors_and_sockets() -> None:
    patterns = ["https://app?.example.com"]
    regex = origin_regex(patterns)
    assert regex is not None
    assert origin_allowed("https://app1.example.com", patterns)
    assert re.fullmatch(regex, "https://app1.example.com")
