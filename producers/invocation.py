"""How the user can run ``notify`` again, and where its commands find an edge unless told,
for the options and the hints the commands print.

``notify`` itself when that name on PATH is the very script running; otherwise the script's
path as the user can type it from the current directory (``.venv/bin/notify`` when the venv is
not activated), relative when that is shorter, absolute when not.
"""

from __future__ import annotations

import os
import shlex
import shutil
import sys
from pathlib import Path

NAME = "notify"
# Where `notify edge` and `notify up` listen, and `notify listen` connects, by default.
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000
DEFAULT_URL = f"ws://{DEFAULT_HOST}:{DEFAULT_PORT}"


def _running_script() -> Path | None:
    """The ``notify`` script this process was started as, or the one beside the interpreter
    when it was started as ``python -m producers.cli``."""
    started_as = Path(sys.argv[0]) if sys.argv and sys.argv[0] else None
    if started_as is not None and started_as.suffix != ".py" and started_as.is_file():
        return started_as.absolute()
    beside = Path(sys.executable).with_name(NAME)
    return beside.absolute() if beside.is_file() else None


def _same_file(a: str | Path, b: str | Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def command_name() -> str:
    """``notify``, ``.venv/bin/notify`` or ``/abs/path/notify``: whatever runs this program
    from the user's shell."""
    script = _running_script()
    if script is None:
        return f"{shlex.quote(sys.executable)} -m producers.cli"
    on_path = shutil.which(NAME)
    if on_path is not None and _same_file(on_path, script):
        return NAME
    absolute = str(script)
    try:
        relative = os.path.relpath(absolute)
    except OSError:  # the current directory is gone
        return shlex.quote(absolute)
    if os.sep not in relative:
        relative = os.path.join(os.curdir, relative)
    return shlex.quote(relative if len(relative) < len(absolute) else absolute)
