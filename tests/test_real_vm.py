"""Acceptance: a real Linux guest gets its host's clock through hostclock.

``hostclock run --qemu-stream PATH`` (listens on PATH) or
``hostclock run --qemu-dgram PATH`` (binds PATH, replies to the peer address a
frame came from) is started as a subprocess and prints a ready line on stdout.
The guest (gateway/vm/guest/init) boots under QEMU/TCG with its only NIC on that
socket, takes a DHCP lease whose NTP server (option 42) must be the gateway,
measures its clock with ``chronyd -Q`` (first offset: the RTC's error, up to
about a second), steps the GUEST clock inside the VM (chrony's one-shot mode, -q) and measures again
(second offset: must be within 10 ms).

Nothing here touches the host clock: the only clock stepped is the VM's.
"""

from __future__ import annotations

import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import pytest

from gateway.vm import qemu

try:
    from tests.vm import support
except ImportError:  # pytest put tests/ rather than the repo root on sys.path
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from tests.vm import support

GATEWAY = "192.168.65.1"


def _find_hostclock() -> str | None:
    """The hostclock CLI: on PATH, or beside this Python (a venv run as
    .venv/bin/python -m pytest without being activated)."""
    beside = Path(sys.executable).parent / "hostclock"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    return shutil.which("hostclock")


HOSTCLOCK = _find_hostclock()
READY_TIMEOUT = 20.0
VM_TIMEOUT = 150.0

pytestmark = [
    pytest.mark.qemu,
    pytest.mark.slow,
    pytest.mark.skipif(HOSTCLOCK is None, reason="hostclock CLI not installed"),
]


def require_transport(flag: str) -> None:
    """Skip if this hostclock has no such `run` transport flag (yet)."""
    try:
        helptext = subprocess.run([HOSTCLOCK, "run", "--help"], capture_output=True, text=True,
                                  timeout=60).stdout
    except subprocess.TimeoutExpired:
        pytest.fail("hostclock run --help did not answer within 60 s")
    if flag not in helptext:
        pytest.skip(f"hostclock run has no {flag} transport (yet)")


@contextmanager
def hostclock_run(*args: str, socket_path: Path | None):
    """Run ``hostclock run ARGS`` until the block ends; wait for its ready line
    on stdout and for SOCKET_PATH to exist (None: a TCP port, only the ready line)."""
    stderr = tempfile.TemporaryFile()
    proc = subprocess.Popen([HOSTCLOCK, "run", *args], stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=stderr, text=True,
                            start_new_session=True)
    lines: queue.Queue[str] = queue.Queue()
    stdout_seen: list[str] = []

    def pump():  # keep draining stdout so hostclock never blocks on a full pipe
        for line in proc.stdout:
            stdout_seen.append(line)
            lines.put(line)

    threading.Thread(target=pump, daemon=True).start()

    def log() -> str:
        stderr.seek(0)
        err = stderr.read().decode(errors="replace")
        return f"stdout:\n{''.join(stdout_seen)}\nstderr:\n{err}"

    try:
        deadline = time.monotonic() + READY_TIMEOUT
        ready = False
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                pytest.fail(f"hostclock exited ({proc.returncode}) before it was ready\n{log()}")
            if not ready:
                try:
                    proc.ready_line = lines.get(timeout=0.2)
                    ready = True
                except queue.Empty:
                    continue
            if ready and (socket_path is None or socket_path.exists()):
                break
            time.sleep(0.05)
        else:
            pytest.fail(f"hostclock not ready within {READY_TIMEOUT} s "
                        f"(ready line: {ready}, {socket_path} exists: {socket_path and socket_path.exists()})\n"
                        f"{log()}")
        proc.log = log  # for failure messages
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        stderr.close()


@pytest.fixture
def sockdir():
    d = support.short_tmpdir()
    yield d
    shutil.rmtree(d, ignore_errors=True)


def _check_guest(console: str, gateway_log: str, *, source: str = "dhcp") -> dict:
    res = qemu.parse_results(console)
    where = f"\n--- guest console ---\n{console}\n--- hostclock ---\n{gateway_log}"
    assert not res["errors"], f"guest reported {res['errors']}{where}"
    lease = res.get("lease")
    assert lease, f"no DHCP lease{where}"
    assert lease.get("ntpsrv") == GATEWAY, f"option 42 is not the gateway: {lease}{where}"
    assert lease.get("router") == GATEWAY, f"router is not the gateway: {lease}{where}"
    assert lease.get("source") == source, f"address not from {source}: {lease}{where}"
    assert "first" in res, f"no first offset{where}"
    assert abs(res["first"]) < 2.0, f"first offset {res['first']} s{where}"
    assert "second" in res, f"no second offset{where}"
    assert abs(res["second"]) < 0.010, f"second offset {res['second']} s{where}"
    assert res["done"], f"guest did not finish{where}"
    print(f"\nguest offsets: first {res['first']:+.6f} s, step {res.get('step', 0):+.6f} s, "
          f"second {res['second']:+.6f} s")
    return res


