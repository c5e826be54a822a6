"""The bench table (stdout) and the JSON record (bench/results/latest.json)."""

from __future__ import annotations

import json
import math
import os
import platform
import time
from pathlib import Path

from .common import Figure

RESULTS = Path(__file__).resolve().parent / "results"


def _fmt(value: float | None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, int):
        return f"{value:,}"
    magnitude = abs(value)
    if magnitude >= 1000:
        return f"{value:,.0f}"
    if magnitude >= 100:
        return f"{value:.0f}"
    if magnitude >= 10:
        return f"{value:.1f}"
    if magnitude >= 1:
        return f"{value:.2f}"
    return f"{value:.3g}"


def table(figures: list[Figure], failures: dict[str, str]) -> str:
    rows = [("figure", "value", "anchor (same run)", "ratio", "target", "holds")]
    for f in figures:
        anchor = f"{f.anchor}: {_fmt(f.anchor_value)} {f.unit}" if f.anchor else "-"
        ratio = f"{_fmt(f.ratio)} {f.ratio_note}".strip() if f.ratio is not None else "-"
        holds = {True: "yes", False: "NO", None: "-"}[f.holds]
        rows.append((f.name, f"{_fmt(f.value)} {f.unit}", anchor, ratio, f.target, holds))
    for bench, error in failures.items():
        rows.append((f"{bench}: FAILED", error.splitlines()[0][:80] if error else "", "-", "-", "-", "NO"))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = []
    for n, r in enumerate(rows):
        lines.append("| " + " | ".join(cell.ljust(w) for cell, w in zip(r, widths)) + " |")
        if n == 0:
            lines.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


def write_json(figures: list[Figure], failures: dict[str, str], *, quick: bool, seconds: float,
               path: Path | None = None) -> Path:
    path = path or RESULTS / "latest.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    record = {
        "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "quick": quick,
        "seconds": seconds,
        "machine": {"python": platform.python_version(), "platform": platform.platform(),
                    "cpus": os.cpu_count(), "load_average": os.getloadavg()},
        "figures": [f.as_dict() for f in figures],
        "failures": failures,
    }
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(record, indent=2, default=str) + "\n")
    tmp.replace(path)
    return path
