"""The runtime watching guest clocks, on trio's autojump clock: probes on each guest's own link, readings
logged and written to the CSV, no wake-ups with nothing to probe, a log that cannot be written."""

from __future__ import annotations

import logging
from collections import Counter
from contextlib import asynccontextmanager

import pytest
import trio
from scapy.layers.inet import ICMP, IP
from scapy.layers.l2 import ARP, Ether

from gateway.app.config import Config
from gateway.app.runtime import Gateway
from transport_harness import GATEWAY_IP, GATEWAY_MAC, arp_request, guest_ip, guest_mac

S = 1_000_000_000
BASE_NS = 1_796_126_400 * S  # the host's Unix time at trio time 0: 2026-12-01 12:00:00 UTC
MAC_A, IP_A = guest_mac(1), guest_ip(1)
MAC_B, IP_B = guest_mac(2), guest_ip(2)
HEADER = "time_unix_s,guest_ip,guest_mac,offset_s,error_s,source"


@pytest.fixture(autouse=True)
def _info_logs(caplog):
    caplog.set_level(logging.INFO, logger="hostclock")


def host_wall_ns() -> int:
    return BASE_NS + round(trio.current_time() * S)


class GuestLink:
    """A link to one simulated guest whose clock is the host's plus `offset_ns`: it answers ICMP timestamp
    requests as Linux's kernel does (or not, if `answers` is False), through the transport, at once."""

    def __init__(self, transport: "MemoryTransport", name: str, mac: str, ip: str, offset_ns: int = 0) -> None:
        self.transport, self.description = transport, f"memory {name}"
        self.mac, self.ip, self.offset_ns = mac, ip, offset_ns
        self.answers = True
        self.sent: list[Ether] = []
        self.is_open = True

    def send_frame(self, frame: bytes) -> None:
        packet = Ether(frame)
        self.sent.append(packet)
        if ICMP in packet and packet[ICMP].type == 13 and self.answers:
            assert (packet.dst, packet[IP].dst) == (self.mac, self.ip)  # probed at its own MAC and address
            ms = (host_wall_ns() + self.offset_ns) // 1_000_000 % 86_400_000
            reply = (Ether(src=self.mac, dst=GATEWAY_MAC) / IP(src=self.ip, dst=GATEWAY_IP)
                     / ICMP(type=14, id=packet[ICMP].id, seq=packet[ICMP].seq, ts_ori=packet[ICMP].ts_ori,
                            ts_rx=ms, ts_tx=ms))
            self.transport.inject(bytes(reply), self)

    def probes(self) -> list[Ether]:
        return [p for p in self.sent if ICMP in p and p[ICMP].type == 13]


class MemoryTransport:
    description = "memory"

    def __init__(self) -> None:
        self.drops: Counter[str] = Counter()
        self._send, self._receive = trio.open_memory_channel(float("inf"))

    def inject(self, frame: bytes, link) -> None:
        self._send.send_nowait((frame, link))

    async def run(self, on_frame, *, task_status=trio.TASK_STATUS_IGNORED):
        task_status.started()
        async for frame, link in self._receive:
            on_frame(frame, link)


@asynccontextmanager
async def serving(transport, interval=10.0, threshold=0.1, **kwargs):
    # an upstream address nobody answers: no host server (a thread) to start under the autojump clock
    config = Config().replace(guest_clock={"interval": interval, "threshold": threshold},
                              ntp={"upstream": "127.0.0.1:9"})
    async with trio.open_nursery() as nursery:
        gateway = Gateway(config, transport, wall_clock=host_wall_ns, **kwargs)
        gateway.test_ready_line = await nursery.start(gateway.run)
        yield gateway
        nursery.cancel_scope.cancel()


def csv_rows(path) -> list[list[str]]:
    lines = path.read_text().splitlines()
    assert lines[0] == HEADER
    return [line.split(",") for line in lines[1:]]


def messages(caplog) -> list[str]:
    return [record.getMessage() for record in caplog.records]


async def test_each_guest_is_read_on_its_own_link_logged_and_written_to_the_csv(autojump_clock, tmp_path, caplog):
    transport = MemoryTransport()
    behind = GuestLink(transport, "a", MAC_A, IP_A, offset_ns=-1_482_000_000)
    on_time = GuestLink(transport, "b", MAC_B, IP_B)
    log_path = tmp_path / "clocks.csv"
    async with serving(transport, guest_clock_log=str(log_path)) as gateway:
        assert "watching guest clocks every 10 s" in gateway.test_ready_line
        transport.inject(arp_request(MAC_A, IP_A), behind)
        transport.inject(arp_request(MAC_B, IP_B), on_time)
        await trio.sleep(25)  # rounds at 0.5, 10.5 and 20.5 s
        rows = csv_rows(log_path)  # flushed per row: readable while the gateway runs
        figures = gateway.counters()["guest_clock"]
    assert len(rows) == 6
    for row in rows:
        t, ip, mac, offset, error, source = row
        assert source == "icmp" and float(error) <= 0.0006
        expected = -1.482 if ip == IP_A else 0.0
        assert mac == {IP_A: MAC_A, IP_B: MAC_B}[ip]
        assert abs(float(offset) - expected) <= float(error) and float(error) >= 0.0005
        assert BASE_NS / S < float(t) < BASE_NS / S + 25
    assert len(behind.probes()) == len(on_time.probes()) == 12
    assert figures["probes_sent"] == 24 and figures["probes_answered"] == 24 and figures["replies_dropped"] == 0
    assert figures["guests"][IP_A]["offset_s"] == pytest.approx(-1.482, abs=0.0006)
    assert figures["guests"][IP_A]["source"] == "icmp"
    lines = messages(caplog)
    assert sum(f"guest {IP_A} ({MAC_A}) clock 1.482 s behind the host" in line for line in lines) == 1
    assert sum(f"guest {IP_B} ({MAC_B}) clock 0.000 s" in line for line in lines) == 1  # its first reading


