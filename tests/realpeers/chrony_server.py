"""A real chronyd running as an NTP server on loopback, for anchors and client tests.

chronyd runs with -x: it never touches the clock.  It serves its own clock
(``local stratum N``), so on loopback the true offset is zero.
"""

from __future__ import annotations

import socket
import subprocess
import tempfile
import time

from . import clients
from .netns import ns_argv


def free_udp_port(address: str = "127.0.0.1") -> int:
    """A UDP port free right now on ``address`` in this namespace."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((address, 0))
        return s.getsockname()[1]


class PortTaken(RuntimeError):
    """chronyd could not bind its port."""


class ChronyServer:
    """Run ``chronyd -x -d -f CONF`` until exit; ready (answering, synchronised) on enter.

    ns: None = root namespace, port defaults to a free one; a GuestNamespace
    or namespace name = inside it, port defaults to 123 (needed by ntpdig).

    with ChronyServer() as srv:
        clients.chronyd_query(None, srv.address, port=srv.port)
    """

    PORT_ATTEMPTS = 5

    def __init__(self, ns=None, address: str = "127.0.0.1", port: int | None = None,
                 stratum: int = 1, allow: str = "127.0.0.1", start_timeout: float = 10.0):
        self.ns, self.address, self.stratum, self.allow = ns, address, stratum, allow
        self._port_given = port is not None or ns is not None
        self.port = port or (free_udp_port(address) if ns is None else 123)
        self.start_timeout = start_timeout
        self.proc: subprocess.Popen | None = None
        self._tmp: tempfile.TemporaryDirectory | None = None

    def __enter__(self) -> "ChronyServer":
        """Start chronyd; a free port taken by another process before chronyd bound it (chronyd
        logs "Could not open NTP socket" and serves nothing) is retried with another port."""
        for attempt in range(self.PORT_ATTEMPTS):
            try:
                return self._start()
            except PortTaken:
                if self._port_given or attempt + 1 == self.PORT_ATTEMPTS:
                    raise
                self.port = free_udp_port(self.address)
        raise AssertionError("unreachable")

    def _start(self) -> "ChronyServer":
        self._tmp = tempfile.TemporaryDirectory(prefix="hc-chronyd-")
        d = self._tmp.name
        self.conf, self.logfile = f"{d}/chronyd.conf", f"{d}/chronyd.log"
        with open(self.conf, "w") as f:
            f.write(f"local stratum {self.stratum}\n"
                    f"allow {self.allow}\n"
                    f"bindaddress {self.address}\n"
                    f"port {self.port}\n"
                    "cmdport 0\n"
                    "bindcmdaddress /\n"   # no Unix command socket in /run/chrony
                    f"pidfile {d}/chronyd.pid\n")  # and no driftfile
        argv = ["chronyd", "-x", "-d", "-u", "root", "-f", self.conf]  # clock-safe: -x
        with open(self.logfile, "w") as log:
            self.proc = subprocess.Popen(ns_argv(self.ns, argv), stdout=log,
                                         stderr=subprocess.STDOUT)
        try:
            self._wait_ready()
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.start_timeout
        last = None
        while time.monotonic() < deadline:
            if "Could not open NTP socket" in self.log() or "Could not bind" in self.log():
                raise PortTaken(f"chronyd could not bind {self.address}:{self.port}:\n{self.log()}")
            if self.proc.poll() is not None:
                raise RuntimeError(f"chronyd exited with {self.proc.returncode}:\n{self.log()}")
            try:
                r = clients.ntplib_query(self.ns, self.address, self.port, timeout=0.5)
                if r.stratum == self.stratum and r.leap != 3:
                    return
                last = r
            except clients.ClientError as e:
                last = e
            time.sleep(0.1)
        raise TimeoutError(f"chronyd did not answer within {self.start_timeout} s "
                           f"(last: {last}):\n{self.log()}")

    def log(self) -> str:
        with open(self.logfile) as f:
            return f.read()

    def __exit__(self, *exc) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None
