"""A connection storm on a listening transport: 6,000 connections while an attached guest polls NTP.

    python -m bench.reliability storm [--seconds 20]     # --qemu-stream, --qemu-socket, --bess, --vmnet

A third of the storm sends the start of something and then nothing (half a length prefix;
half a vmnet Init; a 1-byte bess packet), a third something absurd (a length of 2^32 - 1;
an Init with the wrong magic; a packet over the frame limit), a third nothing at all (slow
peers); they are opened as fast as the listener takes them and held for the run. Measured:
the attached guest's NTP (answered ratio, p99 delay), how often a storm connect() met a full
backlog (EAGAIN, retried every 5 ms) and whether one never got through in 0.5 s (the
listener wedged), how the storm was received (closed by the gateway at once = refused or a
protocol error; still open = admitted), the gateway's descriptors and RSS, and whether a
new guest is served once the storm has gone. Holds when the attached guest had >= 99 %
answered with p99 <= 10 ms, every storm connect() got through, RSS <= 40 MB, and a new
guest was served within 2 s after the storm, on every transport.
"""

from __future__ import annotations

import os
import resource
import select
import socket
import struct
import tempfile
import time
from typing import Any

from bench.common import Child, free_udp_port, hostclock_argv, rss_kib
from bench.reliability.guest_client import PollingGuest, wire

STORM = 6000
TRANSPORTS = ("qemu-stream", "qemu-socket", "bess", "vmnet")
#: what each third of the storm sends on each transport: the start of something, something absurd
_HALF = {"qemu-stream": b"\x00\x00", "qemu-socket": b"\x00\x00", "vmnet": b"VMN3T" + b"\x16\x00",
         "bess": b"\x00"}
_ABSURD = {"qemu-stream": b"\xff\xff\xff\xff", "qemu-socket": b"\xff\xff\xff\xff", "vmnet": b"XXXXX" + bytes(44),
           "bess": bytes(70_000)}


def _fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def _closed_by_peer(sock: socket.socket) -> bool:
    """Has the gateway closed this connection? (What it sent first, a vmnet Init say, is read past.)"""
    for _ in range(64):
        try:
            if sock.recv(65536, socket.MSG_DONTWAIT) == b"":
                return True
        except BlockingIOError:
            return False
        except OSError:
            return True
    return False


def _tcp_established(sock: socket.socket) -> bool:
    """Wait (at most 3 s: a SYN dropped at a full backlog is sent again after 1 s) for a non-blocking
    TCP connect to complete; False if it did not."""
    poller = select.poll()  # not select(): the storm's descriptors pass 1024
    poller.register(sock, select.POLLOUT)
    return bool(poller.poll(3000)) and sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0


def run(seconds: float = 20.0, storm: int = STORM, max_guests: int | None = None) -> dict[str, Any]:
    """The storm on every listening transport, one after the other."""
    results = {kind: run_on(kind, seconds, storm, max_guests) for kind in TRANSPORTS}
    return {"item": "storm", "transports": results, "holds": all(r["holds"] for r in results.values())}


def run_on(kind: str, seconds: float = 20.0, storm: int = STORM, max_guests: int | None = None) -> dict[str, Any]:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, storm + 512)), hard))
    extra = ["--max-guests", str(max_guests)] if max_guests else []
    with tempfile.TemporaryDirectory(prefix="hc-storm-") as tmp:
        address: Any = ("127.0.0.1", free_udp_port()) if kind == "qemu-socket" else f"{tmp}/{kind}.sock"
        flag_value = f"{address[0]}:{address[1]}" if kind == "qemu-socket" else address
        guest_wire = wire(kind, address)
        with Child(hostclock_argv("run", f"--{kind}", flag_value, "--no-dhcp", *extra),
                   ready_marker="hostclock:") as gw:
            fds_idle = _fds(gw.pid)
            guest = PollingGuest(guest_wire).start()
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
                s = socket.socket(guest_wire.family, guest_wire.type)
                s.setblocking(False)
                for attempt in range(100):  # a full backlog is EAGAIN: count it, wait a moment, retry
                    try:
                        s.connect(address)
                        break
                    except BlockingIOError:
                        if guest_wire.family == socket.AF_INET:  # TCP: in progress; wait for it below
                            break
                        eagain += 1
                        time.sleep(0.005)
                    except OSError:
                        other_errors += 1
                        break
                else:
                    never_connected += 1  # 0.5 s of a full backlog: the listener has wedged
                if guest_wire.family == socket.AF_INET and not _tcp_established(s):
                    never_connected += 1
                try:
                    if i % 3 == 0:
                        s.send(_HALF[kind])  # the start of something, then nothing
                    elif i % 3 == 1:
                        s.send(_ABSURD[kind])  # something absurd
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
            late = PollingGuest(guest_wire, sport=41001, interval=0.05, number=1)
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
        "transport": kind, "storm_connections": storm, "storm_opened": len(conns), "storm_seconds": round(storm_seconds, 2),
        "connect_eagain_retries": eagain, "connect_never_through": never_connected,
        "connect_other_errors": other_errors,
        "storm_still_open_at_end": admitted, "attached_guest_before": before, "attached_guest_during": during,
        "new_guest_after": after, "new_guest_first_answer_s": first_answer_s,
        "gateway_fds": {"idle": fds_idle, "peak": peak_fds, "after": fds_after},
        "gateway_rss_kib": rss, "refusal_log_lines": log[:5], "refusal_log_line_count": len(log),
        "gateway_exit": status, "gateway_log_tail": gw.stderr.splitlines()[-6:], "holds": holds,
    }
