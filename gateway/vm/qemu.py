"""Boot the hostclock guest (gateway/vm/image.py) under QEMU (TCG; KVM if asked).

The VM's only NIC is a virtio-net on a QEMU ``-netdev stream`` or
``-netdev dgram`` Unix socket (no user-mode networking, no host network):

* ``stream_netdev(path)``: QEMU connects to a server listening on PATH; each
  frame goes with a 4-byte big-endian length before it.
* ``dgram_netdev(local, remote)``: QEMU binds LOCAL and sends one frame per
  datagram, without prefix, to REMOTE.

Two ways to run it:

* ``boot_guest(image, netdev, timeout=...)``: boot, wait for the guest to power
  off, return the console text (``parse_results`` reads its
  ``HOSTCLOCK-RESULT`` lines).
* ``Guest.start(image, netdev, append=...)``: a running guest.  Its console
  lines arrive stamped with the host's clock (``guest.lines()``,
  ``guest.wait_for(pattern)``); ``guest.monitor`` is a QMP handle
  (``stop()``/``cont()``: a stopped TCG guest's clock stands still, as a VM's
  does while its host sleeps); ``guest.close()`` (or the ``with`` block's end)
  stops QEMU and leaves no process.

Every wait is bounded; QEMU is killed at the end whatever happened.
"""

from __future__ import annotations

import dataclasses
import json
import os
import queue
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from .image import GuestImage

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


def host_accel() -> str:
    """The accelerator to use: $HOSTCLOCK_VM_ACCEL ("kvm" or "tcg"), else "tcg".

    TCG is the default even where /dev/kvm exists: a /dev/kvm can be one that
    does not boot a stock kernel (a nested PVM one, as on the machine this was
    measured on, booted nothing in 240 s), and the drift experiment's host-sleep
    scenario relies on TCG's clock standing still while QEMU is stopped."""
    accel = os.environ.get("HOSTCLOCK_VM_ACCEL", "tcg")
    if accel not in ("tcg", "kvm"):
        raise ValueError(f"HOSTCLOCK_VM_ACCEL must be tcg or kvm, not {accel!r}")
    return accel


