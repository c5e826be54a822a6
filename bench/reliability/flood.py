"""The garbage flood (§2): a hostile guest floods garbage while a polite one polls NTP every 100 ms.

    python -m bench.reliability flood [--seconds 30]        # over a TAP, then over --qemu-stream

TAP: the flood comes from an AF_PACKET socket on the guest side of the TAP
(`bench.reliability.garbage`), the polite guest is another process in the same
namespace (`bench.reliability.spray --ntp-only`). QEMU stream: one connection floods
while another guest, on a connection of its own, polls (`guest_client.PollingGuest`).
Holds when, on both, the gateway stayed up, its peak RSS (VmHWM) <= 40 MB, and the
polite guest had >= 99 % answered with p99 delay <= 10 ms. The responder's own process
(the default) is reported beside it: its memory does not depend on what the guest sends.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import PYTHON, REPO, Child, child_env, hostclock_argv, process_tree, realpeers
from bench.reliability.guest_client import PollingGuest


def _peak_rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def _responder_peak_rss_kib(gateway_pid: int) -> int:
    """The peak RSS of the gateway's responder process (its one child), 0 if it has none."""
    return sum(_peak_rss_kib(pid) for pid in process_tree(gateway_pid)[1:])


def _stopped_summary(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if "stopped:" in line]
    return lines[-1][:400] if lines else ""


def flood_tap(seconds: float) -> dict[str, Any]:
    rp = realpeers()
    tap = rp.unique_name("hct")
    with Child(hostclock_argv("run", "--tap", tap, "--no-dhcp"), ready_marker="hostclock:") as gw, \
            rp.GuestNamespace() as ns:
        ns.adopt_tap(tap)
        ns.run(["ping", "-c", "1", "-W", "2", "192.168.65.1"], timeout=10)  # the guest's ARP entry, as a booted guest has
        polite = ns.popen([PYTHON, "-m", "bench.reliability.spray", "--ntp-only", "--seconds", str(seconds + 2)],
                          stdout=subprocess.PIPE, text=True, env=child_env(), cwd=REPO)
        time.sleep(1)
        flood = ns.run([PYTHON, "-m", "bench.reliability.garbage", "--tap", tap, "--seconds", str(seconds)],
                       timeout=seconds + 60, env=child_env(), cwd=REPO)
        out, _ = polite.communicate(timeout=seconds + 30)
        peak = _peak_rss_kib(gw.pid)
        responder_peak = _responder_peak_rss_kib(gw.pid)
        alive = gw.proc.poll() is None
        status = gw.stop()
    guest = json.loads(out)
    offered = json.loads(flood.stdout) if flood.returncode == 0 else {"error": flood.stderr[-500:]}
    ratio = guest["ntp_answered"] / guest["ntp_sent"] if guest["ntp_sent"] else 0
    return {"transport": "tap", "offered": offered, "polite_sent": guest["ntp_sent"],
            "polite_answered": guest["ntp_answered"], "polite_answered_ratio": round(ratio, 4),
            "polite_p99_delay_ms": guest["ntp_p99_delay_ms"], "gateway_alive": alive, "gateway_exit": status,
            "gateway_peak_rss_kib": peak, "responder_process_peak_rss_kib": responder_peak,
            "gateway_summary": _stopped_summary(gw.stderr),
            "holds": alive and peak <= 40 * 1024 and ratio >= 0.99 and (guest["ntp_p99_delay_ms"] or 1e9) <= 10}


def flood_stream(seconds: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="hc-flood-") as tmp:
        path = f"{tmp}/qemu.sock"
        with Child(hostclock_argv("run", "--qemu-stream", path, "--no-dhcp"), ready_marker="hostclock:") as gw:
            polite = PollingGuest(path, interval=0.1).start()
            time.sleep(1)
            flood = subprocess.run([PYTHON, "-m", "bench.reliability.garbage", "--qemu-stream", path, "--seconds",
                                    str(seconds)], capture_output=True, text=True, timeout=seconds + 60,
                                   env=child_env(), cwd=REPO)
            time.sleep(1)
            guest = polite.stop()
            peak = _peak_rss_kib(gw.pid)
            responder_peak = _responder_peak_rss_kib(gw.pid)
            alive = gw.proc.poll() is None
            status = gw.stop()
    offered = json.loads(flood.stdout) if flood.returncode == 0 else {"error": flood.stderr[-500:]}
    return {"transport": "qemu-stream", "offered": offered, "polite": guest, "gateway_alive": alive,
            "gateway_exit": status, "gateway_peak_rss_kib": peak, "responder_process_peak_rss_kib": responder_peak,
            "gateway_summary": _stopped_summary(gw.stderr),
            "holds": alive and peak <= 40 * 1024 and guest["answered_ratio"] >= 0.99
            and (guest["p99_delay_ms"] or 1e9) <= 10}


def run(seconds: float = 30.0) -> dict[str, Any]:
    tap = flood_tap(seconds)
    stream = flood_stream(seconds)
    return {"item": "flood", "seconds": seconds, "tap": tap, "qemu_stream": stream,
            "holds": tap["holds"] and stream["holds"]}
