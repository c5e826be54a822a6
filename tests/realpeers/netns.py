"""Network namespaces and TAP devices for tests that talk to real peers.

A ``GuestNamespace`` plays the VM guest: a fresh network namespace with ``lo``
up, into which a TAP device (owned by the gateway in the root namespace) is
moved with ``adopt_tap``.  Real clients then run inside it with ``run`` /
``popen`` (``ip netns exec``).

Remember: a network namespace does NOT isolate the clock.  Only ever run
clients in query mode (see ``clients.py``).

Deleting a namespace destroys a TAP device inside it, which the owner of the
TAP fd then sees as an error: stop the gateway first, or expect that.
"""

from __future__ import annotations

import fcntl
import functools
import json
import os
import secrets
import select
import shutil
import struct
import subprocess
from typing import Sequence

import pytest

TUNSETIFF = 0x400454CA
IFF_TAP = 0x0002
IFF_NO_PI = 0x1000
IFNAMSIZ = 16

def unique_name(prefix: str = "hc") -> str:
    """A name unlikely to clash with other tests running at the same time.

    At most 15 characters, so it also fits an interface name (IFNAMSIZ - 1).
    """
    name = prefix + secrets.token_hex(4)
    if len(name) >= IFNAMSIZ:
        raise ValueError(f"prefix {prefix!r} too long for an interface name")
    return name


def _check(cp: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    if cp.returncode != 0:
        raise RuntimeError(
            f"{' '.join(map(str, cp.args))} failed with exit code {cp.returncode}:\n"
            f"{cp.stdout or ''}{cp.stderr or ''}"
        )
    return cp


def _sh(argv: Sequence[str], timeout: float = 10.0) -> subprocess.CompletedProcess:
    return subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout)


def ns_argv(ns: "GuestNamespace | str | None", argv: Sequence[str]) -> list[str]:
    """``argv`` prefixed to run inside ``ns`` (a GuestNamespace or a name); None = here."""
    if ns is None:
        return list(argv)
    name = ns.name if isinstance(ns, GuestNamespace) else ns
    return ["ip", "netns", "exec", name, *argv]


@functools.cache
def root_skip_reason() -> str | None:
    """Why tests needing TAP devices and namespaces cannot run here, or None."""
    if os.geteuid() != 0:
        return "needs root (TAP devices, network namespaces)"
    if not os.path.exists("/dev/net/tun"):
        return "/dev/net/tun is missing"
    if shutil.which("ip") is None:
        return "ip is missing (apt-get install iproute2)"
    try:
        os.close(os.open("/dev/net/tun", os.O_RDWR))
    except OSError as e:
        return f"cannot open /dev/net/tun: {e}"
    probe = unique_name("hcprobe")
    try:
        cp = _sh(["ip", "netns", "add", probe])
        if cp.returncode != 0:
            return f"ip netns add is unusable here: {cp.stderr.strip()}"
        cp = _sh(["ip", "netns", "exec", probe, "true"])
        if cp.returncode != 0:
            return f"ip netns exec is unusable here: {cp.stderr.strip()}"
    finally:
        _sh(["ip", "netns", "delete", probe])
    return None


def require_root() -> None:
    """Skip the calling test (or fixture) unless TAP + namespaces are usable."""
    reason = root_skip_reason()
    if reason is not None:
        pytest.skip(reason)


def requires_root(test):
    """Decorator: mark a test ``root`` and skip it (with the reason) if it cannot run."""
    reason = root_skip_reason()
    test = pytest.mark.root(test)
    return pytest.mark.skipif(reason is not None, reason=reason or "")(test)


def make_tap(name: str) -> int:
    """Create TAP device ``name`` (IFF_TAP | IFF_NO_PI); return its blocking fd.

    Closing the fd removes the device (it is not persistent).
    """
    fd = os.open("/dev/net/tun", os.O_RDWR | os.O_CLOEXEC)
    try:
        ifr = struct.pack("16sH22x", name.encode(), IFF_TAP | IFF_NO_PI)
        fcntl.ioctl(fd, TUNSETIFF, ifr)
    except BaseException:
        os.close(fd)
        raise
    return fd


