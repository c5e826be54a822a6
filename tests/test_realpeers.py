"""The real-peer harness (tests/realpeers) proven against real peers.

Everything stays on loopback or inside namespaces/TAPs made here.  The true
offset is always zero (one host clock) unless a fake server shifts it.
"""

import ipaddress
import os
import struct
import subprocess
import sys
import time
from functools import partial

import pytest
import trio

from realpeers import (ChronyServer, ClientError, GuestNamespace, clients, make_tap,
                       read_frame, requires_clients, requires_root, unique_name)
from realpeers import guest_ns  # noqa: F401  (fixture)

# chrony on loopback, the same clock: every offset within the client's own error bound
# (half the round trip), which one clock makes exact however loaded the machine


# A minimal but well-formed SNTP server whose clock is shifted by SHIFT s and which
# announces leap indicator LI.  Exits by itself after 30 s without a request.
FAKE_SNTP = r"""
import socket, struct, sys, time
port, shift, li = int(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3])
def ts(t):
    t += 2208988800
    return struct.pack("!II", int(t), int((t % 1) * 2**32))
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.1", port))
s.settimeout(30)
print("ready", flush=True)
while True:
    data, peer = s.recvfrom(1024)
    rx = time.time() + shift
    if len(data) < 48 or data[0] & 7 != 3:
        continue
    head = struct.pack("!BBbbII4s", li << 6 | data[0] & 0x38 | 4, 2, data[2], -20,
                       0, 66, bytes([192, 0, 2, 1]))
    s.sendto(head + ts(rx - 1) + data[40:48] + ts(rx) + ts(time.time() + shift), peer)
"""


