"""A gateway sealed in a network namespace of its own, so that anything it sent off the machine is seen.

    gateway namespace                         sink namespace
    lo (responder, flow sockets)
    hcva....  198.51.100.1/30  ---veth---  hcvb....  198.51.100.2/30   <- captured here
    default route via 198.51.100.2
    hostclock run --tap TAP
       | the TAP is moved into
    guest namespace: TAP 192.168.65.3/24, default route via the gateway 192.168.65.1

The gateway namespace has a default route through the veth: a packet for any
address but loopback's would cross it (or at least its ARP for the next hop
would). The sink namespace answers nothing and forwards nothing. IPv6 is
off in all three before any link comes up, so the kernels' own neighbour and
router chatter does not show up in the capture. All addresses are from the
documentation range 198.51.100.0/24 or the guest subnet, and exist only in
these namespaces.

`SealedGateway.sockets()` lists the gateway process's own sockets from
/proc/PID/fd and /proc/PID/net (that is, as seen in its namespace).
"""

from __future__ import annotations

import os
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from bench.common import PYTHON, REPO, child_env

GATEWAY_SIDE = "198.51.100.1"
SINK_SIDE = "198.51.100.2"
GUEST_IP = "192.168.65.3"
GATEWAY_IP = "192.168.65.1"


def _sh(*argv: str, timeout: float = 15.0) -> str:
    cp = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout)
    if cp.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({cp.returncode}): {cp.stderr.strip()}")
    return cp.stdout


def _unique(prefix: str) -> str:
    return prefix + os.urandom(4).hex()  # <= 15 characters: fits an interface name too


@dataclass
class SocketEntry:
    table: str       # tcp, udp, raw, packet, unix, ...
    local: str
    remote: str

    @property
    def on_loopback(self) -> bool:
        """True for an inet socket whose local and remote ends are loopback (or unconnected), and
        for Unix sockets (they never leave the machine); False for anything else (packet sockets too)."""
        if self.table == "unix":
            return True
        if self.table not in ("tcp", "udp", "udplite", "raw"):
            return False
        local_ip = self.local.rsplit(":", 1)[0]
        remote_ip = self.remote.rsplit(":", 1)[0]
        return local_ip.startswith("127.") and (remote_ip.startswith("127.") or remote_ip == "0.0.0.0")


def _hex_ipv4(field: str) -> str:
    address, port = field.split(":")
    octets = bytes.fromhex(address)[::-1]  # /proc/net/{tcp,udp} print the address in host (little-endian) order
    return f"{'.'.join(map(str, octets))}:{int(port, 16)}"


def process_sockets(pid: int) -> list[SocketEntry]:
    """Every socket `pid` holds, classified by the /proc/PID/net table it appears in."""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    found: list[SocketEntry] = []
    for table in ("tcp", "udp", "udplite", "raw", "tcp6", "udp6", "udplite6", "raw6"):
        try:
            lines = Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if fields[9] in inodes:
                inodes.discard(fields[9])
                if table.endswith("6"):
                    found.append(SocketEntry(table, fields[1], fields[2]))  # never on loopback by this test
                else:
                    found.append(SocketEntry(table, _hex_ipv4(fields[1]), _hex_ipv4(fields[2])))
    for table, inode_column in (("unix", 6), ("packet", 8), ("netlink", 9)):
        try:
            lines = Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) > inode_column and fields[inode_column] in inodes:
                inodes.discard(fields[inode_column])
                found.append(SocketEntry(table, fields[-1] if table == "unix" else "", ""))
    found.extend(SocketEntry("unknown", inode, "") for inode in sorted(inodes))
    return found


