"""Real SNTP clients (ntpdig -j, chronyd -Q, ntplib) against SntpServer on loopback, in query mode only.

SAFETY: the clients only query: ntpdig in JSON query mode (-j), and
chronyd -Q ("print the offset, make no corrections"). The server runs in a
thread with its own trio loop, so the blocking clients run concurrently.
"""

from __future__ import annotations

import contextlib
import json
import queue
import secrets
import shutil
import statistics
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest
import trio

from plugins.ntp.config import NtpConfig
from realpeers import clients
from plugins.ntp.kernel_state import KernelTimeState, LeapPending
from plugins.ntp.server import SntpServer

pytestmark = pytest.mark.clients

UNSYNCED = KernelTimeState(synchronised=False, leap=LeapPending.NONE, maxerror_us=16_000_000, esterror_us=16_000_000)
#: ntpdig has no port option (it always asks port 123), so its server gets a loopback address
#: of its own on port 123 (all of 127.0.0.0/8 is loopback), drawn at random for each run so
#: that neither a real server on 127.0.0.1:123 nor another run of these tests holds it
NTPDIG_ADDRESS = f"127.{secrets.randbelow(254) + 1}.{secrets.randbelow(256)}.{secrets.randbelow(253) + 2}"
CLIENT_TIMEOUT = 20
NS = 1_000_000_000
FAKE_OFFSET_NS = 1000 * NS + NS // 2  # 1000.5 s ahead


@contextlib.contextmanager
def server_in_thread(config: NtpConfig, **kwargs):
    """Run SntpServer in a thread (its own trio.run); yield (server, (host, port)); stop it after."""
    started: queue.Queue = queue.Queue()

    async def serve() -> None:
        server = SntpServer(config, **kwargs)
        async with trio.open_nursery() as nursery:
            address = await nursery.start(server.run)
            started.put((server, address, trio.lowlevel.current_trio_token(), nursery.cancel_scope))

    def thread_main() -> None:
        try:
            trio.run(serve)
        except BaseException as e:  # handed to the test thread, which raises it
            started.put(e)

    thread = threading.Thread(target=thread_main, name="sntp-server", daemon=True)
    thread.start()
    item = started.get(timeout=10)
    if isinstance(item, BaseException):
        raise item
    server, address, token, cancel_scope = item
    try:
        yield server, address
    finally:
        trio.from_thread.run_sync(cancel_scope.cancel, trio_token=token)
        thread.join(timeout=10)
        assert not thread.is_alive(), "the server thread did not stop"


def ntpdig_server(**kwargs):
    """A server on NTPDIG_ADDRESS:123 (skip if that cannot be bound)."""
    if shutil.which("ntpdig") is None:
        pytest.skip("ntpdig is not installed (apt-get install ntpsec-ntpdig)")
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        probe.bind((NTPDIG_ADDRESS, 123))
    except OSError as e:
        pytest.skip(f"ntpdig can only ask port 123 and {NTPDIG_ADDRESS}:123 cannot be bound here: {e.strerror}")
    finally:
        probe.close()
    return server_in_thread(NtpConfig(listen=f"{NTPDIG_ADDRESS}:123", **kwargs.pop("config", {})), **kwargs)


def run_ntpdig() -> subprocess.CompletedProcess:
    # -j: JSON report only; never -s or -S (those set the clock)
    return subprocess.run(["ntpdig", "-j", "-t", "5", NTPDIG_ADDRESS], capture_output=True, text=True,
                          timeout=CLIENT_TIMEOUT)


def ntpdig_offset(true_offset: float = 0.0) -> float:
    """ntpdig's offset, checked to be within its own error bound (its synchronisation distance,
    "precision" in the JSON: half the round trip and the dispersion) of `true_offset`."""
    result = run_ntpdig()
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["stratum"] == 10 and report["leap"] == "no-leap"
    assert abs(report["offset"] - true_offset) <= report["precision"] + 5e-6 and report["precision"] < 0.05, report
    return report["offset"]


def chronyd_offset(tmp_path: Path, port: int, true_offset: float = 0.0) -> float:
    """chronyd -Q's offset (query only: "System clock wrong by X seconds (ignored)"), checked to be
    within half its measured round trip of `true_offset`."""
    if shutil.which("chronyd") is None:
        pytest.skip("chronyd is not installed (apt-get install chrony)")
    result = clients.chronyd_query(None, "127.0.0.1", port=port, timeout=10)
    assert result.within_its_error_bound(true_offset) and result.delay < 0.1, result.raw
    return result.offset


def ntplib_offset(port: int) -> float:
    ntplib = pytest.importorskip("ntplib")
    return ntplib.NTPClient().request("127.0.0.1", port=port, version=4, timeout=5).offset


# A single exchange of ntpdig or chronyd is held to the client's own error bound (half the
# round trip): one clock on both ends makes that exact, so it is tight when the machine is
# idle (~0.1 ms) and never flakes when it is busy; the medians of many exchanges (ntplib here,
# tests/gateway/app/test_end_to_end_tap.py) are held to 300 us.


def test_ntpdig_sees_the_host_clock():
    with ntpdig_server() as (server, _):
        offset = ntpdig_offset()
        assert server.answered == 1
    print(f"ntpdig offset {offset:+.6f} s")


def test_chronyd_sees_the_host_clock(tmp_path):
    with server_in_thread(NtpConfig()) as (server, (_, port)):
        offset = chronyd_offset(tmp_path, port)
        assert server.answered >= 1 and not server.drops
    print(f"chronyd offset {offset:+.6f} s")


def test_ntplib_sees_the_host_clock():
    with server_in_thread(NtpConfig()) as (server, (_, port)):
        offsets = [ntplib_offset(port) for _ in range(21)]
        assert server.answered == 21
    print("ntplib offsets " + " ".join(f"{o:+.6f}" for o in offsets) + " s")
    # one clock: the median of 21 within 300 us (tens of us unloaded; a few exchanges delayed on
    # one leg by a busy machine do not move the median)
    assert abs(statistics.median(offsets)) < 300e-6, offsets


def shifted_clock():
    return time.time_ns() + FAKE_OFFSET_NS


def test_all_clients_follow_a_served_clock_that_is_1000_5_s_ahead(tmp_path):
    # proves the clients take their time from our transmit/receive timestamps, not from elsewhere
    with server_in_thread(NtpConfig(), clock=shifted_clock) as (_, (_, port)):
        result = clients.ntplib_query(None, "127.0.0.1", port=port)
        assert result.within_its_error_bound(1000.5), result.raw
        chronyd_offset(tmp_path, port, true_offset=1000.5)  # "wrong by +X": the server is ahead
    with ntpdig_server(clock=shifted_clock):
        ntpdig_offset(true_offset=1000.5)


def test_ntpdig_refuses_an_honestly_unsynchronised_server():
    with ntpdig_server(config={"report_unsync": True}, read_kernel_state=lambda: UNSYNCED) as (server, _):
        result = run_ntpdig()
        assert server.answered == 1  # it was answered, with LI=3 stratum 0 ...
    assert result.returncode != 0 or not result.stdout.strip()  # ... and ntpdig would not use it
    assert "stratum 0" in result.stderr or "leap not in sync" in result.stderr, result.stderr
