"""Era 2036 end to end: the responder's real socket and `hostclock replay` past 2036-02-07 06:28:16 UTC.

NTP's 32-bit seconds field wraps there (RFC 5905 §6: era 0 ends, era 1 begins with seconds 0).
Only injected clocks go past it - the responder's `clock` (Unix ns) and the replay's fixed
clock - never the host clock. The expected wire bytes are worked out here by hand:
Unix 2085978496 s is NTP era 1, seconds 0.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest
import trio
from scapy.layers.inet import UDP
from scapy.utils import rdpcap

from gateway.app.cli import main
from plugins.ntp.config import NtpConfig
from plugins.ntp.kernel_state import KernelTimeState, LeapPending
from plugins.ntp.server import SntpServer

SYNCED = KernelTimeState(synchronised=True, leap=LeapPending.NONE, maxerror_us=1000, esterror_us=10)
NS = 1_000_000_000
ERA_1_START_UNIX = 2_085_978_496  # 2036-02-07 06:28:16 UTC = 2**32 s after 1900-01-01
REPO = Path(__file__).resolve().parents[3]
NTPDIG = REPO / "pcaps" / "clients" / "ntpdig.pcap"


def wire(seconds: int, fraction: int) -> bytes:
    return struct.pack("!II", seconds, fraction)


async def reply_at(clock_ns: int) -> bytes:
    """The reply of the real responder (a loopback UDP socket) whose clock reads `clock_ns`."""
    server = SntpServer(NtpConfig(), clock=lambda: clock_ns, read_kernel_state=lambda: SYNCED)
    request = bytes([0x23, 0, 6, 0xEC]) + bytes(36) + bytes.fromhex("0102030405060708")
    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            address = await nursery.start(server.run)
            with trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_DGRAM) as client:
                await client.connect(address)
                await client.send(request)
                reply = await client.recv(2048)
            nursery.cancel_scope.cancel()
    assert reply[0] & 7 == 4 and reply[24:32] == request[40:48]
    return reply


@pytest.mark.parametrize("clock_ns, expected", [
    # half a second before the wrap: the last seconds value of era 0
    ((ERA_1_START_UNIX - 1) * NS + NS // 2, wire(0xFFFFFFFF, 0x80000000)),
    # the wrap itself, and a quarter second past 100 s into era 1
    (ERA_1_START_UNIX * NS, wire(0, 0)),
    ((ERA_1_START_UNIX + 100) * NS + NS // 4, wire(100, 0x40000000)),
], ids=["era-0-last-second", "the-wrap", "era-1-plus-100.25-s"])
async def test_the_responder_socket_sends_era_1_timestamps(clock_ns, expected):
    reply = await reply_at(clock_ns)
    assert reply[32:40] == expected  # receive
    assert reply[40:48] == expected  # transmit
    assert reply[16:24] == expected  # reference: the last refresh, at start, from the same clock


def test_replay_with_a_clock_past_2036_writes_era_1_timestamps_and_reads_them_back(tmp_path, capsys):
    out = tmp_path / "out.pcap"
    fixed_unix = 2_087_942_400  # 2036-03-01T00:00:00Z, 1963904 s into era 1
    assert main(["replay", str(NTPDIG), "--clock", "fixed:2036-03-01T00:00:00Z", "--out", str(out), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    (reply,) = [p for p in rdpcap(str(out)) if UDP in p and p[UDP].sport == 123]
    payload = bytes(reply[UDP])[8:reply[UDP].len]
    receive_seconds, receive_fraction, transmit_seconds, _ = struct.unpack("!IIII", payload[32:48])
    assert receive_seconds == transmit_seconds == fixed_unix - ERA_1_START_UNIX == 1_963_904
    assert receive_fraction < 2**32 // 1000  # within the first millisecond of that second
    # ... and the report turns them back into 2036, not 1900
    (exchange,) = report["exchanges"]
    assert fixed_unix * NS <= exchange["t2_ns"] <= exchange["t3_ns"] < (fixed_unix + 1) * NS
