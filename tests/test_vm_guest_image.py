"""The guest VM (gateway/vm/): its newc archive writer, its console
protocol, and a real boot under QEMU/TCG against a throwaway peer that only
reads frames (no gateway here: it proves boot + virtio_net + udhcpc)."""

from __future__ import annotations

import shutil
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gateway.vm import image as guest_image
from gateway.vm import qemu

try:
    from tests.vm import support
except ImportError:  # pytest put tests/ rather than the repo root on sys.path
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from tests.vm import support


# --------------------------------------------------------------------------
# fast tests
# --------------------------------------------------------------------------


def _sample_archive() -> bytes:
    import io
    raw = io.BytesIO()
    w = guest_image.CpioWriter(raw)
    w.add_dir("bin")
    w.add_dir("etc/deep/er")
    w.add_file("bin/busybox", b"\x7fELF" + b"x" * 13, 0o755)
    w.add_symlink("bin/sh", "/bin/busybox")
    w.add_chardev("dev-console", 5, 1)
    w.add_file("etc/deep/er/odd", b"abc")
    w.add_file("empty", b"")
    w.close()
    return raw.getvalue()


def test_cpio_newc_roundtrip():
    data = _sample_archive()
    assert len(data) % 4 == 0
    entries = {e["name"]: e for e in guest_image.read_newc(data)}
    assert list(entries) == ["bin", "etc", "etc/deep", "etc/deep/er", "bin/busybox", "bin/sh",
                             "dev-console", "etc/deep/er/odd", "empty"]
    assert entries["bin/busybox"]["data"] == b"\x7fELF" + b"x" * 13
    assert entries["bin/busybox"]["mode"] == 0o100755
    assert entries["bin/sh"]["data"] == b"/bin/busybox"
    assert entries["bin/sh"]["mode"] == 0o120777
    assert entries["dev-console"]["mode"] == 0o020600
    assert entries["dev-console"]["rdev"] == (5, 1)
    assert entries["etc/deep/er/odd"]["data"] == b"abc"


def test_cpio_rejects_missing_parent_and_bad_paths():
    import io
    w = guest_image.CpioWriter(io.BytesIO())
    with pytest.raises(ValueError):
        w.add_file("nodir/file", b"")
    with pytest.raises(ValueError):
        w.add_file("../evil", b"")


@pytest.mark.clients  # busybox cpio: a real reader of the archive
@pytest.mark.skipif(shutil.which("busybox") is None, reason="busybox not installed (apt-get install busybox-static)")
def test_cpio_newc_read_by_busybox_cpio(tmp_path):
    """An independent reader (busybox cpio) accepts the archive."""
    archive = tmp_path / "a.cpio"
    archive.write_bytes(_sample_archive())
    listing = subprocess.run(["busybox", "cpio", "-i", "-t", "-F", str(archive)],
                             capture_output=True, text=True, timeout=30)
    assert listing.returncode == 0, listing.stderr
    assert listing.stdout.split() == ["bin", "etc", "etc/deep", "etc/deep/er", "bin/busybox",
                                      "bin/sh", "dev-console", "etc/deep/er/odd", "empty"]
    out = tmp_path / "x"
    out.mkdir()
    subprocess.run(["busybox", "cpio", "-i", "-d", "-F", str(archive)], cwd=out,
                   capture_output=True, timeout=30, check=True)
    assert (out / "etc/deep/er/odd").read_bytes() == b"abc"
    assert (out / "bin/sh").readlink() == Path("/bin/busybox")


def test_parse_results():
    console = (
        "HOSTCLOCK-STAGE init uptime=1.9\r\n"
        "HOSTCLOCK-RESULT lease ip=192.168.65.3 mask=24 router=192.168.65.1 ntpsrv=192.168.65.1"
        " source=dhcp\n"
        "guest-chronyd-Q: 2026-11-21T22:13:36Z System clock wrong by 0.162938 seconds (ignored)\n"
        "HOSTCLOCK-RESULT first offset=0.162938\n"
        "HOSTCLOCK-RESULT step offset=0.162786\n"
        "HOSTCLOCK-RESULT second offset=-1.903e-03\n"
        "HOSTCLOCK-RESULT done\n"
    )
    res = qemu.parse_results(console)
    assert res["first"] == pytest.approx(0.162938)
    assert res["step"] == pytest.approx(0.162786)
    assert res["second"] == pytest.approx(-0.001903)
    assert res["lease"]["ntpsrv"] == "192.168.65.1" and res["lease"]["source"] == "dhcp"
    assert res["done"] and res["errors"] == []
    err = qemu.parse_results("HOSTCLOCK-RESULT error dhcp-failed\n")
    assert err["errors"] == ["dhcp-failed"] and not err["done"] and "first" not in err


