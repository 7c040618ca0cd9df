"""``notify listen``'s reconnect schedule and token renewal (pure)."""

from __future__ import annotations

import jwt
import pytest

from socket_edge.listen import BACKOFF_MAX, backoff_delay, renewal_delay
from tests.support.tokens import SECRET

HIGHEST_DRAW = 1 - 2**-53  # the largest value random.random() returns
NOW = 1_000_000.0


@pytest.mark.parametrize("attempt", range(40))
def test_the_wait_is_equal_jitter_below_a_doubling_ceiling_and_never_above_the_cap(
    attempt: int,
) -> None:
    ceiling = min(BACKOFF_MAX, 0.5 * 2**attempt)
    assert backoff_delay(attempt, lambda: 0.0) == ceiling / 2
    assert ceiling / 2 <= backoff_delay(attempt, lambda: HIGHEST_DRAW) <= ceiling
    assert backoff_delay(attempt) <= BACKOFF_MAX


def token_expiring_at(exp: float) -> str:
    return jwt.encode({"sub": "u", "exp": int(exp)}, SECRET, algorithm="HS256")


@pytest.mark.parametrize(
    ("lifetime", "renew_after"),
    [(10, 8.0), (300, 240.0), (3600, 3540.0), (-1, 0.0), (0, 0.0)],
)
def test_a_token_is_renewed_a_fifth_of_its_lifetime_before_exp_and_at_most_a_minute(
    lifetime: int, renew_after: float
) -> None:
    assert renewal_delay(token_expiring_at(NOW + lifetime), now=NOW) == pytest.approx(renew_after)


def test_a_token_without_a_readable_exp_is_not_renewed() -> None:
    assert renewal_delay("not-a-token", now=NOW) is None
    assert renewal_delay(jwt.encode({"sub": "u"}, SECRET, algorithm="HS256"), now=NOW) is None
