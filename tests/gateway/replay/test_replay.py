"""gateway.replay.engine: the sans-IO replay engine (clocks, the embedded responder, input selection, accounting)."""

import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import ARP, Ether

from gateway.app.config import Config
from gateway.edges.pcap_reader import CaptureRecord
from gateway.replay.engine import FixedClock, RecordedClock, parse_clock, replay
from plugins.ntp.replay_answerer import PROCESSING_DELAY_NS, REPLAY_PRECISION
from gateway.core.stack import Stack
from plugins.ntp.timestamps import unix_ns_to_ntp

GW_MAC, GUEST_MAC = "f6:16:36:bc:f9:c6", "02:00:00:00:00:03"
TS = 1_714_564_800_000_000_000  # 2024-05-01T12:00:00Z
T1_WIRE = bytes.fromhex("e9dcf1c000000000")  # 2024-05-01T12:00:00Z as the client's transmit timestamp


def ntp_request(transmit=T1_WIRE, version=4, poll=6):
    return bytes([version << 3 | 3, 0, poll, 0xEC]) + bytes(36) + transmit


def request_frame(payload=None, sport=40000, src_mac=GUEST_MAC):
    return bytes(Ether(dst=GW_MAC, src=src_mac) / IP(src="192.168.65.3", dst="192.168.65.1")
                 / UDP(sport=sport, dport=123) / (payload if payload is not None else ntp_request()))


def arp_request():
    return bytes(Ether(dst="ff:ff:ff:ff:ff:ff", src=GUEST_MAC)
                 / ARP(op=1, hwsrc=GUEST_MAC, psrc="192.168.65.3", hwdst="00:00:00:00:00:00", pdst="192.168.65.1"))


def records(*frames, start=TS, step=1_000_000, linktype=1):
    out = []
    for i, frame in enumerate(frames):
        ts, frame = frame if isinstance(frame, tuple) else (start + i * step, frame)
        out.append(CaptureRecord(i + 1, ts, linktype, frame, len(frame)))
    return out


def run(recs, clock=None, config=None):
    config = config or Config()
    return replay(recs, config, clock or RecordedClock())


def ntp_payload(frame):
    return frame[42:]


# -- clocks ----------------------------------------------------------------------------------------

def test_parse_clock():
    assert isinstance(parse_clock("recorded"), RecordedClock)
    fixed = parse_clock("fixed:2024-01-01T00:00:00Z")
    assert fixed.start_ns == 1_704_067_200 * 10**9
    assert fixed.description == "fixed:2024-01-01T00:00:00.000000000Z"
    assert parse_clock("fixed:2024-01-01T01:00:00+01:00").start_ns == fixed.start_ns
    assert parse_clock("fixed:2024-01-01T00:00:00").start_ns == fixed.start_ns  # no zone: UTC
    assert parse_clock("fixed:2024-01-01T00:00:00.123456Z").start_ns == fixed.start_ns + 123_456_000
    for bad in ("now", "fixed:", "fixed:tomorrow", "fixed:1969-12-31T23:59:59Z", "wall"):
        with pytest.raises(ValueError):
            parse_clock(bad)


def test_fixed_clock_starts_at_the_first_record_and_follows_the_capture():
    clock = FixedClock(5_000)
    assert [clock.at(TS), clock.at(TS + 7), clock.at(TS - 3)] == [5_000, 5_007, 4_997]


# -- what the replay sends ----------------------------------------------------------------------------

def test_recorded_clock_reply_timestamps_and_fields():
    result = run(records(request_frame(ntp_request(version=3, poll=10))))
    ((ts, frame),) = result.output
    assert ts == TS + PROCESSING_DELAY_NS
    reply = Ether(frame)
    assert (reply.src, reply.dst, reply[IP].src, reply[IP].dst) == (GW_MAC, GUEST_MAC, "192.168.65.1", "192.168.65.3")
    assert (reply[UDP].sport, reply[UDP].dport) == (123, 40000)
    payload = ntp_payload(frame)
    li_vn_mode, stratum, poll, precision = struct.unpack_from("!BBbb", payload)
    assert (li_vn_mode >> 6, (li_vn_mode >> 3) & 7, li_vn_mode & 7) == (0, 3, 4)
    assert (stratum, poll, precision) == (10, 10, REPLAY_PRECISION)
    originate, receive, transmit = struct.unpack_from("!QQQ", payload, 24)
    assert payload[24:32] == T1_WIRE
    assert receive == unix_ns_to_ntp(TS)
    assert transmit == unix_ns_to_ntp(TS + PROCESSING_DELAY_NS)
    assert struct.unpack_from("!Q", payload, 16)[0] == unix_ns_to_ntp(TS)  # reference: the last refresh


def test_arp_and_ping_answers_carry_the_request_time():
    result = run(records(arp_request()))
    assert [ts for ts, _ in result.output] == [TS]
    assert Ether(result.output[0][1])[ARP].op == 2