def read_frame(fd: int, timeout: float) -> bytes | None:
    """One Ethernet frame from a TAP fd, or None if none arrives within ``timeout`` s."""
    readable, _, _ = select.select([fd], [], [], timeout)
    if not readable:
        return None
    return os.read(fd, 65536)


class GuestNamespace:
    """A uniquely named network namespace with ``lo`` up, deleted on exit.

    with GuestNamespace() as ns:
        ns.adopt_tap("hctap0")
        ns.run(["ping", "-c1", "192.168.65.1"], timeout=5)
    """

    def __init__(self, name_prefix: str = "hc"):
        self.name = unique_name(name_prefix)
        self._procs: list[subprocess.Popen] = []
        self._created = False

    # -- lifecycle -------------------------------------------------------
    def __enter__(self) -> "GuestNamespace":
        self.create()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def create(self) -> None:
        _check(_sh(["ip", "netns", "add", self.name]))
        self._created = True
        try:
            self.ip("link", "set", "dev", "lo", "up")
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        """Stop processes started with ``popen`` and delete the namespace."""
        for proc in self._procs:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=3)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=3)
        self._procs.clear()
        if self._created:
            self._created = False
            _check(_sh(["ip", "netns", "delete", self.name]))

    # -- running things inside -------------------------------------------
    def ip(self, *args: str) -> str:
        """``ip -n NS ARGS``; returns stdout, raises RuntimeError with stderr on failure."""
        return _check(_sh(["ip", "-n", self.name, *args])).stdout

    def run(self, argv: Sequence[str], timeout: float, check: bool = False,
            **kwargs) -> subprocess.CompletedProcess:
        """Run ``argv`` inside the namespace; text output captured unless overridden.

        Raises subprocess.TimeoutExpired (the child is killed) after ``timeout`` s.
        """
        kwargs.setdefault("capture_output", True)
        kwargs.setdefault("text", True)
        cp = subprocess.run(ns_argv(self, argv), timeout=timeout, **kwargs)
        return _check(cp) if check else cp

    def popen(self, argv: Sequence[str], **kwargs) -> subprocess.Popen:
        """Start ``argv`` inside the namespace; terminated on ``close`` if still running."""
        proc = subprocess.Popen(ns_argv(self, argv), **kwargs)
        self._procs.append(proc)
        return proc

    # -- devices ---------------------------------------------------------
    def adopt_tap(self, tap: str, ip: str | None = "192.168.65.3/24") -> None:
        """Move TAP ``tap`` (from the root namespace) in, IPv6 off, address ``ip``, up.

        IPv6 is disabled before link-up, or router solicitations and MLD
        reports reach the gateway at once.
        """
        _check(_sh(["ip", "link", "set", "dev", tap, "netns", self.name]))
        if os.path.exists("/proc/sys/net/ipv6"):
            self.run(["sysctl", "-q", "-w", f"net.ipv6.conf.{tap}.disable_ipv6=1"],
                     timeout=10, check=True)
        if ip:
            self.ip("addr", "add", ip, "dev", tap)
        self.ip("link", "set", "dev", tap, "up")

    def link(self, dev: str) -> dict:
        """``ip -j link show dev DEV`` inside the namespace, parsed."""
        return json.loads(self.ip("-j", "link", "show", "dev", dev))[0]

    def addresses(self, dev: str) -> list[dict]:
        """The ``addr_info`` list of ``ip -j addr show dev DEV`` inside the namespace."""
        return json.loads(self.ip("-j", "addr", "show", "dev", dev))[0]["addr_info"]

    def exists(self) -> bool:
        return os.path.exists(f"/run/netns/{self.name}")


@pytest.fixture
def guest_ns():
    """Pytest fixture: a GuestNamespace, skipped if namespaces are unusable.

    Import it into a test module (``from realpeers.netns import guest_ns``).
    """
    require_root()
    with GuestNamespace() as ns:
        yield ns
