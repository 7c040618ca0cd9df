"""Tokens for the tests: one signing secret per test session, handed to every edge process."""

from __future__ import annotations

from socket_edge.auth import mint, new_secret

SECRET = new_secret()


def token_for(
    user_id: str, rooms: list[str] | None = None, admin: bool = False, ttl: float = 600
) -> str:
    return mint(SECRET, user_id, rooms=["*"] if rooms is None else rooms, admin=admin, ttl=ttl)


def admin_headers() -> dict[str, str]:
    return {"Authorization": f"Bearer {token_for('ops', admin=True)}"}
