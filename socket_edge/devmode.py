"""Development mode: a generated signing secret for one local session, so that a demo works
with no configuration while a real deployment never runs without authentication.

``notify up --dev`` writes the secret to a file readable only by its owner and removes it when
it stops; ``notify token`` and ``notify listen`` read it from there when AUTH_JWT_SECRET is not
set.
"""

from __future__ import annotations

import os
from pathlib import Path

from producers.settings import Settings


def secret_file() -> Path:
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "tour-notify" / "dev-secret"


def write_secret(secret: str) -> Path:
    path = secret_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(secret)
    return path


def remove_secret() -> None:
    secret_file().unlink(missing_ok=True)


def signing_secret(settings: Settings) -> str | None:
    """The HS256 secret tokens can be minted with: configured, or this session's dev one."""
    if settings.auth_jwt_secret:
        return settings.auth_jwt_secret
    path = secret_file()
    return path.read_text().strip() if path.exists() else None
