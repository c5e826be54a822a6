"""Watching a real guest's clock: a namespace on hostclock's TAP, whose Linux kernel answers the ICMP
timestamp probes and whose ntpdig puts its clock in its requests.

A namespace shares the host's clock (true offset 0), so every reading must be 0 within its error.
"""

from __future__ import annotations

import csv
import re
import time

import pytest
from gateway_process import GatewayProcess
from realpeers import GuestNamespace, clients, requires_clients, requires_root, unique_name

GATEWAY = "192.168.65.1"
GUEST = "192.168.65.3"
HEADER = ["time_unix_s", "guest_ip", "guest_mac", "offset_s", "error_s", "source"]
#: a one-way (NTP) reading cannot see how late the gateway stamped the request's arrival (its own wake-up on
#: a busy machine): further off than its error by that, but never by more than this unless it is misread
ONE_WAY_LATENESS_LIMIT = 0.1

pytestmark = [pytest.mark.root, pytest.mark.clients]


def rows(path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        reader = csv.reader(f)
        assert next(reader) == HEADER
        return [dict(zip(HEADER, row)) for row in reader]


def wait_for_rows(path, source: str, count: int, timeout: float) -> list[dict[str, str]]:
    deadline = time.monotonic() + timeout
    while True:
        found = [row for row in rows(path) if row["source"] == source]
        if len(found) >= count or time.monotonic() > deadline:
            return found
        time.sleep(0.2)


@pytest.fixture
def watched_guest(tmp_path):
    """`hostclock run --tap T --watch-guest-clock=1 --guest-clock-log F` with a guest namespace on T."""
    tap = unique_name("hct")
    log = tmp_path / "clocks.csv"
    with GatewayProcess("run", "--tap", tap, "--watch-guest-clock=1", "--guest-clock-log", str(log)) as gateway, \
            GuestNamespace() as ns:
        ns.adopt_tap(tap)
        assert "watching guest clocks every 1 s" in gateway.ready_line
        assert clients.ping(ns, GATEWAY, count=1, timeout=5) == 1  # the guest is seen
        yield ns, gateway, log, ns.link(tap)["address"]
        assert gateway.stop() == 0, gateway.stderr


@requires_root
@requires_clients("ping")
def test_the_guest_kernel_answers_the_probes_and_reads_zero_within_its_error(watched_guest):
    ns, gateway, log, guest_mac = watched_guest
    readings = wait_for_rows(log, "icmp", 4, timeout=20)
    assert len(readings) >= 4, rows(log)
    for row in readings:
        assert (row["guest_ip"], row["guest_mac"]) == (GUEST, guest_mac)
        offset, error = float(row["offset_s"]), float(row["error_s"])
        assert 0.0005 <= error < 0.1, row
        assert abs(offset) <= error, row  # the same clock: 0, within the reading's half-width
        assert abs(float(row["time_unix_s"]) - time.time()) < 60
    gateway.stop()
    assert f"guest {GUEST} ({guest_mac}) clock 0.000 s" in gateway.stderr  # the first reading, logged
    # and never out of step (that line ends with the reading's error)
    assert not re.search(r"the host \((icmp|ntp) reading, error [0-9.]+ s\)$", gateway.stderr, re.M), gateway.stderr


@requires_root
@requires_clients("ntpdig")
def test_ntpdig_requests_give_one_way_readings(watched_guest):
    ns, gateway, log, guest_mac = watched_guest
    for _ in range(12):  # ntpdig -j (query only) puts its clock in the transmit timestamp
        clients.ntpdig(ns, GATEWAY, timeout=5)
        if len(wait_for_rows(log, "ntp", 2, timeout=0.3)) >= 2:  # a reading needs two requests that agree
            break
    readings = wait_for_rows(log, "ntp", 1, timeout=2)
    assert readings, rows(log)
    within = 0
    for row in readings:
        assert (row["guest_ip"], row["guest_mac"]) == (GUEST, guest_mac)
        offset, error = float(row["offset_s"]), float(row["error_s"])
        assert 0.002 <= error <= 0.009 and abs(offset) < ONE_WAY_LATENESS_LIMIT, row  # 2 ms + spread
        within += abs(offset) <= error
    assert within >= 1, readings
