"""The layout list of docs/architecture.md ("Layout of the code") against the folders.

The list is the first fenced block after the heading ``## Layout of the code``. In it, a line
that starts without indentation and whose first word ends in ``/`` opens a folder (``tests/``);
a line indented by exactly two spaces names an entry of that folder by its first word, a path
relative to the folder (``store.py``, ``unit/``, ``packages/client/``); every other line (a
description continued under the one before) is ignored.

Every Python module of ``producers/``, ``dispatcher/`` and ``socket_edge/`` (and any folder
in them, ``__pycache__`` aside) must be listed, ``__init__.py`` being optional; every folder of
``tests/`` and of ``web/packages/`` must be listed; and everything listed must exist.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ARCHITECTURE = ROOT / "docs" / "architecture.md"
HEADING = "## Layout of the code"
PACKAGES = ("producers", "dispatcher", "socket_edge")

_FOLDER = re.compile(r"^(\S+/)(?:\s|$)")
_ENTRY = re.compile(r"^  (\S+)(?:\s|$)")


def parse_layout(markdown: str) -> dict[str, list[str]]:
    """The layout list as {folder: [entries]}, folders without their trailing slash."""
    _, found, after = markdown.partition(f"\n{HEADING}\n")
    assert found, f"docs/architecture.md has no heading {HEADING!r}"
    fence = after.index("```")
    body = after[after.index("\n", fence) + 1 :]
    block = body[: body.index("```")]
    layout: dict[str, list[str]] = {}
    folder: str | None = None
    for line in block.splitlines():
        if match := _FOLDER.match(line):
            folder = match[1].rstrip("/")
            assert folder not in layout, f"{folder}/ is listed twice"
            layout[folder] = []
        elif match := _ENTRY.match(line):
            assert folder is not None, f"an entry before any folder: {line!r}"
            layout[folder].append(match[1])
    return layout


LAYOUT = parse_layout(ARCHITECTURE.read_text(encoding="utf-8"))


def _listed(folder: str) -> set[str]:
    assert folder in LAYOUT, f"docs/architecture.md's layout list has no {folder}/"
    return set(LAYOUT[folder])


def _children(folder: Path) -> set[str]:
    """The modules and folders of ``folder``, as the list spells them."""
    names = set()
    for child in folder.iterdir():
        if child.name.startswith((".", "__pycache__")):
            continue
        if child.is_dir():
            names.add(f"{child.name}/")
        elif child.suffix == ".py":
            names.add(child.name)
    return names


@pytest.mark.parametrize("package", PACKAGES)
def test_every_module_of_a_package_is_listed(package: str) -> None:
    modules = _children(ROOT / package) - {"__init__.py"}
    missing = sorted(modules - _listed(package))
    assert not missing, (
        f"add to the layout list of docs/architecture.md, under {package}/: {missing}"
    )


@pytest.mark.parametrize("package", PACKAGES)
def test_the_list_names_no_other_module_of_a_package(package: str) -> None:
    extra = sorted(_listed(package) - _children(ROOT / package))
    assert not extra, f"listed under {package}/ in docs/architecture.md, but not there: {extra}"


def test_every_test_suite_is_listed() -> None:
    suites = {name for name in _children(ROOT / "tests") if name.endswith("/")}
    missing = sorted(suites - _listed("tests"))
    assert not missing, f"add to the layout list of docs/architecture.md, under tests/: {missing}"


def test_every_browser_package_is_listed() -> None:
    packages = {f"packages/{p.name}/" for p in (ROOT / "web" / "packages").iterdir() if p.is_dir()}
    missing = sorted(packages - _listed("web"))
    assert not missing, f"add to the layout list of docs/architecture.md, under web/: {missing}"


def test_everything_listed_exists() -> None:
    """A folder or an entry ending in ``/`` is a folder; any other entry is a file."""
    listed = [f"{folder}/" for folder in LAYOUT]
    listed += [f"{folder}/{entry}" for folder, entries in LAYOUT.items() for entry in entries]
    absent = [
        path
        for path in listed
        if not ((ROOT / path).is_dir() if path.endswith("/") else (ROOT / path).is_file())
    ]
    assert not absent, f"listed in docs/architecture.md, but not in the repository: {absent}"


def test_the_parser_reads_folders_entries_and_continuations() -> None:
    markdown = "\n".join(
        [
            "# Title",
            HEADING,
            "",
            "```",
            "pkg/          a package",
            "  a.py        a module",
            "              continued",
            "  sub/        a folder",
            "other/",
            "```",
            "",
            "```",
            "ignored/",
            "```",
        ]
    )
    assert parse_layout(markdown) == {"pkg": ["a.py", "sub/"], "other": []}
