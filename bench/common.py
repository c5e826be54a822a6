"""Shared bench plumbing: the Figure record, frame builders, child processes, the real-peer harness.

Benchmarks are not tests: nothing here asserts a speed. Every figure is measured
next to its anchor in the same run, and reported as a ratio where it has one.
"""

from __future__ import annotations

import os
import select
import signal
import socket
import struct
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
TESTS = REPO / "tests"
PYTHON = sys.executable

GATEWAY_MAC = bytes.fromhex("f616 36bc f9c6".replace(" ", ""))
GATEWAY_IP = bytes([192, 168, 65, 1])
GUEST_MAC = bytes.fromhex("525400123456")
GUEST_IP = bytes([192, 168, 65, 3])
NTP_UNIX_OFFSET = 2_208_988_800


@dataclass
class Figure:
    """One measured figure, with its anchor measured in the same run."""

    bench: str            # the bench module that measured it
    name: str             # what was measured
    value: float
    unit: str
    anchor: str | None = None         # what it was measured against
    anchor_value: float | None = None
    ratio: float | None = None        # value / anchor_value (or as `ratio_note` says)
    ratio_note: str = ""
    target: str = ""
    holds: bool | None = None         # whether the target holds in this run (None: no target)
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def realpeers():
    """The real-peer harness from tests/realpeers (netns + TAP, clients, ChronyServer).

    Puts .peers/bin (where tests/run unpacks chronyd when it is not installed) on PATH too."""
    peers = str(REPO / ".peers" / "bin")
    if os.path.isdir(peers) and peers not in os.environ.get("PATH", "").split(os.pathsep):
        os.environ["PATH"] = peers + os.pathsep + os.environ.get("PATH", "")
    if str(TESTS) not in sys.path:
        sys.path.insert(0, str(TESTS))
    import realpeers as module
    return module


def child_env() -> dict[str, str]:
    return dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))


# -- frames ----------------------------------------------------------------------------------

def _checksum(data: bytes) -> int:
    if len(data) & 1:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def ntp_request(transmit: int = 0x1234_5678_9ABC_DEF0, version: int = 4) -> bytes:
    """A 48-byte SNTP client request (mode 3), with `transmit` as its transmit timestamp."""
    return bytes([(version << 3) | 3, 0, 6, 0xEC]) + bytes(36) + transmit.to_bytes(8, "big")


def udp_frame(payload: bytes, sport: int, *, src_ip: bytes = GUEST_IP, dst_ip: bytes = GATEWAY_IP,
              dport: int = 123, src_mac: bytes = GUEST_MAC, dst_mac: bytes = GATEWAY_MAC) -> bytes:
    """An Ethernet/IPv4/UDP frame with correct checksums, built by hand (no scapy on this path)."""
    udp_len = 8 + len(payload)
    pseudo = src_ip + dst_ip + struct.pack("!BBH", 0, 17, udp_len)
    header = struct.pack("!HHHH", sport, dport, udp_len, 0)
    csum = _checksum(pseudo + header + payload) or 0xFFFF
    udp = struct.pack("!HHHH", sport, dport, udp_len, csum) + payload
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + udp_len, 0, 0x4000, 64, 17, 0, src_ip, dst_ip)
    ip = ip[:10] + struct.pack("!H", _checksum(ip)) + ip[12:]
    return dst_mac + src_mac + b"\x08\x00" + ip + udp


def arp_request(target_ip: bytes = GATEWAY_IP, sender_ip: bytes = GUEST_IP, sender_mac: bytes = GUEST_MAC) -> bytes:
    arp = struct.pack("!HHBBH6s4s6s4s", 1, 0x0800, 6, 4, 1, sender_mac, sender_ip, bytes(6), target_ip)
    return (b"\xff" * 6 + sender_mac + b"\x08\x06" + arp).ljust(60, b"\0")


# -- child processes ---------------------------------------------------------------------------

class Child:
    """A child process started with a ready line on stdout; stopped with SIGINT, then killed."""

    def __init__(self, argv: list[str], *, ready_timeout: float = 15.0, ready_marker: str = "",
                 env: dict[str, str] | None = None, cwd: Path = REPO) -> None:
        self.argv = argv
        self.ready_timeout = ready_timeout
        self.ready_marker = ready_marker
        self.env = env or child_env()
        self.cwd = cwd
        self.ready_line = ""
        self.stderr = ""
        self.proc: subprocess.Popen | None = None

    def __enter__(self) -> "Child":
        self.proc = subprocess.Popen(self.argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                     env=self.env, cwd=self.cwd)
        deadline = time.monotonic() + self.ready_timeout
        while time.monotonic() < deadline:
            ready, _, _ = select.select([self.proc.stdout], [], [], max(0.0, deadline - time.monotonic()))
            if not ready:
                break
            line = self.proc.stdout.readline()
            if not line:
                break
            if self.ready_marker in line:
                self.ready_line = line.strip()
                return self
        self.stop()
        raise RuntimeError(f"{' '.join(self.argv)} did not become ready (exit {self.proc.returncode}): "
                           f"{self.stderr.strip()[-2000:]}")

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def stop(self, timeout: float = 10.0) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        try:
            _, self.stderr = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            _, self.stderr = self.proc.communicate(timeout=timeout)
        return self.proc.returncode

    def __exit__(self, *exc) -> None:
        self.stop()


def hostclock_argv(*args: str) -> list[str]:
    return [PYTHON, "-m", "gateway", *args]


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def process_tree(pid: int) -> list[int]:
    """`pid` and its descendants (the responder process), whichever of a process's threads started
    them (trio starts processes from a worker thread: its `children` list holds them)."""
    pids = [pid]
    i = 0
    while i < len(pids):
        try:
            for task in os.listdir(f"/proc/{pids[i]}/task"):
                with open(f"/proc/{pids[i]}/task/{task}/children") as f:
                    pids.extend(int(p) for p in f.read().split() if int(p) not in pids)
        except OSError:
            pass
        i += 1
    return pids


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def pss_kib(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return rss_kib(pid)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of `pid` (all its threads), in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


def context_switches(pid: int) -> int:
    """Voluntary + involuntary context switches of all the threads of `pid`."""
    total = 0
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return 0
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/status") as f:
                for line in f:
                    if line.startswith(("voluntary_ctxt_switches:", "nonvoluntary_ctxt_switches:")):
                        total += int(line.split()[1])
        except OSError:
            pass
    return total


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile of `values` (p in 0..100)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1))))
    return ordered[k]
