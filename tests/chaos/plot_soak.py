"""Draw the RSS of every process of a soak run (``python -m tests.chaos --no-faults``) as a PNG.

matplotlib is not a dependency of the project: run this with a separate virtualenv that has
it, for example::

    python3 -m venv .bench-venv && .bench-venv/bin/pip install matplotlib
    .bench-venv/bin/python tests/chaos/plot_soak.py tests/chaos/results/soak-7.json \\
        docs/reliability-soak.png

It also prints, per process, the RSS at the start and end of the second half of the run and the
slope over that half (MiB per hour), the numbers the verdict in docs/reliability.md rests on.
"""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path
from typing import Any

MIB = 1024 * 1024


def series(samples: list[dict[str, Any]]) -> dict[str, list[tuple[float, float]]]:
    """RSS in MiB by process name (a restarted process keeps its role's name)."""
    out: dict[str, list[tuple[float, float]]] = {}
    for row in samples:
        for name, value in row.items():
            if name != "t" and value:
                out.setdefault(name, []).append((row["t"], value / MIB))
    return out


def slope_per_hour(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of RSS over time, MiB per hour."""
    n = len(points)
    if n < 2:
        return 0.0
    mean_t = sum(t for t, _ in points) / n
    mean_v = sum(v for _, v in points) / n
    var = sum((t - mean_t) ** 2 for t, _ in points)
    if var == 0:
        return 0.0
    cov = sum((t - mean_t) * (v - mean_v) for t, v in points)
    return cov / var * 3600


def main(source: str, target: str) -> None:
    # Imported by name: matplotlib lives in another virtualenv, without stubs for mypy here.
    importlib.import_module("matplotlib").use("Agg")
    plt: Any = importlib.import_module("matplotlib.pyplot")

    report = json.loads(Path(source).read_text())
    curves = series(report["rss"])
    fig, ax = plt.subplots(figsize=(10, 5.5))
    for name, points in sorted(curves.items()):
        ax.plot([t / 60 for t, _ in points], [v for _, v in points], label=name, linewidth=1.4)
        half = [p for p in points if p[0] >= points[-1][0] / 2]
        print(f"{name:<14} {half[0][1]:8.1f} MiB -> {half[-1][1]:8.1f} MiB "
              f"(second half: {slope_per_hour(half):+.1f} MiB/h)")  # fmt: skip
    config = report["config"]
    ax.set_title(
        f"Soak: {config['duration'] / 60:g} min, {config['clients']} clients, "
        f"{config['rate']:g} events/s, no faults: RSS of every process"
    )
    ax.set_xlabel("minutes")
    ax.set_ylabel("RSS (MiB)")
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", ncol=2, fontsize="small")
    fig.tight_layout()
    fig.savefig(target, dpi=110)
    print(f"wrote {target}")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        raise SystemExit("usage: plot_soak.py SOAK_JSON OUTPUT_PNG")
    main(sys.argv[1], sys.argv[2])
