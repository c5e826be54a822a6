#!/usr/bin/env python3
"""Capture real NTP clients talking to hostclock, one pcap per client, for the replay corpus.

    sudo python3 pcaps/capture_clients.py                 # all clients found, into pcaps/clients/
    sudo python3 pcaps/capture_clients.py ntpdig ping     # only these
    sudo python3 pcaps/capture_clients.py --upstream 127.0.0.1:11123   # NTP answered by that server

For each client: start `python3 -m gateway run --tap TAP --pcap FILE` (the
gateway records its link, both directions: the guest's side of the wire),
make a network namespace, move the TAP in (IPv6 off before link-up, so no
router or MLD noise), give it 192.168.65.3/24, run the client in the
namespace against the gateway 192.168.65.1, stop the gateway (SIGTERM: the
pcap is flushed), and keep the capture as pcaps/clients/<client>.pcap. Then
run `python3 pcaps/make_golden.py` to refresh the expected replay outcomes.

SAFETY: a network namespace does not isolate the clock, so every client runs
in a query-only mode that cannot set it:
  `ntpdig -j` (never -s/-S),
  `chronyd -Q` (measure, print, exit),
  ntplib (a library that only reads),
  `ntpdate -q` and `sntp` without -s/-S (both are ntpdig underneath on Debian).
Traffic stays on the TAP and in the namespace made here. Needs root (TAP, namespaces).

Debian 12 has `ntpdate -q` (package ntpsec-ntpdate) and `sntp` (a symlink to
ntpdig); they are used only if installed. The package behind `ntpdate -q` also
installs if-up, dhclient and NetworkManager hooks that set the clock on
interface events, so think before installing it on a machine you care about.
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
GATEWAY_IP = "192.168.65.1"
GUEST_ADDRESS = "192.168.65.3/24"
CLIENT_TIMEOUT = 30.0
READY_TIMEOUT = 15.0

_NTPLIB = ("import ntplib; r = ntplib.NTPClient().request('%s', version=4, timeout=5); "
           "print('ntplib offset', r.offset, 'delay', r.delay)" % GATEWAY_IP)

#: client name -> (the program that must exist, argv run in the namespace; all query-only)
CLIENTS: dict[str, tuple[str, list[str]]] = {
    "ntpdig": ("ntpdig", ["ntpdig", "-j", "-t", "3", GATEWAY_IP]),
    "chronyd": ("chronyd", ["chronyd", "-Q", "-d", "-u", "root", "-t", "10", f"server {GATEWAY_IP} iburst maxsamples 1", "pidfile {tmp}/chronyd.pid"]),
    "chronyd_burst": ("chronyd", ["chronyd", "-Q", "-d", "-u", "root", "-t", "20", f"server {GATEWAY_IP} iburst maxsamples 4", "pidfile {tmp}/chronyd.pid"]),
    "ntplib": (sys.executable, [sys.executable, "-c", _NTPLIB]),
    "ntpdate": ("ntpdate", ["ntpdate", "-q", GATEWAY_IP]),
    "sntp": ("sntp", ["sntp", "-t", "3", GATEWAY_IP]),
    "ping": ("ping", ["ping", "-c", "2", "-i", "0.2", "-W", "2", GATEWAY_IP]),
}


def which(program: str) -> str | None:
    return shutil.which(program, path=os.environ.get("PATH", "") + ":/usr/local/sbin:/usr/sbin:/sbin")


def sh(*argv: str, timeout: float = 10.0) -> subprocess.CompletedProcess:
    cp = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    if cp.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)}: exit {cp.returncode}: {cp.stderr.strip()}")
    return cp


def capture(client: str, argv: list[str], out: Path, upstream: str | None) -> str:
    """Run one client against a fresh gateway; the capture lands in `out`. Returns the client's output."""
    suffix = secrets.token_hex(3)
    tap, ns = f"hccap{suffix}", f"hccap{suffix}"
    with tempfile.TemporaryDirectory(prefix="hc-capture-") as tmp:
        recording = Path(tmp) / "link.pcap"
        gateway_argv = [sys.executable, "-m", "gateway", "run", "--tap", tap, "--pcap", str(recording)]
        if upstream:
            gateway_argv += ["--upstream", upstream]
        gateway = subprocess.Popen(gateway_argv, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        namespace_made = False
        try:
            ready = _read_ready_line(gateway)
            sh("ip", "netns", "add", ns)
            namespace_made = True
            sh("ip", "-n", ns, "link", "set", "lo", "up")
            sh("ip", "link", "set", "dev", tap, "netns", ns)
            sh("ip", "netns", "exec", ns, "sysctl", "-q", "-w", f"net.ipv6.conf.{tap}.disable_ipv6=1")
            sh("ip", "-n", ns, "addr", "add", GUEST_ADDRESS, "dev", tap)
            sh("ip", "-n", ns, "link", "set", "dev", tap, "up")
            argv = [arg.replace("{tmp}", tmp) for arg in argv]
            run = subprocess.run(["ip", "netns", "exec", ns, *argv], capture_output=True, text=True,
                                 timeout=CLIENT_TIMEOUT)
            time.sleep(0.2)  # let the last reply reach the recording
            output = f"{ready}\n$ {' '.join(argv)}  (exit {run.returncode})\n{run.stdout}{run.stderr}"
        finally:
            gateway.terminate()
            try:
                _, gateway_log = gateway.communicate(timeout=10)
            except subprocess.TimeoutExpired:
                gateway.kill()
                _, gateway_log = gateway.communicate()
            if namespace_made:
                subprocess.run(["ip", "netns", "delete", ns], capture_output=True)
        if gateway.returncode not in (0, -15):
            raise RuntimeError(f"the gateway ended with {gateway.returncode}:\n{gateway_log}")
        shutil.copyfile(recording, out)
    return output + gateway_log


def _read_ready_line(gateway: subprocess.Popen) -> str:
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        line = gateway.stdout.readline()
        if line.startswith("hostclock: gateway"):
            return line.strip()
        if not line and gateway.poll() is not None:
            raise RuntimeError(f"the gateway did not start: {gateway.stderr.read()}")
    raise RuntimeError("the gateway printed no ready line")


def main() -> int:
    parser = argparse.ArgumentParser(description="Capture real NTP clients (query mode only) through hostclock.")
    parser.add_argument("clients", nargs="*", metavar="CLIENT", help=f"any of {', '.join(CLIENTS)} (default: all found)")
    parser.add_argument("--out-dir", default=str(REPO / "pcaps" / "clients"), help="where <client>.pcap goes")
    parser.add_argument("--upstream", metavar="HOST:PORT",
                        help="forward NTP to this server on loopback instead of the embedded responder "
                             "(e.g. a `chronyd -x` you started, which never touches the clock)")  # clock-safe: -x
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("capture_clients: needs root (TAP devices, network namespaces)", file=sys.stderr)
        return 2
    unknown = [c for c in args.clients if c not in CLIENTS]
    if unknown:
        print(f"capture_clients: unknown client(s) {', '.join(unknown)}; choose from {', '.join(CLIENTS)}", file=sys.stderr)
        return 2
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    failed = 0
    for client in args.clients or list(CLIENTS):
        program, argv = CLIENTS[client]
        if which(program) is None:
            print(f"-- {client}: skipped, {program} is not installed")
            continue
        out = out_dir / f"{client}.pcap"
        try:
            log = capture(client, argv, out, args.upstream)
        except (RuntimeError, subprocess.TimeoutExpired) as e:
            failed += 1
            print(f"-- {client}: FAILED: {e}")
            continue
        print(f"-- {client}: {out}\n{log.rstrip()}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
