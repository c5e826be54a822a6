"""A connection storm on `--qemu-stream`: 6,000 connections while an attached guest polls NTP.

    python -m bench.reliability storm [--seconds 20]

A third of the storm sends half a length prefix and then nothing, a third an absurd
length (2^32 - 1), a third nothing at all (slow peers); they are opened as fast as the
listener takes them and held for the run. Measured: the attached guest's NTP (answered
ratio, p99 delay), how often a storm connect() met a full backlog (EAGAIN, retried
every 5 ms) and whether one never got through in 0.5 s (the listener wedged), how the storm was received (closed by the gateway at once = refused
or a protocol error; still open = admitted), the gateway's descriptors and RSS, and
whether a new guest is served once the storm has gone. Holds when the attached guest
had >= 99 % answered with p99 <= 10 ms, every storm connect() got through, RSS <= 40 MB, and a new
guest was served within 2 s after the storm.
"""

from __future__ import annotations

import os
import resource
import socket
import struct
import tempfile
import time
from typing import Any

from bench.common import Child, hostclock_argv, rss_kib
from bench.reliability.guest_client import PollingGuest

STORM = 6000


def _fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def _closed_by_peer(sock: socket.socket) -> bool:
    try:
        return sock.recv(1, socket.MSG_DONTWAIT | socket.MSG_PEEK) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True


def run(seconds: float = 20.0, storm: int = STORM, max_guests: int | None = None) -> dict[str, Any]:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, storm + 512)), hard))
    extra = ["--max-guests", str(max_guests)] if max_guests else []
    with tempfile.TemporaryDirectory(prefix="hc-storm-") as tmp:
        path = f"{tmp}/qemu.sock"
        with Child(hostclock_argv("run", "--qemu-stream", path, "--no-dhcp", *extra), ready_marker="hostclock:") as gw:
            fds_idle = _fds(gw.pid)
            guest = PollingGuest(path).start()
            time.sleep(1.0)
            before = guest.summary()
            conns: list[socket.socket] = []
            eagain = never_connected = other_errors = 0
            started = time.monotonic()
            peak_fds = fds_idle
            storm_deadline = started + 60.0  # every loop bounded in time too
            for i in range(storm):
                if time.monotonic() > storm_deadline:
                    break
                s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                s.setblocking(False)
                for attempt in range(100):  # a full backlog is EAGAIN: count it, wait a moment, retry
                    try:
                        s.connect(path)
                        break
                    except BlockingIOError:
                        eagain += 1
                        time.sleep(0.005)
                    except OSError:
                        other_errors += 1
                        break
                else:
                    never_connected += 1  # 0.5 s of a full backlog: the listener has wedged
                try:
                    if i % 3 == 0:
                        s.send(b"\x00\x00")  # half a length prefix, then nothing
                    elif i % 3 == 1:
                        s.send(b"\xff\xff\xff\xff")  # an absurd length
                except OSError:
                    pass
                conns.append(s)
                if i % 500 == 0:
                    peak_fds = max(peak_fds, _fds(gw.pid))
            storm_seconds = time.monotonic() - started
            time.sleep(max(0.5, seconds - storm_seconds))
            peak_fds = max(peak_fds, _fds(gw.pid))
            rss = rss_kib(gw.pid)
            admitted = sum(1 for s in conns if not _closed_by_peer(s))
            during = guest.stop()
            for s in conns:
                s.close()
            time.sleep(0.5)
            late = PollingGuest(path, sport=41001, interval=0.05)
            t0 = time.monotonic()
            late.start()
            while time.monotonic() - t0 < 5 and not late.delays_ms:
                time.sleep(0.01)
            first_answer_s = round(time.monotonic() - t0, 3) if late.delays_ms else None
            after = late.stop()
            fds_after = _fds(gw.pid)
            status = gw.stop()
            log = [line for line in gw.stderr.splitlines() if "refused" in line or "could not accept" in line]
    holds = (len(conns) == storm and during["answered_ratio"] >= 0.99 and (during["p99_delay_ms"] or 1e9) <= 10 and never_connected == 0
             and rss <= 40 * 1024 and first_answer_s is not None and first_answer_s <= 2 and status == 0)
    return {
        "item": "storm", "storm_connections": storm, "storm_opened": len(conns), "storm_seconds": round(storm_seconds, 2),
        "connect_eagain_retries": eagain, "connect_never_through": never_connected,
        "connect_other_errors": other_errors,
        "storm_still_open_at_end": admitted, "attached_guest_before": before, "attached_guest_during": during,
        "new_guest_after": after, "new_guest_first_answer_s": first_answer_s,
        "gateway_fds": {"idle": fds_idle, "peak": peak_fds, "after": fds_after},
        "gateway_rss_kib": rss, "refusal_log_lines": log[:5], "refusal_log_line_count": len(log),
        "gateway_exit": status, "holds": holds,
    }