def test_fixed_clock_output_does_not_depend_on_when_the_capture_was_taken():
    frames = [arp_request(), request_frame(), request_frame(sport=40001)]
    clock = "fixed:2024-01-01T00:00:00Z"
    a = run(records(*frames), parse_clock(clock)).output
    b = run(records(*frames, start=TS + 86_400 * 10**9 * 400), parse_clock(clock)).output
    assert a == b
    assert a[0][0] == 1_704_067_200 * 10**9


def test_the_responder_configuration_is_served():
    config = Config().replace(ntp={"stratum": 3, "refid": "192.0.2.1"})
    (_, frame), = run(records(request_frame()), config=config).output
    assert ntp_payload(frame)[1] == 3 and ntp_payload(frame)[12:16] == bytes([192, 0, 2, 1])


def test_reference_time_is_refreshed_once_a_second_of_requests():
    recs = records(request_frame(), (TS + 500_000_000, request_frame()), (TS + 2_000_000_000, request_frame()))
    references = [struct.unpack_from("!Q", ntp_payload(f), 16)[0] for _, f in run(recs).output]
    assert references == [unix_ns_to_ntp(TS)] * 2 + [unix_ns_to_ntp(TS + 2_000_000_000)]


# -- what is input, and accounting ---------------------------------------------------------------------

def test_frames_from_the_gateway_and_non_ethernet_and_cut_records_are_skipped():
    gateway_frame = bytes(Ether(dst=GUEST_MAC, src=GW_MAC) / ARP(op=2, hwsrc=GW_MAC, psrc="192.168.65.1",
                                                                   hwdst=GUEST_MAC, pdst="192.168.65.3"))
    recs = records(gateway_frame, request_frame())
    recs.append(CaptureRecord(3, TS, 101, request_frame()[14:], 76))
    recs.append(CaptureRecord(4, TS, 1, request_frame()[:40], 90))
    result = run(recs)
    assert result.frames_read == 4 and result.frames_from_guest == 1 and result.frames_answered == 1
    assert dict(result.skipped) == {"not from a guest (sent by the gateway)": 1,
                                    "link type 101 is not Ethernet (1)": 1,
                                    "cut short by the capture's snap length": 1}


def test_the_recorded_reply_and_the_next_frame_give_t4():
    recorded_reply = bytes(Ether(dst=GUEST_MAC, src=GW_MAC) / IP(src="192.168.65.1", dst="192.168.65.3")
                           / UDP(sport=123, dport=40000) / (bytes([0x24, 10, 6, 0xEC]) + bytes(20) + T1_WIRE + bytes(16)))
    result = run(records(request_frame(), arp_request(), (TS + 3_000_000, recorded_reply)))
    (exchange,) = result.exchanges
    assert (exchange.next_frame_ns, exchange.recorded_reply_ns) == (TS + 1_000_000, TS + 3_000_000)
    assert exchange.reply_capture_ns == TS + PROCESSING_DELAY_NS


def test_idle_flows_expire_as_the_runtime_timer_would_expire_them():
    recs = records(request_frame(), (TS + 61 * 10**9, request_frame()), (TS + 62 * 10**9, request_frame()))
    result = run(recs)
    assert (result.flows_opened, result.flows_expired, result.answered) == (2, 1, 3)


def test_a_stack_bug_is_counted_and_the_replay_goes_on(monkeypatch):
    original = Stack.receive_frame

    def flaky(self, frame, now):
        if frame[6:12] == bytes.fromhex("020000000099"):
            raise IndexError("boom")
        return original(self, frame, now)

    monkeypatch.setattr(Stack, "receive_frame", flaky)
    result = run(records(request_frame(src_mac="02:00:00:00:00:99"), request_frame()))
    assert dict(result.drops) == {"replay: the gateway raised IndexError (a bug)": 1}
    assert result.answered == 1


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.one_of(
    st.binary(max_size=120),
    st.builds(lambda cut, flip, value: _mutate(request_frame(), cut, flip, value),
              st.integers(0, 90), st.integers(0, 89), st.integers(0, 255)),
    st.builds(lambda cut, flip, value: _mutate(arp_request(), cut, flip, value),
              st.integers(0, 60), st.integers(0, 41), st.integers(0, 255)),
), max_size=20))
def test_every_guest_frame_is_answered_or_dropped_with_a_reason(frames):
    result = run(records(*frames))
    assert not [reason for reason in result.drops if reason.startswith("replay:")]
    guest_frames = result.frames_from_guest
    assert result.frames_read == len(frames) == guest_frames + sum(result.skipped.values())
    assert result.frames_answered <= guest_frames <= result.frames_answered + sum(result.drops.values())


def _mutate(frame, cut, flip, value):
    data = bytearray(frame[:max(cut, 0)] if cut < len(frame) else frame)
    if flip < len(data):
        data[flip] = value
    return bytes(data)
