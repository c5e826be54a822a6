"""A replay's summary: counts, drops by reason, and the offset and delay each NTP exchange would give.

For every request the gateway answered, the summary shows what the client
would compute from the reply (RFC 5905 §8, on-wire protocol):

    offset = ((T2 - T1) + (T3 - T4)) / 2        delay = (T4 - T1) - (T3 - T2)

* T1, when the client sent the request (client clock). The time the request
  itself claims (for NTP its transmit timestamp, read by the plugin:
  `gateway.core.plugin.Upstream.exchange_times`) if it is plausible: within
  `PLAUSIBLE_T1_WINDOW_NS` (a day) of the request's capture time. ntpdig and
  ntplib send their real time there; chronyd sends a random number (data
  minimisation) and some clients send zero, so otherwise T1 is the request's
  capture time. `t1_source` says which.
* T2, T3: when the server got the request and sent the reply, as the reply
  says (the replay clock's, or the real upstream server's).
* T4, when the client got the reply (client clock), first of: the capture time
  of the gateway's own reply to that request in the input capture ("recorded
  reply": a capture of the guest's link holds it); the capture time of the
  next record after the request ("next frame"); the replayed reply's time on
  the capture's clock ("replayed reply": request time + the responder's 10 µs
  or the upstream round trip). `t4_source` says which.

T1 and T4 are on the capture's clock. With `--clock recorded` and a capture
taken on the host (one clock), the offset is what the client would really
have measured; with `--clock fixed:...` or a real upstream, it also holds the
distance between the capture time and the replay clock.

`outcome()` is the reproducible part (counts and reasons, no paths, no
exchanges), stored beside each corpus capture as its expected outcome;
`summary()` adds the rest, for `--json`; `format_text()` renders it for people.
"""

from __future__ import annotations

from typing import Any

from gateway.edges.pcap_reader import Capture
from gateway.replay.engine import Exchange, ReplayResult

__all__ = ["outcome", "summary", "format_text", "measure_exchange", "PLAUSIBLE_T1_WINDOW_NS"]

#: a request's transmit timestamp this close to its capture time is taken as the client's T1
PLAUSIBLE_T1_WINDOW_NS = 86_400 * 1_000_000_000
_NS_PER_S = 1_000_000_000
_TEXT_EXCHANGES = 20


def _counts(counter: Any) -> dict[str, int]:
    """A counter as a dict, most frequent first, then by reason: the same order every run."""
    return {reason: n for reason, n in sorted(counter.items(), key=lambda kv: (-kv[1], kv[0])) if n}


def outcome(result: ReplayResult, capture: Capture | None = None) -> dict[str, Any]:
    """The counts and reasons of a replay: identical for identical input, whatever the paths."""
    return {
        "frames_read": result.frames_read,
        "frames_from_guest": result.frames_from_guest,
        "skipped": _counts(result.skipped),
        "capture_problems": _counts(capture.problems) if capture is not None else {},
        "frames_answered": result.frames_answered,
        "frames_sent": len(result.output),
        "drops": _counts(result.drops),
        # "ntp": the forwarding services' figures (NTP is the one that forwards); the name is kept
        # so that the corpus's stored outcomes read the same
        "ntp": {"forwarded": result.forwarded, "answered": result.answered,
                "exchanges": len(result.exchanges)},
        "flows": {"opened": result.flows_opened, "evicted": result.flows_evicted,
                  "expired": result.flows_expired},
    }


def measure_exchange(exchange: Exchange) -> dict[str, Any]:
    """T1..T4 (Unix ns), where T1 and T4 came from, and the offset and delay in seconds."""
    times = exchange.times
    t1 = times.t1_ns
    if t1 is not None and abs(t1 - exchange.request_ns) <= PLAUSIBLE_T1_WINDOW_NS:
        t1_source = "client transmit timestamp"
    else:
        t1, t1_source = exchange.request_ns, "request capture time (transmit timestamp is not a time)"
    t2, t3 = times.t2_ns, times.t3_ns
    if exchange.recorded_reply_ns is not None:
        t4, t4_source = exchange.recorded_reply_ns, "recorded reply"
    elif exchange.next_frame_ns is not None:
        t4, t4_source = exchange.next_frame_ns, "next frame"
    else:
        t4, t4_source = exchange.reply_capture_ns, "replayed reply"
    return {
        "request_frame": exchange.request_number,
        "guest": exchange.guest,
        **times.detail,
        "t1_ns": t1, "t1_source": t1_source,
        "t2_ns": t2, "t3_ns": t3,
        "t4_ns": t4, "t4_source": t4_source,
        "offset_s": ((t2 - t1) + (t3 - t4)) / 2 / _NS_PER_S,
        "delay_s": ((t4 - t1) - (t3 - t2)) / _NS_PER_S,
    }


def summary(result: ReplayResult, capture: Capture | None = None, *, output_path: str | None = None) -> dict[str, Any]:
    """Everything about a replay, as one JSON-ready object."""
    return {
        "capture": capture.path if capture is not None else None,
        "format": capture.format if capture is not None else None,
        "clock": result.clock,
        "upstream": result.upstream,
        "output": output_path,
        **outcome(result, capture),
        "exchanges": [measure_exchange(e) for e in result.exchanges],
    }


def format_text(report: dict[str, Any]) -> str:
    """`summary()` for people."""
    lines = [f"replay of {report['capture']} ({report['format']}); clock {report['clock']}; "
             f"NTP answered by {'the embedded responder' if report['upstream'] == 'embedded' else report['upstream']}"]
    skipped = sum(report["skipped"].values())
    lines.append(f"frames read      {report['frames_read']:>7}")
    lines.append(f"  from a guest   {report['frames_from_guest']:>7}  (fed to the gateway)")
    lines.append(f"  skipped        {skipped:>7}")
    lines += [f"    {n:>6} x {reason}" for reason, n in report["skipped"].items()]
    if report["capture_problems"]:
        lines.append("capture file problems (reading stopped there)")
        lines += [f"    {n:>6} x {reason}" for reason, n in report["capture_problems"].items()]
    lines.append(f"answered         {report['frames_answered']:>7}  guest frames "
                 f"({report['frames_sent']} frames sent to the guest"
                 + (f", written to {report['output']})" if report["output"] else ")"))
    lines.append(f"dropped          {sum(report['drops'].values()):>7}")
    lines += [f"    {n:>6} x {reason}" for reason, n in report["drops"].items()]
    ntp, flows = report["ntp"], report["flows"]
    lines.append(f"NTP              forwarded {ntp['forwarded']}, answered {ntp['answered']}; "
                 f"flows opened {flows['opened']}, evicted {flows['evicted']}, expired {flows['expired']}")
    exchanges = report["exchanges"]
    if exchanges:
        lines.append("NTP exchanges: offset = ((T2-T1)+(T3-T4))/2 and delay = (T4-T1)-(T3-T2) as the client "
                     "would compute them (T2, T3 from the reply; T1, T4 sources shown)")
        for e in exchanges[:_TEXT_EXCHANGES]:
            lines.append(f"  frame {e['request_frame']:>5}  {e['guest']:<21} v{e.get('version', '?')}  "
                         f"offset {e['offset_s']:+.9f} s  delay {e['delay_s']:+.9f} s  "
                         f"T1: {e['t1_source']}; T4: {e['t4_source']}")
        if len(exchanges) > _TEXT_EXCHANGES:
            lines.append(f"  ... and {len(exchanges) - _TEXT_EXCHANGES} more (all of them with --json)")
    return "\n".join(lines)