def test_guest_gets_host_clock_over_qemu_stream(sockdir):
    require_transport("--qemu-stream")
    support.require_qemu()
    image = support.require_image()
    path = sockdir / "hostclock.sock"
    clock_log = sockdir / "clocks.csv"
    with hostclock_run("--qemu-stream", str(path), "--watch-guest-clock=1", "--guest-clock-log", str(clock_log),
                       socket_path=path) as gw:
        try:
            console = qemu.boot_guest(image, qemu.stream_netdev(path), timeout=VM_TIMEOUT)
        except qemu.GuestTimeout as e:
            pytest.fail(f"{e}\n--- hostclock ---\n{gw.log()}")
        res = _check_guest(console, gw.log())
        # the gateway read the VM's clock too (its kernel answers ICMP timestamps): guest minus host, so
        # the opposite of chronyd's offset (server minus local), before the guest stepped it or after
        rows = [line.split(",") for line in clock_log.read_text().splitlines()[1:]]
        icmp = [(float(row[3]), float(row[4])) for row in rows if row[5] == "icmp"]
        assert icmp, f"no ICMP reading of the guest's clock\n{clock_log.read_text()}\n{gw.log()}"
        for offset, error in icmp:
            assert min(abs(offset + res["first"]), abs(offset + res["second"])) <= error + 0.005, (icmp, res)
        print(f"gateway's ICMP readings of the guest: {icmp}")


def test_guest_gets_host_clock_over_qemu_dgram(sockdir):
    require_transport("--qemu-dgram")
    support.require_qemu()
    image = support.require_image()
    path = sockdir / "hostclock.sock"   # hostclock binds it
    local = sockdir / "qemu.sock"       # QEMU binds it (and leaves it behind)
    with hostclock_run("--qemu-dgram", str(path), socket_path=path) as gw:
        try:
            console = qemu.boot_guest(image, qemu.dgram_netdev(local, path), timeout=VM_TIMEOUT)
        except qemu.GuestTimeout as e:
            pytest.fail(f"{e}\n--- hostclock ---\n{gw.log()}")
        _check_guest(console, gw.log())


@pytest.mark.parametrize("netdev", [qemu.socket_netdev, qemu.inet_stream_netdev],
                         ids=["netdev-socket", "netdev-stream-inet"])
def test_guest_gets_host_clock_over_qemu_socket_tcp(netdev):
    """QEMU's legacy ``-netdev socket,connect=127.0.0.1:PORT`` (and ``-netdev stream`` with
    ``addr.type=inet``) speak TCP: ``--qemu-socket`` listens on a loopback port (0: the kernel
    picks one, the ready line says which)."""
    require_transport("--qemu-socket")
    support.require_qemu()
    image = support.require_image()
    with hostclock_run("--qemu-socket", "127.0.0.1:0", socket_path=None) as gw:
        listening = re.search(r"qemu-socket 127\.0\.0\.1:(\d+)", gw.ready_line)
        assert listening, gw.ready_line
        try:
            console = qemu.boot_guest(image, netdev("127.0.0.1", int(listening.group(1))), timeout=VM_TIMEOUT)
        except qemu.GuestTimeout as e:
            pytest.fail(f"{e}\n--- hostclock ---\n{gw.log()}")
        _check_guest(console, gw.log())
        assert "guest attached: qemu-socket 127.0.0.1:" in gw.log(), gw.log()


def test_guest_with_static_address_gets_host_clock_over_qemu_stream(sockdir):
    """The NTP path alone (ARP + UDP/123 on the gateway), DHCP skipped: the guest
    takes 192.168.65.3/24 from its kernel command line."""
    require_transport("--qemu-stream")
    support.require_qemu()
    image = support.require_image()
    path = sockdir / "hostclock.sock"
    with hostclock_run("--qemu-stream", str(path), socket_path=path) as gw:
        try:
            console = qemu.boot_guest(image, qemu.stream_netdev(path), timeout=VM_TIMEOUT,
                                      append=qemu.static_append())
        except qemu.GuestTimeout as e:
            pytest.fail(f"{e}\n--- hostclock ---\n{gw.log()}")
        _check_guest(console, gw.log(), source="static")
