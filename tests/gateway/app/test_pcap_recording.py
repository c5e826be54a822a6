"""`hostclock run --pcap FILE`: the runtime records both directions of the guest's link, replayable."""

import time

import trio
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import ARP, Ether

from gateway.app.config import Config
from gateway.edges.pcap_reader import open_capture
from gateway.replay.engine import RecordedClock, replay
from gateway.app.runtime import Gateway

GW_MAC, GUEST_MAC = "f6:16:36:bc:f9:c6", "02:00:00:00:00:03"
ARP_REQUEST = bytes(Ether(dst="ff:ff:ff:ff:ff:ff", src=GUEST_MAC)
                    / ARP(op=1, hwsrc=GUEST_MAC, psrc="192.168.65.3", hwdst="00:00:00:00:00:00", pdst="192.168.65.1"))
NTP_REQUEST = bytes(Ether(dst=GW_MAC, src=GUEST_MAC) / IP(src="192.168.65.3", dst="192.168.65.1")
                    / UDP(sport=40000, dport=123) / (bytes([0x23, 0, 6, 0xEC]) + bytes(36) + bytes.fromhex("5a3c9e01d27f44b8")))


class FakeLink:
    description = "fake link"
    is_open = True

    def __init__(self):
        self.sent = []

    def send_frame(self, frame):
        self.sent.append(frame)


class FakeTransport:
    """A transport whose guest is the test: it calls `on_frame` itself."""

    description = "fake transport"

    def __init__(self):
        self.link = FakeLink()
        self.on_frame = None

    async def run(self, on_frame, *, task_status=trio.TASK_STATUS_IGNORED):
        self.on_frame = on_frame
        task_status.started()
        await trio.sleep_forever()


async def _run_gateway(pcap, frames):
    transport = FakeTransport()
    gateway = Gateway(Config(), transport, pcap=pcap)
    async with trio.open_nursery() as nursery:
        await nursery.start(gateway.run)
        for frame in frames:
            transport.on_frame(frame, transport.link)
        with trio.fail_after(10):
            while len(transport.link.sent) < len(frames):  # the NTP reply comes back from the responder
                await trio.sleep(0.01)
        nursery.cancel_scope.cancel()
    return transport.link.sent


async def test_both_directions_are_recorded_with_the_wall_clock(tmp_path):
    path = tmp_path / "live.pcap"
    before = time.time_ns()
    sent = await _run_gateway(str(path), [ARP_REQUEST, NTP_REQUEST])
    after = time.time_ns()
    records = list(open_capture(str(path)).records())
    assert [r.data for r in records] == [ARP_REQUEST, sent[0], NTP_REQUEST, sent[1]]
    stamps = [r.ts_ns for r in records]
    assert stamps == sorted(stamps) and before <= stamps[0] and stamps[-1] <= after


async def test_the_recording_replays_like_the_live_run(tmp_path):
    path = tmp_path / "live.pcap"
    sent = await _run_gateway(str(path), [ARP_REQUEST, NTP_REQUEST])
    config = Config()
    result = replay(open_capture(str(path)).records(), config, RecordedClock())
    assert (result.frames_from_guest, result.frames_answered, dict(result.drops)) == (2, 2, {})
    assert dict(result.skipped) == {"not from a guest (sent by the gateway)": 2}
    (exchange,) = result.exchanges
    assert exchange.recorded_reply_ns is not None  # T4: the live reply's recorded time
    replayed, live = result.output[1][1], sent[1]
    assert replayed[:40] == live[:40]  # Ethernet, IPv4 and UDP headers up to the checksum
    ntp_replayed, ntp_live = replayed[42:], live[42:]
    assert ntp_replayed[:3] == ntp_live[:3]  # LI/version/mode, stratum, poll
    assert ntp_replayed[12:16] == ntp_live[12:16]  # refid
    assert ntp_replayed[24:32] == ntp_live[24:32] == NTP_REQUEST[-8:]  # originate: the client's transmit


async def test_without_pcap_nothing_is_recorded(tmp_path):
    sent = await _run_gateway(None, [ARP_REQUEST])
    assert len(sent) == 1 and not list(tmp_path.iterdir())
