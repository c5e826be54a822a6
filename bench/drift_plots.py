"""PNG plots of the drift experiment (bench/drift.py), if matplotlib is installed
(`pip install -e '.[demo]'`).

The seeds' graphs: the natural drift line, the sntpc sawtooth, chronyd holding,
the recovery after a pause.  Offsets are guest minus host.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path


def available() -> bool:
    return importlib.util.find_spec("matplotlib") is not None


def _pyplot():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def _free_segment(res):
    sc = res.phase.scenario
    if sc.policy == "none":
        return res.clock_points(until=res.event_s("stop"))
    if sc.delay_s and res.event_s("policy") is not None:
        return res.clock_points(until=res.event_s("policy"))
    return []


def make_plots(results, figures, out: Path) -> list[Path]:
    """Write the PNGs into OUT; returns the paths of those that had data."""
    plt = _pyplot()
    written = []
    by_label = {f["phase"]: f for f in figures}

    # 1. the clock running free: offset against time, and the fitted slope
    free = [(r, _free_segment(r)) for r in results]
    free = [(r, pts) for r, pts in free if len(pts) >= 4]
    if free:
        small = [(r, p) for r, p in free if r.phase.scenario.tick != 9800]
        large = [(r, p) for r, p in free if r.phase.scenario.tick == 9800]
        panels = [x for x in (small, large) if x]
        fig, axes = plt.subplots(1, len(panels), figsize=(6.5 * len(panels), 4.2), squeeze=False)
        for ax, group in zip(axes[0], panels):
            scale, unit = (1.0, "s") if group is large else (1e3, "ms")
            for r, pts in group:
                f = by_label[r.phase.label]
                slope = f.get("free", {}).get("slope_ppm")
                line, = ax.plot([t for t, _ in pts], [o * scale for _, o in pts], ".", ms=2,
                                label=f"{r.phase.scenario.name}: {slope:+.0f} ppm" if slope is not None
                                else r.phase.scenario.name)
                gw = [p for p in r.gateway_points() if pts[0][0] <= p[0] <= pts[-1][0]]
                if gw:
                    ax.plot([t for t, _ in gw], [o * scale for _, o in gw], "x", ms=4,
                            color=line.get_color(), label=f"{r.phase.scenario.name}: the gateway's ICMP readings")
            ax.set_xlabel("time (s)")
            ax.set_ylabel(f"guest - host ({unit})")
            ax.grid(alpha=0.3)
            ax.legend(fontsize=8)
        fig.suptitle("No time sync: the guest clock drifts at its tick's rate (chronyd -x observer)")
        written.append(_save(fig, plt, out / "drift_free.png"))

    # 2. sntpc's sawtooth
    sn = [r for r in results if r.phase.scenario.policy == "sntpc"]
    if sn:
        fig, axes = plt.subplots(len(sn), 1, figsize=(9, 2.8 * len(sn)), squeeze=False)
        for ax, r in zip(axes[:, 0], sn):
            pts = r.clock_points()
            scale, unit = (1.0, "s") if r.phase.scenario.tick == 9800 else (1e3, "ms")
            ax.plot([t for t, _ in pts], [o * scale for _, o in pts], ".", ms=2, label="observer")
            gw = [p for p in r.gateway_points() if p[0] >= pts[0][0]]
            if gw:
                ax.plot([t for t, _ in gw], [o * scale for _, o in gw], "x", ms=4, color="C2",
                        label="the gateway's readings")
            steps = r.points("guest-sntpc")
            ax.plot([t for t, _ in steps], [o * scale for _, o in steps], "v", color="C3",
                    label="offset each chronyd -q corrected (one exchange)")  # clock-safe: a legend, in the VM
            teeth = by_label[r.phase.label].get("sntpc", {}).get("teeth_ms", [])
            title = r.phase.scenario.name + (f": teeth {min(teeth):+.1f}..{max(teeth):+.1f} ms"
                                             if teeth else "")
            ax.set_title(title, fontsize=9)
            ax.set_ylabel(f"guest - host ({unit})")
            ax.grid(alpha=0.3)
            ax.legend(fontsize=7, loc="lower left")
        axes[-1, 0].set_xlabel("time (s)")
        fig.suptitle("sntpc's policy (set the clock every 30 s): a sawtooth")
        written.append(_save(fig, plt, out / "drift_sntpc.png"))

    # 3. chronyd holding (RFC 5905 clock filter of the observer's samples)
    ch = [r for r in results if r.phase.scenario.policy in ("chronyd-tuned", "chronyd-default")]
    # the pause phases have their own plot (and the quick run has only one phase)
    ch = [r for r in ch if r.event_s("cont") is None] or ch
    if ch:
        fig, ax = plt.subplots(figsize=(9, 4.5))
        for r in ch:
            start = r.event_s("policy") or 0.0
            pts = r.filtered_points(since=start, until=r.event_s("stop"))
            ax.plot([t - start for t, _ in pts], [o * 1e3 for _, o in pts], "-", lw=0.8,
                    label=r.phase.label)
        ax.axhspan(-1, 1, color="green", alpha=0.08, label="+-1 ms")
        ax.set_ylim(-10, 10)
        ax.set_xlabel("time since the daemon started (s)")
        ax.set_ylabel("guest - host (ms)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, ncol=2)
        ax.set_title("NTP daemons in the guest through hostclock (clock filter: min delay of 8)")
        written.append(_save(fig, plt, out / "drift_chronyd.png"))

    # 4. the recovery after a pause (time since cont, symlog offset)
    pa = [r for r in results if r.event_s("cont") is not None]
    if pa:
        fig, ax = plt.subplots(figsize=(9, 4.5))
        for r in pa:
            cont = r.event_s("cont")
            pts = [p for p in r.points("guest-observer", "guest-observer-rejected")
                   if p[0] >= r.event_s("stop") - 10]
            gw = [p for p in r.gateway_points() if p[0] >= r.event_s("stop") - 10]
            if gw:
                ax.plot([t - cont for t, _ in gw], [o * 1e3 for _, o in gw], "x", ms=4,
                        label=f"{r.phase.label}: the gateway's readings")
            rs = by_label[r.phase.label].get("pause", {}).get("recovered_s")
            ax.plot([t - cont for t, _ in pts], [o * 1e3 for _, o in pts], ".-", ms=2, lw=0.5,
                    label=f"{r.phase.label}: " + (f"within 10 ms after {rs:.1f} s" if rs is not None
                                                  else "not within 10 ms"))
        ax.set_yscale("symlog", linthresh=10)
        ax.axhspan(-10, 10, color="green", alpha=0.08)
        ax.set_xlabel("time since QEMU 'cont' (s)")
        ax.set_ylabel("guest - host (ms, symlog)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
        ax.set_title("After the VM was stopped (a host sleep): back on the host's clock")
        written.append(_save(fig, plt, out / "drift_pause.png"))
    return written


def _save(fig, plt, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
