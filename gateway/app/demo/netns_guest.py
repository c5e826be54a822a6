"""The netns guest: a network namespace on the gateway's TAP, with real NTP clients in query mode.

    gateway (this process) --TAP hcdXXXXXX--> namespace hcdemo-XXXXXX: DHCP (busybox udhcpc,
                                               asking for option 42), then every second
                                               `ntpdig -j SERVER` and `chronyd -Q 'server SERVER'`

SAFETY: a network namespace does not isolate the clock. The clients here only
query (`ntpdig -j` prints, never `-s`/`-S`; `chronyd -Q` measures and exits, never
adjusting the clock); udhcpc only configures the namespace's interface.

The namespace shares the host's clock, so the true offset is 0: what the clients
report (tens of microseconds) is the path's asymmetry and the scheduling noise,
which shows the path and the numbers, not a correction.
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
from collections.abc import Callable

import trio

from gateway.app.demo.preflight import find_tool
from gateway.app.demo.readings import Reading
from gateway.app.demo.resources import DemoNames, Resources, run_ip as _ip

__all__ = ["NetnsGuest", "parse_ntpdig", "parse_chronyd_query"]

log = logging.getLogger("hostclock.demo")

#: a reading every second from each client
INTERVAL_S = 1.0
CLIENT_TIMEOUT_S = 5.0
DHCP_TIMEOUT_S = 15.0
STATIC_ADDRESS = "192.168.65.3/24"

_DHCP_SCRIPT = """#!/bin/sh
# udhcpc event script of the demo's namespace guest: configures only the namespace's interface
case "$1" in
deconfig)
    ip addr flush dev "$interface"
    ip link set "$interface" up
    ;;
bound|renew)
    ip addr flush dev "$interface"
    ip addr add "$ip/${mask:-24}" dev "$interface"
    printf '%s %s %s\\n' "$ip" "$router" "$ntpsrv" > "$0.lease"
    ;;