def test_qemu_command_has_only_the_socket_nic(tmp_path):
    image = guest_image.GuestImage(tmp_path / "k", tmp_path / "i", "console=ttyS0", "key", {})
    cmd = qemu.qemu_command(image, qemu.stream_netdev("/tmp/x.sock"))
    assert "-nodefaults" in cmd and cmd[cmd.index("-accel") + 1] == "tcg"
    assert cmd[cmd.index("-netdev") + 1] == (
        "stream,id=n0,server=off,addr.type=unix,addr.path=/tmp/x.sock")
    assert cmd.count("-netdev") == 1 and "-nic" not in cmd and "-net" not in cmd
    dgram = qemu.qemu_command(image, qemu.dgram_netdev("/tmp/a", "/tmp/b"))
    assert dgram[dgram.index("-netdev") + 1] == (
        "dgram,id=n0,local.type=unix,local.path=/tmp/a,remote.type=unix,remote.path=/tmp/b")
    tcp = qemu.qemu_command(image, qemu.socket_netdev("127.0.0.1", 5555))
    assert tcp[tcp.index("-netdev") + 1] == "socket,id=n0,connect=127.0.0.1:5555"
    inet = qemu.qemu_command(image, qemu.inet_stream_netdev("127.0.0.1", 5555))
    assert inet[inet.index("-netdev") + 1] == "stream,id=n0,server=off,addr.type=inet,addr.host=127.0.0.1,addr.port=5555"
    for other in ("user,id=n0", "socket,id=n0,connect=192.0.2.7:5555", "socket,id=n0,listen=:5555",
                  "stream,id=n0,server=off,addr.type=inet,addr.host=192.0.2.7,addr.port=5555"):
        with pytest.raises(ValueError):
            qemu.qemu_command(image, other)
    static = qemu.qemu_command(image, qemu.stream_netdev("/tmp/x"), append=qemu.static_append())
    assert static[static.index("-append") + 1] == (
        "console=ttyS0 hostclock.static=192.168.65.3/24,192.168.65.1,192.168.65.1")


def test_guest_scripts_step_only_marked_lines():
    """Every line of the guest scripts that can step a clock is marked # clock-safe
    (it runs inside the VM)."""
    for script in (guest_image.GUEST_DIR / "init", guest_image.GUEST_DIR / "udhcpc.sh"):
        for line in script.read_text().splitlines():
            code = line.split("#", 1)[0]
            risky = ("chrony -q" in code or "date -s" in code or "adjtimex" in code
                     or ("ntpd " in code and " -w" not in code)
                     or "hwclock -s" in code  # clock-safe: the detector itself
                     or ("chronyd " in code and "chronyd -Q" not in code))
            if risky:
                assert "# clock-safe" in line, f"{script.name}: {line}"


# --------------------------------------------------------------------------
# a real boot
# --------------------------------------------------------------------------


def _recv_exact(conn: socket.socket, n: int, deadline: float) -> bytes:
    buf = b""
    while len(buf) < n:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("no frame from the guest in time")
        conn.settimeout(remaining)
        chunk = conn.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("QEMU closed the stream")
        buf += chunk
    return buf


@pytest.mark.qemu
@pytest.mark.slow
def test_guest_boots_and_sends_dhcp_discover_asking_for_ntp_server():
    """Boot the guest with -netdev stream to a socket we listen on; read frames
    (4-byte big-endian length + frame) until its DHCP DISCOVER, which must ask
    for option 42 (NTP servers)."""
    support.require_qemu()
    image = support.require_image()
    from scapy.layers.dhcp import BOOTP, DHCP
    from scapy.layers.inet import IP, UDP
    from scapy.layers.l2 import Ether

    tmp = support.short_tmpdir()
    path = tmp / "peer.sock"
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(str(path))
    srv.listen(1)
    srv.settimeout(30)
    t0 = time.monotonic()
    proc = qemu.start_guest(image, qemu.stream_netdev(path))
    seen, discover, t_discover = [], None, None
    try:
        conn, _ = srv.accept()  # QEMU connects when it starts
        deadline = t0 + 90
        with conn:
            while discover is None:
                (length,) = struct.unpack("!I", _recv_exact(conn, 4, deadline))
                assert 14 <= length <= 4096 + 65536
                pkt = Ether(_recv_exact(conn, length, deadline))
                seen.append(pkt.summary())
                if DHCP in pkt and ("message-type", 1) in pkt[DHCP].options:
                    discover, t_discover = pkt, time.monotonic() - t0
    finally:
        console = qemu.stop_guest(proc)
        srv.close()
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"\nfirst DHCP DISCOVER {t_discover:.1f} s after QEMU start "
          f"(frame {len(seen)} from the guest)\n{console}")
    assert discover.src == qemu.GUEST_MAC
    assert discover.dst == "ff:ff:ff:ff:ff:ff"
    assert discover[IP].dst == "255.255.255.255"
    assert (discover[UDP].sport, discover[UDP].dport) == (68, 67)
    assert discover[BOOTP].chaddr[:6] == bytes.fromhex(qemu.GUEST_MAC.replace(":", ""))
    options = dict(o for o in discover[DHCP].options if isinstance(o, tuple))
    assert 42 in options["param_req_list"], options
    assert "HOSTCLOCK-STAGE dhcp" in console
