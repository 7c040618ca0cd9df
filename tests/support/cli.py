"""Running one ``notify`` command to completion, as an operator would in a shell."""

from __future__ import annotations

import asyncio
import os

from tests.support.processes import NOTIFY

COMMAND_TIMEOUT = 120.0


async def run_notify(
    *args: str, env: dict[str, str], drop: tuple[str, ...] = ()
) -> tuple[int, str, str]:
    """Exit code, stdout and stderr of ``notify ARGS`` with ``env`` over this environment,
    less the variables named in ``drop``."""
    environment = {k: v for k, v in {**os.environ, **env}.items() if k not in drop}
    proc = await asyncio.create_subprocess_exec(
        NOTIFY,
        *args,
        env=environment,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), COMMAND_TIMEOUT)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()