esac
exit 0
"""


def parse_ntpdig(stdout: str) -> tuple[float, float]:
    """(offset_s guest minus host, error_s) from `ntpdig -j`'s last JSON line.

    ntpdig's offset is RFC 5905's theta (server minus local), so it is negated; its
    "precision" is the ± it prints in its text form, the reading's half-width.
    """
    lines = [line for line in stdout.splitlines() if line.startswith("{")]
    if not lines:
        raise ValueError("no JSON line")
    data = json.loads(lines[-1])
    return -float(data["offset"]), abs(float(data.get("precision", 0.0)))


_WRONG_BY = re.compile(r"System clock wrong by (\S+) seconds")


def parse_chronyd_query(output: str, measurements_log: str) -> tuple[float, float]:
    """(offset_s guest minus host, error_s) from `chronyd -Q`: "System clock wrong by X seconds"
    (X is server minus local: negated), and half the peer delay of its rawmeasurements log line."""
    match = _WRONG_BY.search(output)
    if match is None:
        raise ValueError("no 'System clock wrong by' line")
    offset = -float(match.group(1))
    error = 0.0
    for line in measurements_log.splitlines():
        fields = line.split()
        if line[:1].isdigit() and len(fields) >= 14:
            try:
                error = float(fields[12]) / 2 + float(fields[13])  # peer delay / 2 + peer dispersion
            except ValueError:
                pass
    return offset, error


class NetnsGuest:
    """A namespace guest on TAP `names.tap` (made by the gateway); `run` adds it and queries forever."""

    def __init__(self, names: DemoNames, resources: Resources, workdir: str, tools: dict[str, str],
                 on_reading: Callable[[Reading], None], on_event: Callable[[str], None]) -> None:
        self.names = names
        self.resources = resources
        self.workdir = workdir
        self.tools = tools
        self.on_reading = on_reading
        self.on_event = on_event
        self.ip = ""
        self.mac = ""
        self.server = ""
        #: failed queries, by client
        self.failures: dict[str, int] = {name: 0 for name in tools}

    @property
    def description(self) -> str:
        return f"network namespace {self.names.namespace} on tap {self.names.tap}"

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        await trio.to_thread.run_sync(self._make_namespace)
        await self._configure_address()
        task_status.started()
        async with trio.open_nursery() as nursery:
            for client in self.tools:
                nursery.start_soon(self._query_every_second, client)

    # -- set-up ---------------------------------------------------------------------------

    def _make_namespace(self) -> None:
        ns, tap = self.names.namespace, self.names.tap
        self.resources.namespace(ns)
        _ip("link", "set", "dev", tap, "netns", ns)
        if os.path.exists("/proc/sys/net/ipv6"):
            # before link-up, or router solicitations and MLD reports reach the gateway at once
            _ip("netns", "exec", ns, "sysctl", "-q", "-w", f"net.ipv6.conf.{tap}.disable_ipv6=1")
        _ip("-n", ns, "link", "set", "dev", tap, "up")
        self.mac = json.loads(_ip("-n", ns, "-j", "link", "show", "dev", tap))[0]["address"]

    async def _configure_address(self) -> None:
        busybox = find_tool("busybox")
        if busybox is not None:
            script = os.path.join(self.workdir, "udhcpc.sh")
            with open(script, "w") as f:
                f.write(_DHCP_SCRIPT)
            os.chmod(script, 0o755)
            argv = ["ip", "netns", "exec", self.names.namespace, busybox, "udhcpc", "-i", self.names.tap,
                    "-f", "-q", "-n", "-t", "5", "-T", "1", "-O", "ntpsrv", "-s", script]
            with trio.move_on_after(DHCP_TIMEOUT_S):
                await trio.run_process(argv, capture_stdout=True, capture_stderr=True, check=False)
            try:
                with open(script + ".lease") as f:
                    ip, router, *ntp = f.read().split()
            except (OSError, ValueError):
                ip = ""
            if ip:
                self.ip = ip
                self.server = (ntp or [router])[0]
                self.on_event(f"DHCP: {ip} for {self.mac}, NTP server (option 42) {self.server}")
                return
            self.on_event("DHCP gave no lease: using a static address")
        else:
            self.on_event("no busybox (apt-get install busybox-static) for DHCP: using a static address")
        await trio.to_thread.run_sync(_ip, "-n", self.names.namespace, "addr", "add", STATIC_ADDRESS,
                                      "dev", self.names.tap)
        self.ip, self.server = STATIC_ADDRESS.split("/")[0], "192.168.65.1"

    # -- the clients ------------------------------------------------------------------------

    async def _query_every_second(self, client: str) -> None:
        query = self._ntpdig if client == "ntpdig" else self._chronyd
        next_at = trio.current_time()
        number = 0
        while True:
            number += 1
            try:
                with trio.fail_after(CLIENT_TIMEOUT_S + 2):
                    reading = await query(number)
            except (ValueError, trio.TooSlowError, OSError) as e:
                self.failures[client] += 1
                if self.failures[client] in (1, 10, 100):
                    self.on_event(f"{client}: no reading ({e})")
            else:
                self.on_reading(reading)
            next_at = max(next_at + INTERVAL_S, trio.current_time())
            await trio.sleep_until(next_at)

    def _in_namespace(self, *argv: str) -> list[str]:
        return ["ip", "netns", "exec", self.names.namespace, *argv]

    async def _ntpdig(self, number: int) -> Reading:
        # query only: -j prints JSON; never -s/-S (they would set the host's clock)
        argv = self._in_namespace(self.tools["ntpdig"], "-j", "-t", str(int(CLIENT_TIMEOUT_S)), self.server)
        done = await trio.run_process(argv, capture_stdout=True, capture_stderr=True, check=False)
        when = time.time()
        offset, error = parse_ntpdig(done.stdout.decode(errors="replace"))
        return Reading(when, self.ip, self.mac, offset, error, "ntpdig")

    async def _chronyd(self, number: int) -> Reading:
        tmp = os.path.join(self.workdir, f"chronyd-{number % 2}")
        os.makedirs(tmp, exist_ok=True)
        measurements = os.path.join(tmp, "measurements.log")
        if os.path.exists(measurements):
            os.unlink(measurements)
        # -Q: measure once and exit, never adjusting the clock; directives on the command line
        # keep chronyd off /etc/chrony, its pid file and logs in the demo's private directory
        argv = self._in_namespace(self.tools["chronyd"], "-Q", "-d", "-u", "root", "-t", str(int(CLIENT_TIMEOUT_S)),
                                  f"server {self.server} iburst maxsamples 1", f"pidfile {tmp}/chronyd.pid",
                                  f"logdir {tmp}", "log rawmeasurements", "cmdport 0")
        done = await trio.run_process(argv, capture_stdout=True, capture_stderr=True, check=False)
        when = time.time()
        try:
            with open(measurements) as f:
                log_text = f.read()
        except OSError:
            log_text = ""
        offset, error = parse_chronyd_query(done.stdout.decode(errors="replace") + done.stderr.decode(errors="replace"),
                                            log_text)
        return Reading(when, self.ip, self.mac, offset, error, "chronyd")

