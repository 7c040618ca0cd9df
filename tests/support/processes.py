"""Starting the real ``notify`` processes for a test, and stopping them.

A process is ready when it says so in its log (the dispatcher's "consuming" line, uvicorn's
"running on" line): the tests await that line instead of sleeping.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

NOTIFY = str(Path(sys.executable).with_name("notify"))
READY_TIMEOUT = 30.0
STOP_TIMEOUT = 15.0


async def wait_for_listener(port: int, attempts: int = 100) -> None:
    """Until a TCP connection to the port is accepted (0.1 s apart, ``attempts`` times).
    ``--workers`` edges need it: the supervisor binds the port and says so, and each worker
    listens on it only after its startup, without a line of its own."""
    for _ in range(attempts):
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except ConnectionRefusedError:
            await asyncio.sleep(0.1)
            continue
        writer.close()
        await writer.wait_closed()
        return
    raise AssertionError(f"nothing listens on port {port}")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class NotifyProcess:
    """One ``notify ...`` child process whose merged output is read line by line."""

    def __init__(
        self,
        name: str,
        args: list[str],
        env: Mapping[str, str],
        *,
        drop: tuple[str, ...] = (),
        cwd: str | None = None,
        prefix: Sequence[str] = (),
    ) -> None:
        """``env`` goes over this process's environment, less the variables in ``drop``;
        ``prefix`` runs it through another program that execs it (``ip netns exec <host>``:
        the PID stays the process's own)."""
        self.name = name
        self.prefix = list(prefix)
        self.args = args
        self.env = dict(env)
        self.drop = drop
        self.cwd = cwd
        self.lines: list[str] = []
        self._proc: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None
        self._waiters: list[tuple[str, asyncio.Future[str]]] = []

    @property
    def pid(self) -> int:
        assert self._proc is not None
        return self._proc.pid

    @property
    def returncode(self) -> int | None:
        return None if self._proc is None else self._proc.returncode

    async def start(self, ready_line: str | None) -> NotifyProcess:
        """Start the process and wait for ``ready_line`` (None: do not wait)."""
        env = {**os.environ, **self.env, "PYTHONUNBUFFERED": "1"}
        env = {k: v for k, v in env.items() if k not in self.drop}
        self._proc = await asyncio.create_subprocess_exec(
            *self.prefix,
            NOTIFY,
            *self.args,
            env=env,
            cwd=self.cwd,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        self._reader = asyncio.create_task(self._read())
        if ready_line is not None:
            await self.wait_for_line(ready_line)
        return self

    async def _read(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        async for raw in self._proc.stdout:
            line = raw.decode(errors="replace").rstrip()
            self.lines.append(line)
            for needle, future in list(self._waiters):
                if needle in line and not future.done():
                    future.set_result(line)
        for _, future in self._waiters:
            if not future.done():
                future.set_exception(
                    RuntimeError(f"{self.name} exited; its output:\n" + "\n".join(self.lines))
                )

    async def wait_for_line(
        self, needle: str, timeout: float = READY_TIMEOUT, after: int = 0
    ) -> str:
        """Wait for a line containing ``needle`` among the lines from index ``after`` on
        (including those already printed)."""
        for line in self.lines[after:]:
            if needle in line:
                return line
        if self._reader is not None and self._reader.done():
            raise RuntimeError(f"{self.name} exited; its output:\n" + "\n".join(self.lines))
        future: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._waiters.append((needle, future))
        try:
            return await asyncio.wait_for(future, timeout)
        except TimeoutError:
            raise TimeoutError(
                f"{self.name} did not print {needle!r} within {timeout}s; its output:\n"
                + "\n".join(self.lines)
            ) from None
        finally:
            self._waiters.remove((needle, future))

    async def wait_for_lines(self, needle: str, count: int) -> list[str]:
        """Wait until ``count`` lines containing ``needle`` have been printed."""
        while True:
            found = [line for line in self.lines if needle in line]
            if len(found) >= count:
                return found[:count]
            await self.wait_for_line(needle, after=len(self.lines))

    async def exited(self, timeout: float = READY_TIMEOUT) -> int:
        """Wait for the process to exit by itself; its exit code. On timeout it is left
        running (for ``stop``) and TimeoutError names its output."""
        assert self._proc is not None and self._reader is not None
        try:
            await asyncio.wait_for(self._proc.wait(), timeout)
            await asyncio.wait_for(asyncio.shield(self._reader), timeout)
        except TimeoutError:
            raise TimeoutError(
                f"{self.name} did not exit within {timeout}s; its output:\n" + "\n".join(self.lines)
            ) from None
        assert self._proc.returncode is not None
        return self._proc.returncode

    async def stop(self, sig: int = signal.SIGTERM) -> int:
        """Signal the process (by its own PID) and wait for it; kill it if it lingers."""
        assert self._proc is not None
        if self._proc.returncode is None:
            self._proc.send_signal(sig)
            try:
                await asyncio.wait_for(self._proc.wait(), STOP_TIMEOUT)
            except TimeoutError:
                self._proc.kill()
                await self._proc.wait()
        if self._reader is not None:
            await self._reader
        assert self._proc.returncode is not None
        return self._proc.returncode

    async def kill(self) -> int:
        return await self.stop(signal.SIGKILL)


async def start_dispatcher(env: Mapping[str, str]) -> NotifyProcess:
    proc = NotifyProcess("notify dispatcher", ["dispatcher"], env)
    return await proc.start("dispatcher consuming")


async def start_edge(env: Mapping[str, str], port: int | None = None) -> tuple[NotifyProcess, int]:
    port = port or free_port()
    proc = NotifyProcess(f"notify edge :{port}", ["edge", "--port", str(port)], env)
    await proc.start("Uvicorn running on")
    return proc, port