def qemu_command(image: GuestImage, netdev: str, *, mac: str = GUEST_MAC,
                 memory_mb: int = 256, append: str = "", accel: str = "tcg",
                 qmp_path: str | os.PathLike | None = None) -> list[str]:
    """The QEMU command line.  NETDEV is a stream_netdev()/dgram_netdev()/socket_netdev() string
    whose id is n0.  APPEND is added to the kernel command line (e.g.
    static_append(...) to skip DHCP, or a scenario's words).  QMP_PATH: a Unix
    socket QEMU listens on for its QMP monitor (none by default)."""
    loopback_tcp = (re.fullmatch(r"socket,id=\w+,connect=127\.[0-9.]+:\d+", netdev)
                    or re.fullmatch(r"stream,id=\w+,server=off,addr\.type=inet,addr\.host=127\.[0-9.]+,addr\.port=\d+",
                                    netdev))
    if not (re.match(r"(stream|dgram),id=\w+,(server=off,)?(addr|local)\.type=unix,", netdev) or loopback_tcp):
        raise ValueError(f"only -netdev stream or dgram on Unix sockets, or socket/stream to loopback TCP, "
                         f"is allowed, not {netdev!r}")
    if accel not in ("tcg", "kvm"):
        raise ValueError(f"accel must be tcg or kvm, not {accel!r}")
    monitor = ["-qmp", f"unix:{os.fspath(qmp_path)},server=on,wait=off"] if qmp_path else []
    return [
        qemu_binary() or QEMU,
        "-accel", accel,
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
        *monitor,
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


# --------------------------------------------------------------------------
# a running guest: console lines, QMP monitor, teardown
# --------------------------------------------------------------------------


class GuestError(RuntimeError):
    """The guest or its QEMU did not do what was asked in time."""


@dataclasses.dataclass(frozen=True)
class ConsoleLine:
    """A line of the guest's console; T is the host's clock (time.time()) when it arrived."""

    t: float
    text: str


class Monitor:
    """QEMU's QMP monitor on a Unix socket: ``stop()``, ``cont()``, ``status()``."""

    def __init__(self, path: str | os.PathLike, *, timeout: float = 10.0):
        self.path = os.fspath(path)
        self.timeout = timeout
        self._sock: socket.socket | None = None
        self._buf = b""
        self.events: list[dict] = []

    def connect(self, deadline: float) -> None:
        while True:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                sock.settimeout(self.timeout)
                sock.connect(self.path)
                break
            except OSError:
                sock.close()
                if time.monotonic() > deadline:
                    raise GuestError(f"QMP socket {self.path} did not accept within the timeout")
                time.sleep(0.05)
        self._sock = sock
        greeting = self._read()
        if "QMP" not in greeting:
            raise GuestError(f"not a QMP greeting: {greeting}")
        self.command("qmp_capabilities")

    def _read(self) -> dict:
        assert self._sock is not None
        while b"\n" not in self._buf:
            chunk = self._sock.recv(65536)
            if not chunk:
                raise GuestError("QMP connection closed")
            self._buf += chunk
        line, self._buf = self._buf.split(b"\n", 1)
        return json.loads(line)

    def command(self, name: str, **arguments) -> dict:
        if self._sock is None:
            raise GuestError("QMP monitor not connected")
        msg = {"execute": name, **({"arguments": arguments} if arguments else {})}
        self._sock.sendall(json.dumps(msg).encode() + b"\n")
        for _ in range(1000):
            reply = self._read()
            if "event" in reply:
                self.events.append(reply)
                continue
            if "error" in reply:
                raise GuestError(f"QMP {name}: {reply['error']}")
            return reply.get("return", {})
        raise GuestError(f"QMP {name}: no answer among 1000 events")

    def stop(self) -> None:
        """Pause the VM (its CPUs and, under TCG, its clocks)."""
        self.command("stop")

    def cont(self) -> None:
        """Resume a paused VM."""
        self.command("cont")

    def status(self) -> str:
        """"running", "paused", ..."""
        return self.command("query-status").get("status", "")

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


class Guest:
    """A guest VM running under QEMU.  Use ``Guest.start(...)`` as a context manager."""

    def __init__(self, proc: subprocess.Popen, workdir: Path, monitor: Monitor | None):
        self.proc = proc
        self.monitor = monitor
        self._workdir = workdir
        self._lines: list[ConsoleLine] = []
        self._queue: queue.Queue[ConsoleLine | None] = queue.Queue()
        self._reader = threading.Thread(target=self._pump, name="guest-console", daemon=True)
        self._reader.start()

    @classmethod
    def start(cls, image: GuestImage, netdev: str, *, append: str = "", mac: str = GUEST_MAC,
              memory_mb: int = 256, accel: str = "tcg", monitor: bool = True,
              connect_timeout: float = 20.0) -> "Guest":
        """Start QEMU with IMAGE, its NIC on NETDEV, APPEND on the kernel command
        line, and (MONITOR) a QMP socket in a private temporary directory."""
        workdir = Path(tempfile.mkdtemp(prefix="hcq-", dir="/tmp"))
        qmp = workdir / "qmp.sock" if monitor else None
        try:
            proc = subprocess.Popen(
                qemu_command(image, netdev, mac=mac, memory_mb=memory_mb, append=append,
                             accel=accel, qmp_path=qmp),
                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                start_new_session=True)
        except BaseException:
            shutil.rmtree(workdir, ignore_errors=True)
            raise
        guest = cls(proc, workdir, Monitor(qmp) if qmp else None)
        try:
            if guest.monitor is not None:
                guest.monitor.connect(time.monotonic() + connect_timeout)
        except BaseException:
            guest.close()
            raise
        return guest

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            text = raw.decode("utf-8", errors="replace").rstrip("\r\n").replace("\r", "")
            line = ConsoleLine(time.time(), text)
            self._lines.append(line)
            self._queue.put(line)
        self._queue.put(None)

    def __enter__(self) -> "Guest":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def running(self) -> bool:
        return self.proc.poll() is None

    def lines(self, timeout: float) -> Iterator[ConsoleLine]:
        """Console lines as they arrive, for at most TIMEOUT s (or until QEMU exits)."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            try:
                line = self._queue.get(timeout=min(remaining, 0.5))
            except queue.Empty:
                continue
            if line is None:
                self._queue.put(None)  # later calls see the end too
                return
            yield line

    def wait_for(self, pattern: str, timeout: float) -> ConsoleLine:
        """The next console line matching the regular expression PATTERN."""
        rx = re.compile(pattern)
        for line in self.lines(timeout):
            if rx.search(line.text):
                return line
        state = "QEMU exited" if not self.running else f"not within {timeout:.0f} s"
        raise GuestError(f"no console line matching {pattern!r} ({state}); console tail:\n"
                         + "\n".join(l.text for l in self._lines[-30:]))

    def console(self) -> list[ConsoleLine]:
        """Every console line so far."""
        return list(self._lines)

    def console_text(self) -> str:
        return "".join(f"{line.text}\n" for line in self._lines)

    def stop(self) -> None:
        self._require_monitor().stop()

    def cont(self) -> None:
        self._require_monitor().cont()

    def _require_monitor(self) -> Monitor:
        if self.monitor is None:
            raise GuestError("guest started with monitor=False")
        return self.monitor

    def close(self, grace: float = 5.0) -> int | None:
        """Stop QEMU (SIGTERM to its process group, SIGKILL after GRACE s) and
        remove the temporary directory; returns QEMU's exit status."""
        if self.monitor is not None:
            self.monitor.close()
        if self.proc.poll() is None:
            for sig in (signal.SIGTERM, signal.SIGKILL):
                try:
                    os.killpg(self.proc.pid, sig)
                except ProcessLookupError:
                    break
                try:
                    self.proc.wait(timeout=grace)
                    break
                except subprocess.TimeoutExpired:
                    continue
        self.proc.wait(timeout=grace)
        self._reader.join(timeout=grace)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        shutil.rmtree(self._workdir, ignore_errors=True)
        return self.proc.returncode
