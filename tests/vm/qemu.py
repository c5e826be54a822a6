"""Boot the hostclock test guest (tests/vm/guest_image.py) under QEMU/TCG.

The VM's only NIC is a virtio-net on a QEMU ``-netdev stream`` or
``-netdev dgram`` Unix socket, or a ``-netdev socket`` loopback TCP connection
(no user-mode networking, no host network):

* ``stream_netdev(path)``: QEMU connects to a server listening on PATH; each
  frame goes with a 4-byte big-endian length before it.
* ``dgram_netdev(local, remote)``: QEMU binds LOCAL and sends one frame per
  datagram, without prefix, to REMOTE.
* ``socket_netdev(host, port)``: QEMU's legacy ``-netdev socket`` connects over
  TCP to a loopback HOST:PORT (the frames as with stream); ``inet_stream_netdev``
  is ``-netdev stream`` doing the same.

The console (ttyS0) goes to QEMU's stdout; ``parse_results`` reads the guest's
``HOSTCLOCK-RESULT`` lines.  Every run is bounded by a wall-clock timeout after
which QEMU is killed.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import time

from .guest_image import GuestImage

QEMU = "qemu-system-x86_64"
GUEST_MAC = "52:54:00:12:34:56"
DEFAULT_TIMEOUT = 120.0


class GuestTimeout(RuntimeError):
    """QEMU did not exit within the timeout; .output has the console so far."""

    def __init__(self, timeout: float, output: str):
        self.output = output
        tail = "\n".join(output.splitlines()[-40:])
        super().__init__(f"guest VM still running after {timeout:.0f} s; console tail:\n{tail}")


def qemu_binary() -> str | None:
    return shutil.which(QEMU)


def stream_netdev(path: str | os.PathLike, netdev_id: str = "n0") -> str:
    return f"stream,id={netdev_id},server=off,addr.type=unix,addr.path={os.fspath(path)}"


def socket_netdev(host: str, port: int, netdev_id: str = "n0") -> str:
    """QEMU's legacy ``-netdev socket`` connecting over TCP to HOST:PORT (the same framing as stream)."""
    return f"socket,id={netdev_id},connect={host}:{port}"


def inet_stream_netdev(host: str, port: int, netdev_id: str = "n0") -> str:
    """``-netdev stream`` connecting over TCP to HOST:PORT (u32 big-endian length + frame, as over Unix)."""
    return f"stream,id={netdev_id},server=off,addr.type=inet,addr.host={host},addr.port={port}"


def dgram_netdev(local: str | os.PathLike, remote: str | os.PathLike,
                 netdev_id: str = "n0") -> str:
    return (f"dgram,id={netdev_id},local.type=unix,local.path={os.fspath(local)},"
            f"remote.type=unix,remote.path={os.fspath(remote)}")


def static_append(ip_prefix: str = "192.168.65.3/24", router: str = "192.168.65.1",
                  ntp: str = "192.168.65.1") -> str:
    """Kernel command-line words that make the guest skip DHCP and use these."""
    return f"hostclock.static={ip_prefix},{router},{ntp}"


def qemu_command(image: GuestImage, netdev: str, *, mac: str = GUEST_MAC,
                 memory_mb: int = 256, append: str = "") -> list[str]:
    """The QEMU command line.  NETDEV is a stream_netdev()/dgram_netdev()/socket_netdev() string
    whose id is n0.  APPEND is added to the kernel command line (e.g.
    static_append(...) to skip DHCP)."""
    loopback_tcp = (re.fullmatch(r"socket,id=\w+,connect=127\.[0-9.]+:\d+", netdev)
                    or re.fullmatch(r"stream,id=\w+,server=off,addr\.type=inet,addr\.host=127\.[0-9.]+,addr\.port=\d+",
                                    netdev))
    if not (re.match(r"(stream|dgram),id=\w+,(server=off,)?(addr|local)\.type=unix,", netdev) or loopback_tcp):
        raise ValueError(f"only -netdev stream or dgram on Unix sockets, or socket/stream to loopback TCP, "
                         f"is allowed, not {netdev!r}")
    return [
        qemu_binary() or QEMU,
        "-accel", "tcg",
        "-nodefaults",          # no default NIC (so no user-mode networking), no monitor
        "-no-user-config",
        "-display", "none",
        "-m", str(memory_mb),
        "-smp", "1",
        "-no-reboot",           # a guest reboot or panic (panic=-1) ends QEMU
        "-kernel", str(image.kernel),
        "-initrd", str(image.initrd),
        "-append", f"{image.cmdline} {append}".strip(),
        "-netdev", netdev,
        "-device", f"virtio-net-pci,netdev=n0,mac={mac}",
        "-serial", "stdio",
    ]


def start_guest(image: GuestImage, netdev: str, **kw) -> subprocess.Popen:
    """Start QEMU in the background (console on .stdout, bytes).  The caller
    must stop it (stop_guest) and bound the time it waits."""
    return subprocess.Popen(qemu_command(image, netdev, **kw), stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            start_new_session=True)


def stop_guest(proc: subprocess.Popen, grace: float = 5.0) -> str:
    """Stop QEMU (if still running) and return its console output."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        out, _ = proc.communicate(timeout=grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate(timeout=grace)
    return _text(out)


def _text(out: bytes | None) -> str:
    return (out or b"").decode("utf-8", errors="replace").replace("\r\n", "\n").replace("\r", "\n")


def boot_guest(image: GuestImage, netdev: str, timeout: float = DEFAULT_TIMEOUT, **kw) -> str:
    """Boot the guest, wait for it to power off, return the console output.

    Raises GuestTimeout (QEMU killed) if it is still running after TIMEOUT s.
    """
    t0 = time.monotonic()
    proc = start_guest(image, netdev, **kw)
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate(timeout=10)
        raise GuestTimeout(timeout, _text(out)) from None
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
    text = _text(out)
    return text + f"\nHOSTCLOCK-HOST qemu-exit={proc.returncode} elapsed={time.monotonic() - t0:.1f}\n"


_RESULT = re.compile(r"HOSTCLOCK-RESULT (\w[\w-]*)(.*)")


def parse_results(output: str) -> dict:
    """The guest's HOSTCLOCK-RESULT lines as a dict:

    {"first": float, "step": float, "second": float,   # seconds, when present
     "lease": {"ip": .., "router": .., "ntpsrv": .., ...},
     "errors": ["dhcp-failed", ...], "done": bool}
    """
    res: dict = {"errors": [], "done": False}
    for line in output.splitlines():
        m = _RESULT.search(line)
        if not m:
            continue
        kind, rest = m.group(1), m.group(2).strip()
        if kind in ("first", "step", "second"):
            om = re.match(r"offset=([-+0-9.eE]+)", rest)
            if om:
                res[kind] = float(om.group(1))
        elif kind == "lease":
            res["lease"] = dict(re.findall(r"(\w+)=(\S*)", rest))
        elif kind == "error":
            res["errors"].append(rest)
        elif kind == "done":
            res["done"] = True
    return res
