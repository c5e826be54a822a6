"""DIR/demo.png: the guest's offset over time, each phase shaded and named.

matplotlib is the optional extra `demo` (pip install 'hostclock[demo]'); without it
`write_picture` says how to get the picture and the demo goes on. It is imported
only here, after the demo has stopped.
"""

from __future__ import annotations

from collections.abc import Sequence

from gateway.app.demo.phases import Phase
from gateway.app.demo.readings import Reading

__all__ = ["write_picture", "MATPLOTLIB_MISSING"]

MATPLOTLIB_MISSING = ("matplotlib is not installed: pip install 'hostclock[demo]' (or pip install matplotlib) "
                      "for demo.png")

_PHASE_COLOURS = ("#e8f0fe", "#fde8e8", "#e6f4ea", "#fef7e0", "#f3e8fd")
_UNITS = ((1e-3, 1e6, "µs"), (1.0, 1e3, "ms"), (float("inf"), 1.0, "s"))


def write_picture(path: str, readings: Sequence[Reading], phases: Sequence[Phase], *, started_unix: float,
                  title: str) -> str | None:
    """Write the PNG; None if written, else why not (one line)."""
    try:
        import matplotlib
    except ImportError:
        return MATPLOTLIB_MISSING
    matplotlib.use("Agg")
    from matplotlib import pyplot

    largest = max((abs(r.offset_s) for r in readings), default=0.0)
    _, scale, unit = next(u for u in _UNITS if largest < u[0])
    figure, axes = pyplot.subplots(figsize=(10, 4.8), dpi=100)
    try:
        end = max([r.time_unix_s - started_unix for r in readings] + [p.end_s or p.start_s for p in phases] + [1.0])
        names_seen: dict[str, str] = {}
        for phase in phases:
            colour = names_seen.setdefault(phase.name, _PHASE_COLOURS[len(names_seen) % len(_PHASE_COLOURS)])
            stop = phase.end_s if phase.end_s is not None else end
            axes.axvspan(phase.start_s, stop, color=colour, zorder=0)
            axes.text(phase.start_s, 1.0, f" {phase.name}", transform=axes.get_xaxis_transform(), va="top",
                      ha="left", fontsize=8, color="#444444", rotation=0, clip_on=True)
        for source in sorted({r.source for r in readings}):
            mine = [r for r in readings if r.source == source]
            axes.errorbar([r.time_unix_s - started_unix for r in mine], [r.offset_s * scale for r in mine],
                          yerr=[r.error_s * scale for r in mine], fmt="o", markersize=2.5, elinewidth=0.6,
                          label=source, zorder=3)
        axes.axhline(0.0, color="#888888", linewidth=0.8, zorder=1)
        axes.set_xlim(0, end)
        axes.set_xlabel("seconds since the guest started")
        axes.set_ylabel(f"guest clock − host clock ({unit})")
        axes.set_title(title, fontsize=10)
        if readings:
            axes.legend(loc="lower left", fontsize=8)
        axes.grid(True, alpha=0.3)
        figure.tight_layout()
        figure.savefig(path)
    finally:
        pyplot.close(figure)
    return None
