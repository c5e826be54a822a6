"""DIR/demo.png: the guest's offset over time, each phase shaded and named.

When the demo had a phase without time sync (the VM guest), two panels follow
the whole run: that phase's drift (the offset since its first reading, with the
measured slope), and the offset once chronyd runs, zoomed to ±10 ms, where the
correction and any recovery after a pause can be read.

matplotlib is the optional extra `demo` (pip install 'hostclock[demo]'); without it
`write_picture` says how to get the picture and the demo goes on. It is imported
only here, after the demo has stopped.
"""

from __future__ import annotations

from collections.abc import Sequence

from gateway.app.demo.drift import slope_ppm
from gateway.app.demo.phases import Phase
from gateway.app.demo.readings import Reading

__all__ = ["write_picture", "MATPLOTLIB_MISSING", "ZOOM_S"]

MATPLOTLIB_MISSING = ("matplotlib is not installed: pip install 'hostclock[demo]' (or pip install matplotlib) "
                      "for demo.png")
#: the half-height of the panel that shows the synchronised guest
ZOOM_S = 0.010

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

    free = next((p for p in phases if p.name.startswith("no time sync")), None)
    end = max([r.time_unix_s - started_unix for r in readings] + [p.end_s or p.start_s for p in phases] + [1.0])
    if free is None:
        figure, whole = pyplot.subplots(figsize=(10, 4.8), dpi=100)
        drift_axes = synced_axes = None
    else:
        figure = pyplot.figure(figsize=(11, 8), dpi=100)
        grid = figure.add_gridspec(2, 2, height_ratios=(1.1, 1))
        whole = figure.add_subplot(grid[0, :])
        drift_axes, synced_axes = figure.add_subplot(grid[1, 0]), figure.add_subplot(grid[1, 1])
    try:
        colours = _shade_phases(whole, phases, end, labels=True)
        if free is None:
            _plot(whole, readings, started_unix, scale_for=readings)
        else:
            _plot_clipped(whole, readings, started_unix, since_s=free.start_s)
        whole.set_xlim(0, end)
        whole.set_title(title, fontsize=10)
        if drift_axes is not None:
            _drift_panel(drift_axes, readings, free, started_unix, end, colours)
            _synced_panel(synced_axes, readings, phases, free, started_unix, end, colours)
        figure.tight_layout()
        figure.savefig(path)
    finally:
        pyplot.close(figure)
    return None


def _unit(values: Sequence[float]) -> tuple[float, str]:
    largest = max((abs(v) for v in values), default=0.0)
    _, scale, unit = next(u for u in _UNITS if largest < u[0])
    return scale, unit


def _shade_phases(axes, phases: Sequence[Phase], end: float, *, labels: bool,
                  colours: dict[str, str] | None = None) -> dict[str, str]:
    colours = {} if colours is None else colours
    for phase in phases:
        colour = colours.setdefault(phase.name, _PHASE_COLOURS[len(colours) % len(_PHASE_COLOURS)])
        stop = phase.end_s if phase.end_s is not None else end
        axes.axvspan(phase.start_s, stop, color=colour, zorder=0, label=None)
        if labels:
            axes.text(phase.start_s, 0.98, f" {phase.name}", transform=axes.get_xaxis_transform(), va="top",
                      ha="left", fontsize=7.5, color="#444444", rotation=90 if stop - phase.start_s < end / 6 else 0,
                      clip_on=True)
    return colours


def _plot(axes, readings: Sequence[Reading], started_unix: float, *, scale_for: Sequence[Reading],
          shift: float = 0.0, scale: float | None = None, unit: str | None = None) -> None:
    if scale is None:
        scale, unit = _unit([r.offset_s - shift for r in scale_for])
    for source in sorted({r.source for r in readings}):
        mine = [r for r in readings if r.source == source]
        axes.errorbar([r.time_unix_s - started_unix for r in mine], [(r.offset_s - shift) * scale for r in mine],
                      yerr=[r.error_s * scale for r in mine], fmt="o", markersize=2.5, elinewidth=0.6,
                      label=source, zorder=3)
    axes.axhline(0.0, color="#888888", linewidth=0.8, zorder=1)
    axes.set_xlabel("seconds since the guest started")
    axes.set_ylabel(f"guest − host ({unit})")
    if readings:
        axes.legend(loc="best", fontsize=8)
    axes.grid(True, alpha=0.3)


