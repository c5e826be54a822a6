"""What both views say about the guest and the gateway, as (label, text) pairs: one wording."""

from __future__ import annotations

from gateway.app.demo.drift import slope_ppm
from gateway.app.demo.formatting import seconds, signed_seconds
from gateway.app.demo.state import DemoState

__all__ = ["clock_rows", "gateway_rows", "headline", "drops_text"]

#: how long a source's latest reading still counts as current
_STALE_S = 5.0


def headline(state: DemoState) -> str:
    elapsed = state.elapsed_s()
    of = f" of {state.duration_s:g} s" if state.duration_s else ""
    phase = state.status or state.phases.current
    return f"{elapsed:5.1f} s{of}" + (f" · {phase}" if phase else "")


def clock_rows(state: DemoState) -> list[tuple[str, str]]:
    """One row per source of readings: the latest offset (guest minus host) ± its half-width."""
    rows = []
    now = state.started_unix + state.elapsed_s()
    for source, reading in sorted(state.latest.items()):
        age = now - reading.time_unix_s
        stale = f"  ({age:.0f} s ago)" if age > _STALE_S else ""
        rows.append((source, f"{signed_seconds(reading.offset_s)} ± {seconds(reading.error_s)}{stale}"))
    if not rows:
        rows.append(("offset", "no reading yet"))
    free = next((p for p in state.phases.all if p.name.startswith("no time sync")), None)
    if free is not None:
        end = None if free.end_s is None else state.started_unix + free.end_s
        slope = slope_ppm(state.readings, start_unix=state.started_unix + free.start_s, end_unix=end)
        if slope is not None:
            rows.append(("drift", f"{slope:+.0f} ppm while unsynchronised (measured from the gateway)"))
    return rows


def drops_text(drops: dict[str, int], limit: int = 4) -> str:
    if not drops:
        return "none"
    ranked = sorted(drops.items(), key=lambda kv: -kv[1])
    text = "; ".join(f"{n} × {reason}" for reason, n in ranked[:limit])
    return text + (f"; … {len(ranked) - limit} more reasons" if len(ranked) > limit else "")


def gateway_rows(state: DemoState) -> list[tuple[str, str]]:
    f = state.figures
    if not f:
        return [("gateway", "starting")]
    rows = [
        ("NTP answered", f"{f.get('ntp_answered', 0)}  (last reply {seconds(f.get('last_reply_delay_s'))} "
                         f"after its request)" if f.get("last_reply_delay_s") is not None else
                         f"{f.get('ntp_answered', 0)}"),
        ("DHCP lease", f.get("dhcp_lease") or "none"),
        ("frames", "{} in / {} out".format(*f.get("frames_on_links", (f.get("frames_received", 0),
                                                                     f.get("frames_sent", 0))))),
        ("drops", drops_text(f.get("drops", {}))),
        ("guests attached", str(f.get("guests_attached", 0))),
    ]
    return rows