async def test_the_log_says_when_a_guest_goes_out_of_step_and_when_it_is_back(autojump_clock, caplog):
    transport = MemoryTransport()
    guest = GuestLink(transport, "a", MAC_A, IP_A)
    async with serving(transport, interval=5.0, threshold=0.1):
        transport.inject(arp_request(MAC_A, IP_A), guest)
        await trio.sleep(3)
        guest.offset_ns = 250_000_000  # ahead by 250 ms
        await trio.sleep(5)
        guest.offset_ns = 70_000_000  # within the threshold, not within half of it: still out
        await trio.sleep(5)
        guest.offset_ns = -20_000_000
        await trio.sleep(5)
    lines = [line for line in messages(caplog) if line.startswith(f"guest {IP_A}")]
    assert len(lines) == 3, lines
    assert "clock 0.000 s ahead of the host" in lines[0]
    assert "clock 0.250 s ahead of the host" in lines[1]
    assert "clock back within 0.05 s of the host: 0.020 s behind the host" in lines[2]


async def test_nothing_to_probe_means_no_wake_ups(autojump_clock, monkeypatch):
    transport = MemoryTransport()
    silent = GuestLink(transport, "a", MAC_A, IP_A)
    silent.answers = False
    async with serving(transport) as gateway:
        await trio.sleep(1)  # the watcher's task has started and read its (empty) timer
        calls = Counter()
        watcher = gateway.guest_clock
        for name in ("next_timer", "on_timer"):  # the watcher task's every wake-up calls next_timer
            def counting(*args, _original=getattr(watcher, name), _name=name):
                calls[_name] += 1
                return _original(*args)
            monkeypatch.setattr(watcher, name, counting)
        await trio.sleep(3600)  # no guest: the watcher's task sleeps the hour through
        assert calls == {}
        transport.inject(arp_request(MAC_A, IP_A), silent)
        await trio.sleep(3600)  # a guest that never answers: three rounds, then given up
        woken = dict(calls)
        assert len(silent.probes()) == 12 and woken["next_timer"] <= 2 * 3 * (4 + 1) + 2  # read on waking and when due
        await trio.sleep(86_400)
        assert calls == woken and len(silent.probes()) == 12
        assert gateway.counters()["guest_clock"]["guests"][IP_A]["given_up"]


async def test_a_probe_for_a_closed_link_is_dropped_and_its_guests_forgotten(autojump_clock):
    transport = MemoryTransport()
    guest = GuestLink(transport, "a", MAC_A, IP_A)
    async with serving(transport) as gateway:
        transport.inject(arp_request(MAC_A, IP_A), guest)
        await trio.sleep(0.1)
        guest.is_open = False
        await trio.sleep(5)
        assert guest.sent == [p for p in guest.sent if ARP in p]  # no probe went to a closed link
        assert gateway.counters()["drops"]["gateway: a guest clock probe's link has closed"] == 1
        assert gateway.guest_clock.guests() == []


async def test_a_guest_clock_log_that_cannot_be_written_stops_with_one_line_and_serving_goes_on(
        autojump_clock, tmp_path, caplog):
    transport = MemoryTransport()
    guest = GuestLink(transport, "a", MAC_A, IP_A)
    async with serving(transport, guest_clock_log=str(tmp_path / "clocks.csv")) as gateway:
        gateway._clock_log._file = open("/dev/full", "w")  # the disk fills up
        transport.inject(arp_request(MAC_A, IP_A), guest)
        await trio.sleep(35)
        assert gateway._clock_log is None
        assert gateway.counters()["guest_clock"]["readings"] == 4  # reading goes on
        assert len(guest.probes()) == 16
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1
    assert f"--guest-clock-log {tmp_path / 'clocks.csv'}: cannot write (No space left on device); " \
           "the log stopped after 0 rows, serving goes on" in warnings[0]


async def test_a_guest_clock_log_needs_watching():
    from gateway.app.config import ConfigError

    with pytest.raises(ConfigError, match="guest clock log needs guest clocks watched"):
        Gateway(Config(), MemoryTransport(), guest_clock_log="x.csv")