class SealedGateway:
    """The three namespaces, the veth, a capture on its sink side, and `hostclock run --tap` inside."""

    def __init__(self, *gateway_args: str) -> None:
        self.gateway_args = gateway_args
        self.gw_ns = _unique("hcgw")
        self.sink_ns = _unique("hcsk")
        self.guest_ns = _unique("hcgu")
        self.veth_gw = _unique("hcva")
        self.veth_sink = _unique("hcvb")
        self.tap = _unique("hct")
        self._tmp = tempfile.TemporaryDirectory(prefix="hc-sealed-")
        self.capture_path = f"{self._tmp.name}/veth.pcap"
        self._created: list[str] = []
        self.gateway: subprocess.Popen | None = None
        self.capture: subprocess.Popen | None = None
        self.ready_line = ""
        self.gateway_stderr = ""

    # -- set-up ---------------------------------------------------------------------------

    def __enter__(self) -> "SealedGateway":
        try:
            self._build()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _ns(self, ns: str, *argv: str, timeout: float = 15.0) -> str:
        return _sh("ip", "netns", "exec", ns, *argv, timeout=timeout)

    def _build(self) -> None:
        for ns in (self.gw_ns, self.sink_ns, self.guest_ns):
            _sh("ip", "netns", "add", ns)
            self._created.append(ns)
            if os.path.exists("/proc/sys/net/ipv6"):
                self._ns(ns, "sysctl", "-q", "-w", "net.ipv6.conf.all.disable_ipv6=1",
                         "net.ipv6.conf.default.disable_ipv6=1")
            _sh("ip", "-n", ns, "link", "set", "lo", "up")
        _sh("ip", "-n", self.gw_ns, "link", "add", self.veth_gw, "type", "veth",
            "peer", "name", self.veth_sink, "netns", self.sink_ns)
        _sh("ip", "-n", self.gw_ns, "addr", "add", f"{GATEWAY_SIDE}/30", "dev", self.veth_gw)
        _sh("ip", "-n", self.sink_ns, "addr", "add", f"{SINK_SIDE}/30", "dev", self.veth_sink)
        _sh("ip", "-n", self.sink_ns, "link", "set", self.veth_sink, "up")
        _sh("ip", "-n", self.gw_ns, "link", "set", self.veth_gw, "up")
        _sh("ip", "-n", self.gw_ns, "route", "add", "default", "via", SINK_SIDE)
        self.capture = subprocess.Popen(
            ["ip", "netns", "exec", self.sink_ns, "tcpdump", "-i", self.veth_sink, "-n", "-U", "-w",
             self.capture_path], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        self._wait_for_capture()
        self.gateway = subprocess.Popen(
            # without the TAP's kernel filter, every sprayed frame reaches the gateway's own code,
            # which is what this proves (with it, most would not even be read)
            ["ip", "netns", "exec", self.gw_ns, PYTHON, "-m", "gateway", "run", "--tap", self.tap,
             "--no-kernel-filter", *self.gateway_args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env=child_env(), cwd=REPO)
        self.ready_line = self.gateway.stdout.readline().strip()  # bounded: the gateway exits on failure
        if not self.ready_line.startswith("hostclock: gateway"):
            raise RuntimeError(f"the gateway did not start: {self.ready_line} {self._stop_gateway()}")
        # the TAP was made in the gateway's namespace; the guest takes it, as a VM would
        _sh("ip", "-n", self.gw_ns, "link", "set", self.tap, "netns", self.guest_ns)
        _sh("ip", "-n", self.guest_ns, "addr", "add", f"{GUEST_IP}/24", "dev", self.tap)
        _sh("ip", "-n", self.guest_ns, "link", "set", self.tap, "up")
        _sh("ip", "-n", self.guest_ns, "route", "add", "default", "via", GATEWAY_IP)

    def _wait_for_capture(self) -> None:
        """tcpdump says "listening on" once its capture is open; nothing before that would be seen."""
        deadline = time.monotonic() + 10
        line = ""
        while time.monotonic() < deadline and self.capture.poll() is None:
            line = self.capture.stderr.readline()
            if "listening on" in line:
                return
        raise RuntimeError(f"tcpdump did not start on {self.veth_sink}: {line.strip()}")

    # -- while running --------------------------------------------------------------------

    def in_guest(self, *argv: str) -> list[str]:
        return ["ip", "netns", "exec", self.guest_ns, *argv]

    def sockets(self) -> list[SocketEntry]:
        return process_sockets(self.gateway.pid)

    def ss(self) -> str:
        """`ss -tuwxanp` in the gateway's namespace, for the record."""
        return self._ns(self.gw_ns, "ss", "-tuwanp")

    def rss_kib(self) -> int:
        for line in Path(f"/proc/{self.gateway.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        return 0

    def captured(self) -> list[str]:
        """Stop the capture; every packet that crossed the veth, one tcpdump line each."""
        if self.capture is not None and self.capture.poll() is None:
            time.sleep(0.5)  # what is still in flight
            self.capture.send_signal(signal.SIGINT)
            self.capture.communicate(timeout=10)
        out = subprocess.run(["tcpdump", "-r", self.capture_path, "-n"], capture_output=True, text=True,
                             timeout=30)
        return [line for line in out.stdout.splitlines() if line.strip()]

    def stop_gateway(self) -> tuple[int, str]:
        """SIGINT, as a user stops it: (exit status, stderr)."""
        stderr = self._stop_gateway()
        return self.gateway.returncode, stderr

    def _stop_gateway(self) -> str:
        if self.gateway is None:
            return ""
        if self.gateway.poll() is None:
            self.gateway.send_signal(signal.SIGINT)
        try:
            _, self.gateway_stderr = self.gateway.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            self.gateway.kill()
            _, self.gateway_stderr = self.gateway.communicate(timeout=10)
        return self.gateway_stderr

    def close(self) -> None:
        self._stop_gateway()
        if self.capture is not None and self.capture.poll() is None:
            self.capture.kill()
            self.capture.communicate(timeout=10)
        for ns in reversed(self._created):
            subprocess.run(["ip", "netns", "delete", ns], capture_output=True, timeout=15)
        self._created.clear()
        self._tmp.cleanup()
