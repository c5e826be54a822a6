"""The residence-time correction through the runtime: the edges' timestamps (Tr, Ts, Tu, Tw) end up in
the reply the guest gets, T2' = T2 - (Ts - Tr) and T3' = T3 + (Tw - Tu); a MAC'd reply, or any reply
with the correction off, reaches the guest byte for byte as the server sent it.

The gateway's monotonic clock is scripted (Ts, the reply's arrival, Tw), the transport says when it
read the request (Tr), and the kernel's receive timestamp of the reply (Tu) is real: it lies between
the test server's clock read just before its `sendto` and the guest's receipt of the reply.
"""

import struct
import time
from collections import Counter

import trio
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether
from transport_harness import GATEWAY_IP, GATEWAY_MAC, guest_ip, guest_mac

import gateway.app.runtime as runtime_module
import gateway.edges.upstream as upstream_module
from gateway.app.config import Config
from gateway.app.runtime import Gateway
from plugins.ntp.residence import NEGATIVE_RESIDENCE, NOT_PLAIN
from plugins.ntp.time_service import NO_TIMED_REQUEST
from plugins.ntp.timestamps import ntp_to_unix_ns, unix_ns_to_ntp

TIMEOUT = 10
MAC, IP_ = guest_mac(1), guest_ip(1)
TR = 5_000_000_000           # the transport read the request's frame
TS = TR + 250_000            # handed upstream 250 us later
ARRIVAL_READ = TS + 900_000  # the gateway's clock when it took the reply off the flow socket
TW = ARRIVAL_READ + 70_000   # just before the reply frame is written
T2_NS = 1_764_633_600_000_000_000
T3_NS = T2_NS + 20_000


class Link:
    description = "memory"

    def __init__(self) -> None:
        self.drops: Counter[str] = Counter()
        self.sent: list[bytes] = []

    @property
    def is_open(self) -> bool:
        return True

    def send_frame(self, frame: bytes) -> None:
        self.sent.append(frame)


class TimedTransport:
    """Frames the test injects, handed over with the read time the test gives (Tr)."""

    description = "memory"

    def __init__(self) -> None:
        self.drops: Counter[str] = Counter()
        self.link = Link()
        self._send, self._receive = trio.open_memory_channel(float("inf"))

    def inject(self, frame: bytes, read_ns: int) -> None:
        self._send.send_nowait((frame, read_ns))

    async def run(self, on_frame, *, task_status=trio.TASK_STATUS_IGNORED):
        task_status.started()
        async for frame, read_ns in self._receive:
            on_frame(frame, self.link, read_ns)


def scripted(monkeypatch, module, values):
    calls = iter(values)
    monkeypatch.setattr(module, "monotonic_ns", lambda: next(calls))


def request_frame(tail: bytes = b"") -> bytes:
    """A guest's SNTP request (version 4, mode 3, a random-looking transmit timestamp), `tail` after it."""
    payload = bytes([0x23, 0, 6, 0xEC]) + bytes(36) + b"\x9e" * 8 + tail
    return bytes(Ether(src=MAC, dst=GATEWAY_MAC) / IP(src=IP_, dst=GATEWAY_IP) / UDP(sport=40000, dport=123) / payload)


def server_reply(request: bytes, tail: bytes = b"", originate: bytes | None = None) -> bytes:
    """Mode 4, stratum 2, originate = the request's transmit timestamp, T2/T3 as given, `tail` after."""
    return (bytes([0x24, 2, 6, 0xEC]) + bytes(20) + (originate or request[40:48])
            + struct.pack("!QQ", unix_ns_to_ntp(T2_NS), unix_ns_to_ntp(T3_NS)) + tail)


