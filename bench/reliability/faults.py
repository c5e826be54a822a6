"""Faults survived (§3): the upstream chronyd killed and restarted; the gateway stopped and continued.

    python -m bench.reliability upstream-restart [--seconds 5]   # outage length
    python -m bench.reliability stop-continue [--seconds 30]     # SIGSTOP ... SIGCONT

upstream-restart: `hostclock run --qemu-stream --upstream` to a real `chronyd -x` on
loopback; a guest polls every 50 ms; chronyd is killed, and after `seconds` a new one
is started on the same port. Holds when the gateway kept running, counted the
unanswered requests, and answered again within 1 s of the new chronyd answering.

stop-continue: the gateway is sent SIGSTOP, then SIGCONT after `seconds` (what a host
sleep does to a process); a guest keeps polling throughout. Holds when the first reply
to a fresh request comes within 1 s of SIGCONT and the flow of the guest survived
(the flows' idle limit is measured on the monotonic clock, 60 s).
"""

from __future__ import annotations

import os
import signal
import tempfile
import time
from typing import Any

from bench.common import Child, hostclock_argv, realpeers
from bench.reliability.guest_client import PollingGuest


def _wait_answered(guest: PollingGuest, after: int, limit: float) -> float | None:
    t0 = time.monotonic()
    while time.monotonic() - t0 < limit:
        if len(guest.delays_ms) > after:
            return time.monotonic() - t0
        time.sleep(0.005)
    return None


def upstream_restart(seconds: float = 5.0) -> dict[str, Any]:
    rp = realpeers()
    with tempfile.TemporaryDirectory(prefix="hc-fault-") as tmp:
        path = f"{tmp}/qemu.sock"
        chrony = rp.ChronyServer()
        chrony.__enter__()
        port = chrony.port
        try:
            with Child(hostclock_argv("run", "--qemu-stream", path, "--no-dhcp", "--upstream", f"127.0.0.1:{port}"),
                       ready_marker="hostclock:") as gw:
                guest = PollingGuest(path, interval=0.05, timeout=0.3).start()
                time.sleep(1.0)
                before = guest.summary()
                chrony.__exit__(None, None, None)
                killed_at = time.monotonic()
                sent_at_kill, answered_at_kill = guest.sent, len(guest.delays_ms)
                time.sleep(seconds)
                chrony = rp.ChronyServer(port=port)
                chrony.__enter__()  # returns once chronyd answers a query of its own
                ready_at = time.monotonic()
                answered_at_restart = len(guest.delays_ms)
                sent_in_outage = guest.sent - sent_at_kill
                answered_in_outage = answered_at_restart - answered_at_kill
                again = _wait_answered(guest, answered_at_restart, 5.0)
                time.sleep(1.0)
                after = guest.stop()
                alive = gw.proc.poll() is None
                status = gw.stop()
        finally:
            chrony.__exit__(None, None, None)
    drops = [line for line in gw.stderr.splitlines() if "stopped:" in line]
    return {"item": "upstream-restart", "outage_seconds": round(ready_at - killed_at, 2), "before": before,
            "sent_in_outage": sent_in_outage, "answered_in_outage": answered_in_outage,
            "answered_again_after_s": round(again, 3) if again is not None else None, "overall": after,
            "gateway_alive": alive, "gateway_exit": status, "gateway_summary": drops[-1][:600] if drops else "",
            "holds": alive and status == 0 and again is not None and again <= 1.0 and "upstream" in (drops[-1] if drops else "")}


def stop_continue(seconds: float = 30.0) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="hc-fault-") as tmp:
        path = f"{tmp}/qemu.sock"
        with Child(hostclock_argv("run", "--qemu-stream", path, "--no-dhcp"), ready_marker="hostclock:") as gw:
            guest = PollingGuest(path, interval=0.1, timeout=0.5).start()
            time.sleep(1.0)
            before = guest.summary()
            os.kill(gw.pid, signal.SIGSTOP)
            time.sleep(seconds)
            answered_at_cont = len(guest.delays_ms)
            os.kill(gw.pid, signal.SIGCONT)
            again = _wait_answered(guest, answered_at_cont, 5.0)
            time.sleep(2.0)
            after = guest.stop()
            alive = gw.proc.poll() is None
            status = gw.stop()
    summary = [line for line in gw.stderr.splitlines() if "stopped:" in line]
    return {"item": "stop-continue", "stopped_seconds": seconds, "before": before,
            "answered_again_after_s": round(again, 3) if again is not None else None, "overall": after,
            "guest_error": after["error"], "gateway_alive": alive, "gateway_exit": status,
            "gateway_summary": summary[-1][:600] if summary else "",
            "holds": alive and status == 0 and again is not None and again <= 1.0 and not after["error"]}