def _plot_clipped(axes, readings: Sequence[Reading], started_unix: float, *, since_s: float) -> None:
    """The whole run on the scale of most readings from `since_s` on (the drift and the correction:
    95 % of them); the others (the boot seconds off, the jump after a pause) are marked at the edge,
    each run of them with its largest value."""
    scaled = [r for r in readings if r.time_unix_s - started_unix >= since_s] or list(readings)
    sizes = sorted(abs(r.offset_s) for r in scaled)
    extent = max(sizes[min(len(sizes) - 1, int(len(sizes) * 0.95))] if sizes else 0.0, 1e-3)
    low, high = -extent * 1.15, extent * 1.15
    scale, unit = _unit([extent])
    inside = [r for r in readings if low <= r.offset_s <= high]
    _plot(axes, inside, started_unix, scale_for=inside, scale=scale, unit=unit)
    runs: list[list[Reading]] = []
    for r in readings:
        if low <= r.offset_s <= high:
            if runs and runs[-1]:
                runs.append([])
            continue
        if not runs:
            runs.append([])
        runs[-1].append(r)
    for run in (run for run in runs if run):
        edge = [low * scale if r.offset_s < low else high * scale for r in run]
        axes.plot([r.time_unix_s - started_unix for r in run], edge, "v" if edge[0] < 0 else "^", color="#c0392b",
                  markersize=5, zorder=4)
        worst = max(run, key=lambda r: abs(r.offset_s))
        axes.annotate(f"{worst.offset_s:+.3f} s (off the scale)", (worst.time_unix_s - started_unix, edge[0]),
                      textcoords="offset points", xytext=(6, 8 if edge[0] < 0 else -14), fontsize=8,
                      color="#c0392b")
    axes.set_ylim(low * scale, high * scale)


def _drift_panel(axes, readings, free: Phase, started_unix: float, end: float, colours) -> None:
    stop = free.end_s if free.end_s is not None else end
    mine = [r for r in readings if free.start_s <= r.time_unix_s - started_unix < stop]
    axes.axvspan(free.start_s, stop, color=colours[free.name], zorder=0)
    if not mine:
        axes.set_title("no time sync: no readings", fontsize=9)
        return
    first = mine[0].offset_s
    _plot(axes, mine, started_unix, scale_for=mine, shift=first, scale=1e3, unit="ms")
    axes.set_ylabel("offset since the phase began (ms)")
    slope = slope_ppm(mine, start_unix=started_unix + free.start_s, end_unix=started_unix + stop)
    measured = f"{slope:+.0f} ppm" if slope is not None else "too few readings"
    axes.set_title(f"no time sync: the drift, {measured} measured from the gateway", fontsize=9)
    axes.set_xlim(free.start_s, stop)


def _synced_panel(axes, readings, phases: Sequence[Phase], free: Phase, started_unix: float, end: float,
                  colours) -> None:
    begin = free.end_s if free.end_s is not None else end
    later = [p for p in phases if p.start_s >= begin]
    _shade_phases(axes, later, end, labels=False, colours=colours)
    mine = [r for r in readings if r.time_unix_s - started_unix >= begin]
    _plot(axes, mine, started_unix, scale_for=mine, scale=1e3, unit="ms")
    axes.set_ylim(-ZOOM_S * 1e3, ZOOM_S * 1e3)
    axes.set_xlim(begin, max(end, begin + 1))
    axes.set_title(f"chronyd from DHCP option 42 (zoomed to ±{ZOOM_S * 1e3:g} ms)", fontsize=9)
