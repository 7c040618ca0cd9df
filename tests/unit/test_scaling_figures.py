"""docs/scaling.md's figures against docs/performance.md.

The capacity model cites every measured figure it uses in one table, under the heading
``## The figures``: an id (``E1``, ``B3``), what it is, the value, the heading of the
performance.md section it comes from, a phrase of the row (or sentence) that holds it, and the
benchmark command. Each must be found where it says: the heading in performance.md, the value
on a line of that section that also holds the phrase, and the command in the enclosing
top-level section (commands are often given once, above the runs that used them), compared
with runs of whitespace taken as one space. The rest of the document names figures by id in
brackets (``[E1]``), and every id it names must be in the table.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[2] / "docs"
SCALING = (DOCS / "scaling.md").read_text(encoding="utf-8")
PERFORMANCE = (DOCS / "performance.md").read_text(encoding="utf-8")
HEADING = "## The figures"
_ID = re.compile(r"^[A-Z]\d+$")
_CITED = re.compile(r"\[([A-Z]\d+)\]")
_HEADING = re.compile(r"^(#{2,6}) (.+?)\s*$")


@dataclass(frozen=True)
class Figure:
    id: str
    value: str
    section: str
    phrase: str
    command: str


def _cells(line: str) -> list[str]:
    return [cell.strip() for cell in line.strip().strip("|").split("|")]


def _unquote(cell: str) -> str:
    return cell[1:-1] if len(cell) > 1 and cell[0] == cell[-1] == "`" else cell


def parse_figures(markdown: str) -> list[Figure]:
    """The rows of the table under ``## The figures``: id, figure, value, section, row,
    command."""
    _, found, after = markdown.partition(f"\n{HEADING}\n")
    assert found, f"docs/scaling.md has no heading {HEADING!r}"
    figures = []
    for line in after.splitlines():
        if line.startswith("#"):
            break
        if not line.startswith("|"):
            continue
        cells = _cells(line)
        if not _ID.match(cells[0]):
            continue  # the header and its rule
        assert len(cells) == 6, f"a figure row has six cells: {line!r}"
        figure_id, _, value, section, phrase, command = cells
        figures.append(
            Figure(figure_id, _unquote(value), section, _unquote(phrase), _unquote(command))
        )
    return figures


def sections(markdown: str) -> dict[str, tuple[int, str]]:
    """Each heading's text: its level and its section's text (subsections included)."""
    lines = markdown.splitlines()
    found = {}
    for i, line in enumerate(lines):
        if match := _HEADING.match(line):
            level = len(match[1])
            end = next(
                (
                    j
                    for j in range(i + 1, len(lines))
                    if (m := _HEADING.match(lines[j])) and len(m[1]) <= level
                ),
                len(lines),
            )
            found[match[2]] = (level, "\n".join(lines[i:end]))
    return found


def enclosing_top(markdown: str, heading: str) -> str:
    """The text of the ``##`` section that holds ``heading``."""
    top = ""
    for line in markdown.splitlines():
        if (match := _HEADING.match(line)) and len(match[1]) == 2:
            top = match[2]
        if (match := _HEADING.match(line)) and match[2] == heading:
            return sections(markdown)[top][1]
    raise AssertionError(f"no heading {heading!r}")


def _squashed(text: str) -> str:
    return " ".join(text.replace("\\\n", " ").replace("`", " ").split())


FIGURES = parse_figures(SCALING)
SECTIONS = sections(PERFORMANCE)


def test_the_table_has_figures_and_unique_ids() -> None:
    ids = [f.id for f in FIGURES]
    assert len(ids) >= 10
    assert len(ids) == len(set(ids)), "an id is used twice"


@pytest.mark.parametrize("figure", FIGURES, ids=lambda f: f.id)
def test_each_figure_is_in_performance_md(figure: Figure) -> None:
    assert figure.section in SECTIONS, f"performance.md has no heading {figure.section!r}"
    _, text = SECTIONS[figure.section]
    lines = [line for line in text.splitlines() if figure.phrase in line]
    assert lines, f"{figure.phrase!r} is not in performance.md, {figure.section!r}"
    assert any(figure.value in line for line in lines), (
        f"{figure.value!r} is on no line with {figure.phrase!r} in {figure.section!r}"
    )
    top = _squashed(enclosing_top(PERFORMANCE, figure.section))
    assert _squashed(figure.command) in top, (
        f"the command {figure.command!r} is not in the section that holds {figure.section!r}"
    )


def test_every_cited_id_is_in_the_table() -> None:
    defined = {f.id for f in FIGURES}
    cited = set(_CITED.findall(SCALING))
    assert cited - defined == set(), f"cited but not in the table: {sorted(cited - defined)}"
    assert defined - cited == set(), f"in the table but never cited: {sorted(defined - cited)}"


def test_the_parser_finds_a_misquoted_value() -> None:
    table = (
        f"\n{HEADING}\n\n| id | figure | value | section | row | command |\n|--|--|--|--|--|--|\n"
        "| X1 | f | `1,234` | Dispatcher | `dispatcher, 1 process` | `python -m x` |\n"
    )
    (figure,) = parse_figures(table)
    assert figure == Figure("X1", "1,234", "Dispatcher", "dispatcher, 1 process", "python -m x")
    _, text = SECTIONS["Dispatcher"]
    assert not any(figure.value in line for line in text.splitlines() if figure.phrase in line)