async def exchange(frame: bytes, read_ns: int, *, reply_tail: bytes = b"", originate: bytes | None = None,
                   **time_config):
    """`frame` through a gateway forwarding to a loopback socket the test answers. Returns the frame
    the guest got, the payload the server sent, the real-time window around the reply, the counters."""
    transport = TimedTransport()
    with trio.fail_after(TIMEOUT):
        sock = trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_DGRAM)
        with sock:
            await sock.bind(("127.0.0.1", 0))
            config = Config().replace(ntp={"upstream": f"127.0.0.1:{sock.getsockname()[1]}", **time_config})
            async with trio.open_nursery() as nursery:
                gateway = Gateway(config, transport)
                await nursery.start(gateway.run)
                transport.inject(frame, read_ns)
                request, address = await sock.recvfrom(200)
                sent = server_reply(request, reply_tail, originate)
                before_send = time.time_ns()
                await sock.sendto(sent, address)
                while not transport.link.sent:
                    await trio.sleep(0.001)
                after_receipt = time.time_ns()
                nursery.cancel_scope.cancel()
    (reply,) = transport.link.sent
    return reply, sent, (before_send, after_receipt), gateway.counters()


def payload_of(frame: bytes) -> bytes:
    return bytes(Ether(frame)[UDP].payload)


def timestamps_ns(payload: bytes) -> tuple[int, int]:
    receive, transmit = struct.unpack_from("!QQ", payload, 32)
    return ntp_to_unix_ns(receive, T2_NS), ntp_to_unix_ns(transmit, T2_NS)


async def test_the_reply_carries_the_gateways_edge_timestamps(monkeypatch):
    scripted(monkeypatch, upstream_module, [TS, ARRIVAL_READ])
    scripted(monkeypatch, runtime_module, [TW])
    frame, sent, (before_send, after_receipt), counters = await exchange(request_frame(), TR)
    got = payload_of(frame)
    receive, transmit = timestamps_ns(got)
    assert abs(receive - (T2_NS - (TS - TR))) <= 1  # T2' = T2 - (Ts - Tr), exactly
    # T3' = T3 + (Tw - Tu), Tu the kernel's: (the arrival read - Tu) was taken on the real clock,
    # so the residence lies between Tw - the arrival read and that plus the real reply window
    least = TW - ARRIVAL_READ
    assert least - 1 <= transmit - T3_NS <= least + (after_receipt - before_send) + 1
    assert got[:32] == sent[:32]  # header and originate untouched
    assert counters["ntp_residence_corrected"] == 1 and not counters["ntp_residence_uncorrected"]
    packet = Ether(frame)
    checksum = packet[UDP].chksum
    del packet[UDP].chksum
    assert Ether(bytes(packet))[UDP].chksum == checksum  # recomputed after the rewrite


async def test_a_reply_with_a_mac_passes_untouched():
    mac = struct.pack("!I", 7) + bytes(range(16))  # key ID 7 and a 16-byte digest (RFC 5905 §7.3)
    frame, sent, _, counters = await exchange(request_frame(tail=mac), time.monotonic_ns(), reply_tail=mac)
    assert len(sent) == 68 and payload_of(frame) == sent
    assert counters["ntp_residence_corrected"] == 0
    assert counters["ntp_residence_uncorrected"] == {NOT_PLAIN: 1}


async def test_with_the_correction_off_the_reply_is_the_servers():
    frame, sent, _, counters = await exchange(request_frame(), time.monotonic_ns(), residence_correction=False)
    assert payload_of(frame) == sent
    assert counters["ntp_residence_corrected"] == 0 and not counters["ntp_residence_uncorrected"]


async def test_a_reply_to_no_timed_request_passes_uncorrected():
    frame, sent, _, counters = await exchange(request_frame(), time.monotonic_ns(), originate=b"\x01" * 8)
    assert payload_of(frame) == sent
    assert counters["ntp_residence_uncorrected"] == {NO_TIMED_REQUEST: 1}


async def test_a_request_timed_before_it_was_read_clock_stepped_passes_uncorrected(monkeypatch):
    scripted(monkeypatch, upstream_module, [TR - 1_000, ARRIVAL_READ])  # Ts before Tr
    frame, sent, _, counters = await exchange(request_frame(), TR)
    assert payload_of(frame) == sent
    assert counters["ntp_residence_uncorrected"] == {NEGATIVE_RESIDENCE: 1}
