"""Development mode: a generated signing secret for one local session, so that a demo works
with no configuration while a real deployment never runs without authentication.

``notify up --dev`` writes the secret to a file readable only by its owner and removes it when
it stops; ``notify token`` and ``notify listen`` read it from there when AUTH_JWT_SECRET is not
set.

One session at a time: ``notify up --dev`` holds an exclusive ``flock`` on a lock file beside
the secret (holding its pid) for as long as it runs, and only the holder writes or removes the
secret. A second ``notify up --dev`` fails before touching it. The kernel releases the lock
when its holder dies, however it dies, so a lock file left behind never blocks the next
session.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path

from socket_edge.settings import EdgeSettings


class DevSessionRunning(Exception):
    """Another ``notify up --dev`` holds the lock; ``pid`` is the one it wrote, if readable."""

    def __init__(self, pid: int | None) -> None:
        super().__init__(pid)
        self.pid = pid


def secret_file() -> Path:
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "tour-notify" / "dev-secret"


def lock_file() -> Path:
    return secret_file().with_name("dev.lock")


class DevSession:
    """The lock of the running development session; the secret is this session's to write
    and to remove."""

    def __init__(self, fd: int) -> None:
        self._fd = fd

    def write_secret(self, secret: str) -> Path:
        path = secret_file()
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secret)
        return path

    def close(self) -> None:
        """Remove the secret, then let go of the lock (the lock file stays, empty)."""
        if self._fd < 0:
            return
        secret_file().unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            os.ftruncate(self._fd, 0)
        os.close(self._fd)  # releases the flock
        self._fd = -1


def start_session() -> DevSession:
    """Take the development session's lock, or raise ``DevSessionRunning``."""
    path = lock_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        try:
            holder = os.read(fd, 32).decode(errors="replace").strip()
        finally:
            os.close(fd)
        raise DevSessionRunning(int(holder) if holder.isdigit() else None) from None
    except BaseException:
        os.close(fd)
        raise
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return DevSession(fd)


def signing_secret(settings: EdgeSettings) -> str | None:
    """The HS256 secret tokens can be minted with: configured, or this session's dev one."""
    if settings.auth_jwt_secret:
        return settings.auth_jwt_secret
    path = secret_file()
    try:
        return path.read_text().strip() or None
    except FileNotFoundError:
        return None
