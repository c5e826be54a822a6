"""Real NTP clients (and ping), run in query mode only, with parsed results.

SAFETY: network namespaces do not isolate the clock.  Nothing here can set
it: ``ntpdig -j`` (query, JSON), ``chronyd -Q`` (print the offset and exit),
ntplib (a library that only reads).

Every function takes ``ns``: a GuestNamespace, a namespace name, or None to
run in the current (root) namespace, e.g. against a server on loopback.
They block (subprocesses); from a trio test that also runs the gateway
in-process, call them via ``await trio.to_thread.run_sync(partial(...))``.

Sign convention, the same for every client: ``offset`` is RFC 5905 theta,
server clock minus local clock.  Positive = the local clock is behind.
chronyd's "System clock wrong by X seconds" uses that sign (X > 0: the local
clock is slow, +X would correct it), so ``offset = X``.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile

import pytest

from .netns import GuestNamespace, ns_argv

# tool -> Debian package that provides it
PACKAGES = {
    "ntpdig": "ntpsec-ntpdig",
    "chronyd": "chrony",
    "ping": "iputils-ping",
    "ip": "iproute2",
    "sysctl": "procps",
}

LEAP = {"N": 0, "+": 1, "-": 2, "?": 3,
        "no-leap": 0, "add-leap": 1, "del-leap": 2, "unsync": 3}


@dataclasses.dataclass
class ClientResult:
    client: str
    server: str
    offset: float            # seconds, server minus local (see module docstring)
    delay: float | None      # round-trip delay in seconds, if the client reports it
    stratum: int | None
    leap: int | None         # 0..3 (3 = unsynchronised), if the client reports it
    raw: str                 # the client's output, for messages
    #: the client's own worst-case error of `offset` (s): ntpdig's synchronisation distance
    #: ("precision" in its JSON: delay / 2 + dispersion); else delay / 2
    error_bound: float | None = None

    def __post_init__(self):
        if self.error_bound is None and self.delay is not None:
            self.error_bound = self.delay / 2

    def within_its_error_bound(self, true_offset: float = 0.0, slack: float = 5e-6) -> bool:
        """|offset - true_offset| <= error_bound (+ slack for the clients' printed rounding).

        With one clock on both ends a correct server gives t1 <= t2 <= t3 <= t4, and then
        |offset| <= delay / 2 always (RFC 5905 §8), however loaded the machine: a server whose
        clock or timestamps are off by more than that fails this, a slow exchange does not.
        """
        if self.error_bound is None:
            raise ValueError(f"{self.client} reported no delay or error bound: {self.raw}")
        return abs(self.offset - true_offset) <= self.error_bound + slack


class ClientError(RuntimeError):
    """The client rejected the answer, got none, or did not finish in time."""

    def __init__(self, client: str, argv, why: str, stdout: str = "", stderr: str = ""):
        self.client, self.argv, self.stdout, self.stderr = client, list(argv), stdout, stderr
        super().__init__(f"{client}: {why}\n$ {' '.join(map(str, argv))}\n"
                         f"--- stdout ---\n{stdout}--- stderr ---\n{stderr}")


def which(tool: str) -> str | None:
    """Path of ``tool``, also looking in the sbin directories."""
    path = os.environ.get("PATH", "") + ":/usr/local/sbin:/usr/sbin:/sbin"
    return shutil.which(tool, path=path)


def missing_tools(*tools: str) -> list[str]:
    """Which of ``tools`` (default: all the harness uses, plus the ntplib module) are missing.

    Each entry says how to install it, ready for a skip reason.
    """
    tools = tools or (*PACKAGES, "ntplib")
    missing = []
    for tool in tools:
        if tool == "ntplib":
            if importlib.util.find_spec("ntplib") is None:
                missing.append("ntplib (pip install ntplib)")
        elif which(tool) is None:
            missing.append(f"{tool} (apt-get install {PACKAGES.get(tool, tool)})")
    return missing


def requires_clients(*tools: str):
    """Decorator: mark a test ``clients`` and skip it if any of ``tools`` is missing."""
    missing = missing_tools(*tools)

    def decorate(test):
        test = pytest.mark.clients(test)
        return pytest.mark.skipif(bool(missing), reason="missing: " + ", ".join(missing))(test)
    return decorate


def _run(client: str, ns, argv: list[str], timeout: float) -> subprocess.CompletedProcess:
    argv = ns_argv(ns, argv)
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as e:
        out = e.stdout.decode(errors="replace") if isinstance(e.stdout, bytes) else e.stdout
        err = e.stderr.decode(errors="replace") if isinstance(e.stderr, bytes) else e.stderr
        raise ClientError(client, argv, f"did not finish within {timeout} s",
                          out or "", err or "") from None


def ntpdig(ns, server: str, timeout: float = 5.0) -> ClientResult:
    """``ntpdig -j -t T SERVER`` (port 123 only: ntpdig has no port option)."""
    t = max(1, math.ceil(timeout))
    argv = ["ntpdig", "-j", "-t", str(t), server]
    cp = _run("ntpdig", ns, argv, timeout=t + 5)
    lines = [line for line in cp.stdout.splitlines() if line.startswith("{")]
    if cp.returncode != 0 or not lines:
        raise ClientError("ntpdig", cp.args, f"exit code {cp.returncode}, no accepted answer",
                          cp.stdout, cp.stderr)
    data = json.loads(lines[-1])
    return ClientResult("ntpdig", server, offset=float(data["offset"]), delay=None,
                        stratum=int(data["stratum"]), leap=LEAP.get(data["leap"]),
                        raw=cp.stdout + cp.stderr, error_bound=float(data["precision"]))


_WRONG_BY = re.compile(r"System clock wrong by (\S+) seconds")


def _last_measurement(log: str, server: str) -> list[str] | None:
    """The last rawmeasurements line for ``server`` that passed every test, else the last one."""
    rows = [line.split() for line in log.splitlines() if line[:1].isdigit()]
    rows = [r for r in rows if len(r) >= 16 and r[2] == server]
    good = [r for r in rows if set(r[5] + r[6] + r[7]) == {"1"}]
    return (good or rows or [None])[-1]


def chronyd_query(ns, server: str, port: int | None = None,
                  timeout: float = 10.0) -> ClientResult:
    """``chronyd -Q`` (measure once, print, exit; never adjusts the clock).

    Directives on the command line make chronyd skip /etc/chrony/chrony.conf;
    pid file and logs go to a private temporary directory, nothing touches
    /var/lib/chrony or /run/chrony.  Stratum, leap and delay come from the
    ``rawmeasurements`` log, which also explains a rejected answer (test bits).
    """
    t = max(1, math.ceil(timeout))
    with tempfile.TemporaryDirectory(prefix="hc-chronyq-") as tmp:
        server_line = f"server {server}" + (f" port {port}" if port else "") \
            + " iburst maxsamples 1"
        argv = ["chronyd", "-Q", "-d", "-u", "root", "-t", str(t), server_line,
                f"pidfile {tmp}/chronyd.pid", f"logdir {tmp}", "log rawmeasurements"]
        cp = _run("chronyd", ns, argv, timeout=t + 5)
        try:
            with open(f"{tmp}/measurements.log") as f:
                log = f.read()
        except FileNotFoundError:
            log = ""
    output = cp.stdout + cp.stderr
    match = _WRONG_BY.search(output)
    if cp.returncode != 0 or not match:
        raise ClientError("chronyd", cp.args, f"exit code {cp.returncode}, no accepted answer",
                          cp.stdout, cp.stderr + "--- measurements.log ---\n" + log)
    row = _last_measurement(log, server)
    return ClientResult("chronyd", server, offset=float(match.group(1)),
                        delay=float(row[12]) if row else None,
                        stratum=int(row[4]) if row else None,
                        leap=LEAP.get(row[3]) if row else None,
                        raw=output + log)


_NTPLIB_SNIPPET = r"""
import json, sys, ntplib
host, port, timeout, version = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
try:
    r = ntplib.NTPClient().request(host, version=version, port=port, timeout=timeout)
except Exception as e:
    sys.exit(f"{type(e).__name__}: {e}")
print(json.dumps({"offset": r.offset, "delay": r.delay, "stratum": r.stratum,
                  "leap": r.leap, "version": r.version, "mode": r.mode}))
"""


def ntplib_query(ns, server: str, port: int = 123, timeout: float = 5.0,
                 version: int = 4) -> ClientResult:
    """One ntplib request, run by this interpreter inside ``ns``.

    ntplib validates nothing (it accepts LI=3, stratum 0, a wrong originate):
    never use it as the only oracle; check ``leap`` and ``stratum`` yourself.
    """
    argv = [sys.executable, "-c", _NTPLIB_SNIPPET, server, str(port), str(timeout), str(version)]
    cp = _run("ntplib", ns, argv, timeout=timeout + 10)
    if cp.returncode != 0:
        raise ClientError("ntplib", cp.args, f"exit code {cp.returncode}", cp.stdout, cp.stderr)
    data = json.loads(cp.stdout)
    return ClientResult("ntplib", server, offset=data["offset"], delay=data["delay"],
                        stratum=data["stratum"], leap=data["leap"], raw=cp.stdout)


_NTPLIB_SERIES = r"""
import json, sys, ntplib
host, port, timeout, count = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
client, offsets = ntplib.NTPClient(), []
for _ in range(count):
    try:
        offsets.append(client.request(host, version=4, port=port, timeout=timeout).offset)
    except Exception as e:
        sys.exit(f"{type(e).__name__}: {e}")
print(json.dumps(offsets))
"""


def ntplib_offsets(ns, server: str, count: int, port: int = 123, timeout: float = 5.0) -> list[float]:
    """``count`` ntplib requests one after the other, in one process inside ``ns``; their offsets (s)."""
    argv = [sys.executable, "-c", _NTPLIB_SERIES, server, str(port), str(timeout), str(count)]
    cp = _run("ntplib", ns, argv, timeout=count * timeout + 10)
    if cp.returncode != 0:
        raise ClientError("ntplib", cp.args, f"exit code {cp.returncode}", cp.stdout, cp.stderr)
    return json.loads(cp.stdout)


_EXCHANGES = r"""
import json, os, socket, struct, sys, time
host, port, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
ERA = 2208988800
def ntp_ns(stamp):
    seconds, fraction = divmod(stamp, 2**32)
    return (seconds - ERA) * 10**9 + (fraction * 10**9 >> 32)
out = []
with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
    s.settimeout(5)
    s.connect((host, port))
    for _ in range(count):
        transmit = os.urandom(8)
        t1 = time.time_ns()
        s.send(bytes([0x23, 0, 6, 0xEC]) + bytes(36) + transmit)
        reply = s.recv(2048)
        t4 = time.time_ns()
        t2, t3 = (ntp_ns(v) for v in struct.unpack_from("!QQ", reply, 32))
        out.append({"mode": reply[0] & 7, "originate_echoed": reply[24:32] == transmit,
                    "t1": t1, "t2": t2, "t3": t3, "t4": t4})
print(json.dumps(out))
"""


def sntp_exchanges(ns, server: str, count: int, port: int = 123) -> list[dict]:
    """``count`` SNTP exchanges from inside ``ns`` by a stdlib client with nanosecond clock reads
    and a random transmit timestamp each: per exchange the reply's mode, whether its originate
    is that transmit byte for byte, and t1..t4 in Unix ns (t2, t3: the server's)."""
    argv = [sys.executable, "-c", _EXCHANGES, server, str(port), str(count)]
    cp = _run("sntp", ns, argv, timeout=count * 5 + 10)
    if cp.returncode != 0:
        raise ClientError("sntp", cp.args, f"exit code {cp.returncode}", cp.stdout, cp.stderr)
    return json.loads(cp.stdout)


def ping(ns, address: str, count: int = 3, timeout: float = 5.0) -> int:
    """``ping`` ``count`` times (0.2 s apart) within ``timeout`` s; returns how many replies came."""
    deadline = max(1, math.ceil(timeout))
    argv = ["ping", "-n", "-c", str(count), "-i", "0.2", "-W", "1", "-w", str(deadline), address]
    cp = _run("ping", ns, argv, timeout=deadline + 5)
    match = re.search(r"(\d+) (?:packets )?received", cp.stdout)
    if cp.returncode not in (0, 1) or not match:
        raise ClientError("ping", cp.args, f"exit code {cp.returncode}", cp.stdout, cp.stderr)
    return int(match.group(1))
