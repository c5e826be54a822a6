"""A real Linux guest on hostclock's ``--bess`` socket: Debian's user-mode-linux.

UML's vector network driver speaks gvisor-tap-vsock's bess framing itself
(``vec0:transport=bess,dst=PATH``: a Unix SOCK_SEQPACKET connection to PATH, one
Ethernet frame per packet), so it is a peer written by others, not from this
project's notes. ``boot_on_bess(path)`` boots it with

* the host's ``/`` as its root, through hostfs and **read-only**, so the guest
  runs the host's own ``ping``, ``busybox arping``, ``ntpdig`` and ``chronyd``;
* ``uml_guest_init`` (beside this file) as PID 1: a DHCP lease on vec0 (busybox
  udhcpc asking for option 42, ``uml_udhcpc.sh``), then ARP, ping, ``ntpdig -j``
  and ``chronyd -Q`` against the NTP server the lease names, each result on a
  ``HOSTCLOCK-UML`` console line;
* the xstate shim (``uml_xstate_shim.c``, built here with gcc and preloaded):
  Debian 12's UML (6.1) cannot restore FPU state on hosts with a larger XSAVE
  area (AVX-512, AMX) and dies at boot without it.

UML keeps its own clock, set from the host's at boot and then kept by its own
timers (measured here: 0.3 to 220 ms off the host's, boot to boot), but the
guest sets no clock: its clients run in query mode only.
Every boot is bounded by a timeout, after which UML's process group is killed.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
UML = "linux.uml"
GUEST_INIT = HERE / "uml_guest_init"
SHIM_SOURCE = HERE / "uml_xstate_shim.c"
GUEST_MAC = "52:54:00:12:34:57"
BOOT_TIMEOUT = 90.0


class UmlError(RuntimeError):
    """UML could not be booted, or did not finish in time; the message has the console's tail."""


@dataclass
class UmlRun:
    console: str
    exit_code: int
    #: the guest's HOSTCLOCK-UML lines: what -> the rest of the line
    results: dict[str, str] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)

    def count(self, what: str) -> int | None:
        match = re.search(r"received=(\d+)", self.results.get(what, ""))
        return int(match.group(1)) if match else None

    def ntpdig(self) -> dict | None:
        text = self.results.get("ntpdig", "")
        return json.loads(text) if text.startswith("{") else None

    def chronyd_offset(self) -> float | None:
        match = re.search(r"offset=([-+0-9.eE]+)", self.results.get("chronyd", ""))
        return float(match.group(1)) if match else None


def missing() -> list[str]:
    """What the UML guest needs and this host lacks, each with how to install it."""
    needs = {UML: "user-mode-linux", "gcc": "gcc libc6-dev", "busybox": "busybox-static",
             "ping": "iputils-ping", "ntpdig": "ntpsec-ntpdig", "chronyd": "chrony", "ip": "iproute2"}
    return [f"{tool} (apt-get install {package})" for tool, package in needs.items() if shutil.which(tool) is None]


def build_shim(cache: Path | None = None) -> Path:
    """The xstate shim as a shared object, compiled once per source version."""
    source = SHIM_SOURCE.read_bytes()
    cache = cache or Path(os.environ.get("HOSTCLOCK_UML_CACHE", Path.home() / ".cache" / "hostclock-uml"))
    target = cache / f"xstate-shim-{hashlib.sha256(source).hexdigest()[:16]}.so"
    if target.exists():
        return target
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache) as work:
        built = Path(work) / "shim.so"
        done = subprocess.run(["gcc", "-O2", "-shared", "-fPIC", "-o", str(built), str(SHIM_SOURCE), "-ldl"],
                              capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            raise UmlError(f"cannot build {SHIM_SOURCE.name}: {done.stderr.strip()}")
        os.replace(built, target)
    return target


def command(socket_path: str | os.PathLike, workdir: Path, *, mac: str = GUEST_MAC) -> list[str]:
    """The UML command line: 256 MB, the host's / read-only, vec0 on the bess socket, console on stdout."""
    return [UML, "mem=256M", f"uml_dir={workdir}", "umid=hostclock-test",
            "root=/dev/root", "rootfstype=hostfs", "rootflags=/", "ro", f"init={GUEST_INIT}",
            f"vec0:transport=bess,dst={os.fspath(socket_path)},mac={mac}",
            "con0=null,fd:1", "con=null", f"hostclock_chronyd={_host_chronyd()}"]


def _host_chronyd() -> str:
    """The chronyd the host's PATH finds (the guest runs it from the host's /), by its real path."""
    found = shutil.which("chronyd") or "/usr/sbin/chronyd"
    return os.path.realpath(found)


def boot_on_bess(socket_path: str | os.PathLike, *, timeout: float = BOOT_TIMEOUT) -> UmlRun:
    """Boot the guest on `socket_path` (hostclock must be listening), wait for it to power off."""
    shim = build_shim()
    with tempfile.TemporaryDirectory(prefix="hcuml-") as workdir:
        env = dict(os.environ, LD_PRELOAD=str(shim), TMPDIR=workdir)
        proc = subprocess.Popen(command(socket_path, Path(workdir)), stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env,
                                start_new_session=True)
        try:
            out, _ = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            out, _ = proc.communicate(timeout=10)
            raise UmlError(f"UML still running after {timeout:.0f} s; console tail:\n{_tail(out)}") from None
        finally:
            if proc.poll() is None:
                _kill_group(proc)
                proc.wait(timeout=10)
    console = out.decode(errors="replace")
    run = UmlRun(console, proc.returncode)
    for line in console.splitlines():
        match = re.match(r"HOSTCLOCK-UML (\w+) ?(.*)", line)
        if match:
            what, rest = match.groups()
            if what == "error":
                run.errors.append(rest)
            else:
                run.results[what] = rest.strip()
    return run


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _tail(out: bytes | None, lines: int = 40) -> str:
    return "\n".join((out or b"").decode(errors="replace").splitlines()[-lines:])