def start_fake_sntp(ns, shift: float, li: int = 0) -> subprocess.Popen:
    proc = ns.popen([sys.executable, "-c", FAKE_SNTP, "123", str(shift), str(li)],
                    stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready"
    return proc


# -- netns.py ---------------------------------------------------------------

@requires_root
def test_namespace_lifecycle_and_cleanup_on_failure():
    with pytest.raises(RuntimeError, match="boom"):
        with GuestNamespace() as ns:
            assert ns.exists()
            assert "UP" in ns.link("lo")["flags"]
            assert ns.run(["ip", "-j", "link", "show", "lo"], timeout=5).returncode == 0
            sleeper = ns.popen(["sleep", "60"])
            raise RuntimeError("boom")
    assert not ns.exists()
    assert ns.name not in subprocess.run(["ip", "netns", "list"], capture_output=True,
                                         text=True, timeout=5).stdout
    assert sleeper.poll() is not None, "popen'd process survived the namespace"


def _arp(frame: bytes):
    """(eth src, arp op, sender MAC, sender IP, target IP) of an ARP frame, else None."""
    if len(frame) < 42 or frame[12:14] != b"\x08\x06":
        return None
    op, sha, spa, _, tpa = struct.unpack_from("!H6s4s6s4s", frame, 20)
    return (frame[6:12], op, sha, str(ipaddress.IPv4Address(spa)),
            str(ipaddress.IPv4Address(tpa)))


@requires_root
@requires_clients("ping", "sysctl")
def test_adopt_tap_configures_guest_and_frames_reach_the_fd():
    tap = unique_name("hctap")
    fd = make_tap(tap)
    try:
        with GuestNamespace() as ns:
            ns.adopt_tap(tap, ip="192.168.65.3/24")
            link = ns.link(tap)
            assert "UP" in link["flags"]
            mac = bytes.fromhex(link["address"].replace(":", ""))
            addrs = ns.addresses(tap)
            assert [(a["family"], a["local"], a["prefixlen"]) for a in addrs] == \
                [("inet", "192.168.65.3", 24)], addrs       # and no inet6 at all
            disabled = ns.run(["sysctl", "-n", f"net.ipv6.conf.{tap}.disable_ipv6"],
                              timeout=5, check=True).stdout.strip()
            assert disabled == "1"
            # The TAP is not in the root namespace any more.
            assert subprocess.run(["ip", "link", "show", "dev", tap], capture_output=True,
                                  timeout=5).returncode != 0

            # Nobody answers on a bare TAP: the ping fails, but its ARP reaches us.
            pinger = ns.popen(["ping", "-n", "-c1", "-W1", "192.168.65.1"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            frames, deadline = [], time.monotonic() + 3
            while time.monotonic() < deadline and len(frames) < 50:
                frame = read_frame(fd, timeout=0.2)
                if frame:
                    frames.append(frame)
                if pinger.poll() is not None and any(map(_arp, frames)):
                    break
            assert pinger.wait(timeout=5) == 1       # no reply
            arp_frames = [f for f in frames if _arp(f)]
            assert arp_frames, f"no ARP among {len(frames)} frames"
            assert arp_frames[0][:6] == b"\xff" * 6                 # broadcast
            assert _arp(arp_frames[0]) == (mac, 1, mac, "192.168.65.3", "192.168.65.1")
            ipv6 = [f for f in frames if f[12:14] == b"\x86\xdd"]
            assert not ipv6, "IPv6 noise although disable_ipv6 was set before link-up"
            assert clients.ping(ns, "192.168.65.1", count=1, timeout=1) == 0

            # Closing the fd removes the device.
            os.close(fd)
            fd = None
            for _ in range(20):
                if tap not in ns.ip("-br", "link"):
                    break
                time.sleep(0.1)
            assert tap not in ns.ip("-br", "link")
    finally:
        if fd is not None:
            os.close(fd)


@requires_root
def test_make_tap_appears_and_vanishes_in_root_namespace():
    tap = unique_name("hctap")
    fd = make_tap(tap)
    try:
        assert os.path.exists(f"/sys/class/net/{tap}")
        assert read_frame(fd, timeout=0.05) is None   # link down: nothing arrives
    finally:
        os.close(fd)
    assert not os.path.exists(f"/sys/class/net/{tap}")


# -- chrony_server.py + clients.py --------------------------------------------

@requires_root
@requires_clients("chronyd", "ntplib")
def test_chronyd_and_ntplib_against_chrony_server_on_root_loopback():
    with ChronyServer() as srv:
        assert srv.port != 123
        c = clients.chronyd_query(None, srv.address, port=srv.port, timeout=10)
        assert c.within_its_error_bound(), c.raw
        assert c.stratum == 1 and c.leap == 0, c.raw
        assert 0 <= c.delay < 0.01, c.raw
        n = clients.ntplib_query(None, srv.address, port=srv.port, timeout=2)
        assert n.within_its_error_bound(), n.raw
        assert n.stratum == 1 and n.leap == 0 and 0 <= n.delay < 0.01, n.raw
    assert srv.proc.returncode is not None
    with pytest.raises(ClientError, match="NTPException"):  # it is gone
        clients.ntplib_query(None, srv.address, port=srv.port, timeout=0.5)


@requires_root
@requires_clients("ntpdig", "chronyd", "ntplib", "ping")
def test_all_clients_against_chrony_server_inside_a_namespace(guest_ns):
    ns = guest_ns
    with ChronyServer(ns) as srv:
        assert srv.port == 123
        results = [clients.ntpdig(ns, "127.0.0.1", timeout=3),
                   clients.chronyd_query(ns, "127.0.0.1", timeout=10),
                   clients.ntplib_query(ns, "127.0.0.1", timeout=2)]
        for r in results:
            assert r.within_its_error_bound(), r.raw
            assert (r.stratum, r.leap) == (1, 0), r.raw
        # The server lives on the namespace's loopback only: its socket is listed there and not
        # here (asking 127.0.0.1:123 here would prove nothing if this machine runs a server)
        owner = f"pid={srv.proc.pid},"
        assert owner in ns.run(["ss", "-Hunlp", "sport = :123"], timeout=10, check=True).stdout
        assert owner not in subprocess.run(["ss", "-Hunlp", "sport = :123"], capture_output=True, text=True,
                                           timeout=10, check=True).stdout
        assert clients.ping(ns, "127.0.0.1", count=3, timeout=5) == 3


@requires_root
@requires_clients("ntpdig", "chronyd", "ntplib")
@pytest.mark.parametrize("shift", [0.25, -0.4])
def test_offset_sign_is_server_minus_local_for_every_client(guest_ns, shift):
    start_fake_sntp(guest_ns, shift)
    for query in (clients.ntpdig, clients.chronyd_query, clients.ntplib_query):
        r = query(guest_ns, "127.0.0.1", timeout=3)
        assert abs(r.offset - shift) < 0.01, (r.client, r.offset, r.raw)
        assert r.stratum == 2, r.raw


@requires_root
@requires_clients("ntpdig", "chronyd", "ntplib")
def test_clients_reject_unsynchronised_server_with_their_output(guest_ns):
    start_fake_sntp(guest_ns, 0.0, li=3)
    with pytest.raises(ClientError, match="leap not in sync"):
        clients.ntpdig(guest_ns, "127.0.0.1", timeout=1)
    with pytest.raises(ClientError, match="Timeout reached") as e:
        clients.chronyd_query(guest_ns, "127.0.0.1", timeout=2)
    assert "measurements.log" in str(e.value)
    r = clients.ntplib_query(guest_ns, "127.0.0.1", timeout=2)  # ntplib checks nothing
    assert r.leap == 3


@requires_root
@requires_clients("chronyd", "ntplib")
def test_clients_report_no_server(guest_ns):
    with pytest.raises(ClientError, match="Timeout reached"):
        clients.chronyd_query(guest_ns, "127.0.0.1", port=124, timeout=1)
    with pytest.raises(ClientError, match="ntplib"):
        clients.ntplib_query(guest_ns, "127.0.0.1", port=124, timeout=0.5)


@requires_root
@requires_clients("ntpdig", "chronyd", "ntplib")
async def test_clients_from_trio_in_threads(guest_ns):
    """Blocking clients run in threads, concurrently, under a trio deadline."""
    results = []
    with ChronyServer(guest_ns), trio.fail_after(30):
        async def run(fn):
            results.append(await trio.to_thread.run_sync(partial(fn, guest_ns, "127.0.0.1",
                                                                 timeout=5)))
        async with trio.open_nursery() as nursery:
            for fn in (clients.ntpdig, clients.chronyd_query, clients.ntplib_query):
                nursery.start_soon(run, fn)
    assert sorted(r.client for r in results) == ["chronyd", "ntpdig", "ntplib"]
    assert all(r.within_its_error_bound() for r in results), [r.raw for r in results]


def test_missing_tools_names_the_package():
    assert clients.missing_tools("hc-no-such-tool") == \
        ["hc-no-such-tool (apt-get install hc-no-such-tool)"]
    assert clients.missing_tools(os.path.basename(sys.executable)) == []
