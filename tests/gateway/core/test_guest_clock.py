"""The sans-IO guest clock watcher: probes checked byte for byte and against scapy, readings against a
simulated guest clock, every dropped reply counted by reason, and the probes a silent guest costs."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from hypothesis import given, settings, strategies as st
from scapy.layers.inet import ICMP, IP
from scapy.layers.l2 import Ether

from gateway.core import guest_clock as gc
from gateway.core.addresses import parse_ipv4, parse_mac
from gateway.core.guest_clock import GuestClockReading, GuestClockWatcher
from gateway.core.service import GuestAddress
from guest_frames import GATEWAY_IP, GATEWAY_MAC, GUEST_IP, GUEST_MAC

MS = 1_000_000
S = 1_000_000_000
DAY = 86_400 * S
GW_MAC, GW_IP = parse_mac(GATEWAY_MAC), parse_ipv4(GATEWAY_IP)
MAC, IPADDR = parse_mac(GUEST_MAC), parse_ipv4(GUEST_IP)
LINK = "link-0"
#: the host's wall clock at monotonic 0: 2026-12-01 12:00:00 UTC
NOON = int(datetime(2026, 12, 1, 12, tzinfo=timezone.utc).timestamp()) * S


def make_watcher(**kwargs) -> GuestClockWatcher:
    kwargs.setdefault("interval", 10.0)
    return GuestClockWatcher(GW_MAC, GW_IP, **kwargs)


class SimulatedGuest:
    """A guest whose clock is the host's plus `offset_ns`, answering timestamp probes as Linux does
    (RFC 792 type 14: identifier, sequence and originate echoed; receive and transmit its clock's
    milliseconds since midnight UT, truncated), the replies built by scapy."""

    def __init__(self, offset_ns: int, *, out_ns: int = 100_000, back_ns: int = 100_000, hold_ns: int = 0,
                 mac: bytes = MAC, ip: bytes = IPADDR, link=LINK) -> None:
        self.offset_ns, self.out_ns, self.back_ns, self.hold_ns = offset_ns, out_ns, back_ns, hold_ns
        self.mac, self.ip, self.link = mac, ip, link
        self.received: list[Ether] = []

    def answer(self, frame: bytes, sent_wall_ns: int) -> tuple[bytes, int]:
        """The reply's ICMP message and the host's wall time of its arrival."""
        probe = Ether(frame)
        self.received.append(probe)
        guest_rx = sent_wall_ns + self.out_ns + self.offset_ns
        guest_tx = guest_rx + self.hold_ns
        reply = ICMP(type=14, code=0, id=probe[ICMP].id, seq=probe[ICMP].seq, ts_ori=probe[ICMP].ts_ori,
                     ts_rx=(guest_rx // MS) % 86_400_000, ts_tx=(guest_tx // MS) % 86_400_000)
        arrival = sent_wall_ns + self.out_ns + self.hold_ns + self.back_ns
        return bytes(reply), arrival


def run_rounds(watcher, guest, *, start=0.0, until=30.0, wall0=NOON, answer=None):
    """Drive the watcher's timer from `start` to `until` (monotonic s; host wall = wall0 + now), answering
    every probe at once through `guest` (or `answer(frame, seq) -> bool` to decide). Returns the offsets."""
    offsets = []
    now = start
    for _ in range(10_000):
        deadline = watcher.next_timer()
        if deadline is None or deadline > until:
            break
        now = max(now, deadline)
        wall = wall0 + round(now * S)
        for link, frame in watcher.on_timer(now, wall):
            assert link == guest.link
            if answer is not None and not answer(frame):
                continue
            message, arrival = guest.answer(frame, wall)
            watcher.receive_timestamp_reply(guest.mac, guest.ip, message, guest.link,
                                            now + (arrival - wall) / S, arrival)
        offsets += watcher.take_offsets()
    return offsets


# -- the probe frame -------------------------------------------------------------------------

def test_probe_frame_golden_bytes_and_scapy_dissection():
    watcher = make_watcher()
    watcher.saw_guest(MAC, IPADDR, LINK, now=0.0)
    assert watcher.next_timer() == 0.5
    wall = NOON + 123_456_789  # 12:00:00.123456789 UT: 43 200 123 ms since midnight
    ((link, frame),) = watcher.on_timer(0.5, wall)
    assert link == LINK
    assert frame.hex() == (
        "525400123456" "f61636bcf9c6" "0800"                                   # Ethernet
        "4500002800004000400137 80".replace(" ", "") + "c0a84101c0a84103"      # IPv4, DF, TTL 64, ICMP
        "0d00" "598d" "6863" "0001" "02932e7b" "00000000" "00000000"           # type 13: id "hc", seq 1
        + "00" * 6)                                                            # padding to 60 bytes
    parsed = Ether(frame)
    assert (parsed.dst, parsed.src, parsed.type) == (GUEST_MAC, GATEWAY_MAC, 0x0800)
    ip = parsed[IP]
    assert (ip.src, ip.dst, ip.proto, ip.len, ip.flags.DF) == (GATEWAY_IP, GUEST_IP, 1, 40, True)
    assert (ip[ICMP].type, ip[ICMP].code, ip[ICMP].ts_ori) == (13, 0, 43_200_123)
    rebuilt = IP(src=ip.src, dst=ip.dst, id=0, flags="DF", ttl=64, proto=1) / ICMP(
        type=13, id=0x6863, seq=1, ts_ori=43_200_123, ts_rx=0, ts_tx=0)
    assert bytes(rebuilt) == bytes(ip)[:40]  # scapy computes the same header and ICMP checksums


# -- readings ---------------------------------------------------------------------------------

def test_a_guest_on_the_host_clock_reads_zero_within_its_error():
    watcher = make_watcher()
    guest = SimulatedGuest(0)
    watcher.saw_guest(MAC, IPADDR, LINK, now=0.0)
    offsets = run_rounds(watcher, guest, until=25.0)
    assert len(offsets) == 3  # at 0.5, 10.5 and 20.5 s
    for offset in offsets:
        assert abs(offset.offset_s) <= offset.error_s
        assert offset.error_s == pytest.approx(0.0006, abs=1e-6)  # half the 0.2 ms round trip + 0.5 ms
        assert (offset.guest_ip, offset.guest_mac, offset.source) == (GUEST_IP, GUEST_MAC, "icmp")
        assert offset.crossing is None
    assert len(guest.received) == 12 and watcher.probes_answered == 12
    assert [p[ICMP].seq for p in guest.received] == list(range(1, 13))


def test_a_guest_behind_reads_its_offset_and_the_sign_is_guest_minus_host():
    watcher = make_watcher()
    guest = SimulatedGuest(-1_482_300_000)
    watcher.saw_guest(MAC, IPADDR, LINK, now=0.0)
    (offset,) = run_rounds(watcher, guest, until=5.0)
    assert offset.offset_s == pytest.approx(-1.4823, abs=offset.error_s)
    assert offset.crossing == "out"


def test_averaging_four_probes_removes_most_of_the_millisecond_truncation():
    # the guest is 0.1 ms ahead: one probe, by its truncated milliseconds, reads up to 0.5 ms off;
    # four probes 10.25 ms apart meet the guest's millisecond at four phases a quarter apart
    for phase_ns in range(0, MS, 50_000):
        watcher = make_watcher(probe_spacing=0.01025)
        guest = SimulatedGuest(100_000)
        watcher.saw_guest(MAC, IPADDR, LINK, now=0.0)
        (offset,) = run_rounds(watcher, guest, until=5.0, wall0=NOON + phase_ns)
        assert offset.offset_s == pytest.approx(0.0001, abs=0.000126), phase_ns
        single = make_watcher(probes_per_reading=1)
        single.saw_guest(MAC, IPADDR, LINK, now=0.0)
        (one,) = run_rounds(single, guest, until=5.0, wall0=NOON + phase_ns)
        assert abs(one.offset_s - 0.0001) <= one.error_s


def test_the_answers_with_the_shortest_round_trip_are_used():
    watcher = make_watcher()
    guest = SimulatedGuest(0)
    slow = {"n": 0}
    real_answer = guest.answer

    def answer(frame, wall):
        slow["n"] += 1
        guest.out_ns = 40 * MS if slow["n"] == 2 else 100_000  # the second probe queued 40 ms on its way out
        return real_answer(frame, wall)

    guest.answer = answer
    watcher.saw_guest(MAC, IPADDR, LINK, now=0.0)
    (offset,) = run_rounds(watcher, guest, until=5.0)
    assert abs(offset.offset_s) <= 0.0006 and offset.error_s == pytest.approx(0.0006, abs=1e-6)


@pytest.mark.parametrize("guest_offset_ms", [+5, -5, +3_000, -3_000])
def test_a_probe_across_midnight_ut_reads_as_any_other(guest_offset_ms):
    midnight = int(datetime(2026, 12, 2, tzinfo=timezone.utc).timestamp()) * S
    watcher = make_watcher()
    guest = SimulatedGuest(guest_offset_ms * MS, out_ns=2 * MS, back_ns=2 * MS)
    watcher.saw_guest(MAC, IPADDR, LINK, now=0.0)
    # the first probe leaves 3 ms before midnight: the guest's stamps or the arrival fall after it
    (offset,) = run_rounds(watcher, guest, until=5.0, wall0=midnight - 3 * MS - round(0.5 * S))
    assert offset.offset_s == pytest.approx(guest_offset_ms / 1000, abs=offset.error_s)
    assert offset.error_s == pytest.approx(0.0025, abs=1e-6)
    assert ([p[ICMP].ts_ori for p in guest.received][:2]) == [86_399_997, 7]  # the originate wrapped too


def test_hysteresis_out_beyond_the_threshold_back_within_half_of_it():
    watcher = make_watcher(threshold=0.1)
    guest = SimulatedGuest(0)
    watcher.saw_guest(MAC, IPADDR, LINK, now=0.0)
    crossings = []
    for offset_ms, t in [(-50, 5), (-150, 15), (-70, 25), (-120, 35), (-40, 45), (30, 55), (101, 65)]:
        guest.offset_ns = offset_ms * MS
        crossings += [o.crossing for o in run_rounds(watcher, guest, start=t - 5, until=t)]
    assert crossings == [None, "out", None, None, "back", None, "out"]
    assert watcher.guests()[0].out_of_step


# -- bad replies are data ------------------------------------------------------------------------

def probe_once(watcher, now=0.5, wall=NOON + S // 2):
    watcher.saw_guest(MAC, IPADDR, LINK, now=0.0)
    frames = watcher.on_timer(now, wall)
    return Ether(frames[0][1])[ICMP]


def reply(probe, **fields) -> bytes:
    values = dict(type=14, code=0, id=probe.id, seq=probe.seq, ts_ori=probe.ts_ori,
                  ts_rx=probe.ts_ori, ts_tx=probe.ts_ori)
    values.update(fields)
    return bytes(ICMP(**values))


@pytest.mark.parametrize("case, reason", [
    ("short", gc.DROP_SHORT),
    ("code", gc.DROP_CODE),
    ("other identifier", gc.DROP_UNSOLICITED),
    ("unknown sequence", gc.DROP_UNSOLICITED),
    ("other mac", gc.DROP_WRONG_GUEST),
    ("other ip", gc.DROP_WRONG_GUEST),
    ("other link", gc.DROP_WRONG_GUEST),
    ("originate", gc.DROP_ORIGINATE),
    ("non-standard receive", gc.DROP_NON_STANDARD),
    ("non-standard transmit", gc.DROP_NON_STANDARD),
    ("beyond a day", gc.DROP_BEYOND_DAY),
    ("transmit before receive", gc.DROP_TRANSMIT_BEFORE_RECEIVE),
    ("host clock stepped", gc.DROP_HOST_STEPPED),
    ("no wall time", gc.DROP_NO_WALL_TIME),
])
def test_a_bad_reply_is_dropped_and_counted_by_reason(case, reason):
    watcher = make_watcher()
    probe = probe_once(watcher)
    mac, ip, link, now, wall = MAC, IPADDR, LINK, 0.5002, NOON + S // 2 + 200_000
    message = {
        "short": lambda: reply(probe)[:19],
        "code": lambda: reply(probe, code=1),
        "other identifier": lambda: reply(probe, id=probe.id ^ 1),
        "unknown sequence": lambda: reply(probe, seq=probe.seq + 100),
        "originate": lambda: reply(probe, ts_ori=probe.ts_ori + 1),
        "non-standard receive": lambda: reply(probe, ts_rx=probe.ts_ori | 0x8000_0000),
        "non-standard transmit": lambda: reply(probe, ts_tx=probe.ts_ori | 0x8000_0000),
        "beyond a day": lambda: reply(probe, ts_rx=86_400_000, ts_tx=86_400_000),
        "transmit before receive": lambda: reply(probe, ts_tx=probe.ts_ori - 5000),
    }.get(case, lambda: reply(probe))()
    if case == "other mac":
        mac = parse_mac("52:54:00:00:00:99")
    elif case == "other ip":
        ip = parse_ipv4("192.168.65.9")
    elif case == "other link":
        link = "link-1"
    elif case == "host clock stepped":
        wall += 5 * MS  # the wall clock moved 5 ms more than the monotonic one
    elif case == "no wall time":
        wall = None
    watcher.receive_timestamp_reply(mac, ip, message, link, now, wall)
    assert watcher.drops == {reason: 1}
    assert watcher.probes_answered == 0
    # the probe is still outstanding: its true reply is read
    watcher.receive_timestamp_reply(MAC, IPADDR, reply(probe), LINK, 0.5002, NOON + S // 2 + 200_000)
    assert watcher.probes_answered == 1


def test_duplicate_and_late_replies_are_counted_apart_from_unsolicited_ones():
    watcher = make_watcher()
    probe = probe_once(watcher)
    good = reply(probe)
    watcher.receive_timestamp_reply(MAC, IPADDR, good, LINK, 0.5002, NOON + S // 2 + 200_000)
    watcher.receive_timestamp_reply(MAC, IPADDR, good, LINK, 0.5003, NOON + S // 2 + 300_000)
    assert watcher.drops == {gc.DROP_DUPLICATE: 1}
    # the rest of the round goes out, then closes unanswered after the reply timeout
    late = []
    now = 0.5
    while watcher.next_timer() is not None and watcher.next_timer() < 5:
        now = watcher.next_timer()
        late += [Ether(frame)[ICMP] for _, frame in watcher.on_timer(now, NOON + round(now * S))]
    assert len(late) == 3
    assert len(watcher.take_offsets()) == 1  # one answer of four still makes a reading
    watcher.receive_timestamp_reply(MAC, IPADDR, reply(late[0]), LINK, now, NOON + round(now * S))
    assert watcher.drops == {gc.DROP_DUPLICATE: 1, gc.DROP_LATE: 1}


def test_a_guest_that_never_answers_costs_a_bounded_number_of_probes():
    watcher = make_watcher(interval=10.0, probes_per_reading=4, max_silent_rounds=3)
    watcher.saw_guest(MAC, IPADDR, LINK, now=0.0)
    sent_at = []
    now = 0.0
    for second in range(86_400):  # a day in which the guest sends a frame every second, never answering
        watcher.saw_guest(MAC, IPADDR, LINK, now=float(second))
        deadline = watcher.next_timer()
        while deadline is not None and deadline <= second + 1 and len(sent_at) <= 100:
            now = deadline
            sent_at += [now for _ in watcher.on_timer(now, NOON + round(now * S))]
            deadline = watcher.next_timer()
        if len(sent_at) > 100:
            break
    assert len(sent_at) == 12 == watcher.probes_sent
    # three rounds, each waiting twice as long as the one before: 0.5 s, +20 s, +40 s
    assert [round(t, 2) for t in sent_at[::4]] == [0.5, 20.5, 60.5]
    assert watcher.next_timer() is None and watcher.guests()[0].given_up
    # seen again after a silence of its own (a minute): probed again
    watcher.saw_guest(MAC, IPADDR, LINK, now=86_400.0 + 61)
    assert watcher.next_timer() == pytest.approx(86_461.5)
    assert not watcher.guests()[0].given_up


def test_a_new_dhcp_lease_resumes_a_given_up_guest():
    watcher = make_watcher(max_silent_rounds=1)
    watcher.saw_guest(MAC, IPADDR, LINK, now=0.0)
    now = 0.0
    while watcher.next_timer() is not None:
        now = watcher.next_timer()
        watcher.on_timer(now, NOON + round(now * S))
    assert watcher.probes_sent == 4 and watcher.guests()[0].given_up
    watcher.saw_guest(MAC, IPADDR, LINK, now=now + 1)
    assert watcher.next_timer() is None  # traffic without a silence does not wake it
    watcher.saw_guest(MAC, IPADDR, LINK, now=now + 2, lease=True)
    assert watcher.next_timer() == pytest.approx(now + 2.5)


def test_nothing_to_probe_means_no_timer():
    watcher = make_watcher()
    assert watcher.next_timer() is None and watcher.on_timer(0.0, NOON) == []
    watcher.saw_guest(MAC, IPADDR, LINK, now=3.0)
    assert watcher.timer_moved and watcher.next_timer() == 3.5
    watcher.forget_link(LINK)
    assert watcher.next_timer() is None and watcher.guests() == []


def test_at_most_max_guests_are_watched_the_least_recently_seen_make_room():
    watcher = make_watcher(max_guests=4)
    for host in range(10, 20):
        watcher.saw_guest(MAC, bytes([192, 168, 65, host]), LINK, now=float(host))
    assert sorted(g.guest_ip for g in watcher.guests()) == [f"192.168.65.{h}" for h in (16, 17, 18, 19)]
    assert watcher.guests_evicted == 6


def test_each_guest_is_probed_on_its_own_link_at_its_own_mac():
    watcher = make_watcher()
    other_mac = parse_mac("52:54:00:ab:cd:ef")
    watcher.saw_guest(MAC, IPADDR, "link-a", now=0.0)
    watcher.saw_guest(other_mac, parse_ipv4("192.168.65.4"), "link-b", now=0.0)
    sent = {link: Ether(frame) for link, frame in watcher.on_timer(0.5, NOON)}
    assert sent["link-a"].dst == GUEST_MAC and sent["link-a"][IP].dst == GUEST_IP
    assert sent["link-b"].dst == "52:54:00:ab:cd:ef" and sent["link-b"][IP].dst == "192.168.65.4"


@settings(max_examples=300, deadline=None)
@given(message=st.binary(max_size=64), fields=st.tuples(st.integers(0, 0xFFFF), st.integers(0, 0xFFFF),
                                                         st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1),
                                                         st.integers(0, 2**32 - 1)),
       arrival_ms=st.integers(0, 3000), use_fields=st.booleans())
def test_arbitrary_replies_never_raise_and_are_each_counted(message, fields, arrival_ms, use_fields):
    watcher = make_watcher()
    probe = probe_once(watcher)
    if use_fields:
        ident, seq, ori, rx, tx = fields
        if ident % 2:
            ident, seq, ori = probe.id, probe.seq, probe.ts_ori
        message = bytes(ICMP(type=14, id=ident, seq=seq, ts_ori=ori, ts_rx=rx, ts_tx=tx))
    now = 0.5 + arrival_ms / 1000
    watcher.receive_timestamp_reply(MAC, IPADDR, message, LINK, now, NOON + round(now * S))
    assert sum(watcher.drops.values()) + watcher.probes_answered == 1
    for offset in watcher.take_offsets():
        assert offset.error_s >= 0.0005


# -- the guest's own NTP requests --------------------------------------------------------------

def ntp_reading(guest_ns: int, period: int = 2**32 * S) -> GuestClockReading:
    return GuestClockReading(GuestAddress(MAC, IPADDR, 40000), guest_ns % period, period)


def test_ntp_requests_that_agree_make_a_one_way_reading():
    watcher = make_watcher()
    watcher.saw_guest(MAC, IPADDR, LINK, now=0.0)
    host = NOON
    # the guest is 250 ms behind; its requests take 0.3 ms to reach the gateway
    watcher.receive_reading(ntp_reading(host - 250 * MS), LINK, 0.0003, host + 300_000)
    assert watcher.take_offsets() == [] and watcher.ntp_unused == {gc.NTP_FIRST: 1}
    watcher.receive_reading(ntp_reading(host + 64 * S - 250 * MS), LINK, 64.0003, host + 64 * S + 300_000)
    (offset,) = watcher.take_offsets()
    assert offset.source == "ntp" and offset.crossing == "out"
    assert offset.offset_s == pytest.approx(-0.25, abs=offset.error_s)
    assert offset.error_s == pytest.approx(0.002)  # half the 4 ms transit allowance, the two agree exactly


def test_ntp_random_transmit_timestamps_make_no_reading():
    import random

    rng = random.Random(7)  # chronyd's way: random bits in the transmit timestamp
    watcher = make_watcher()
    watcher.saw_guest(MAC, IPADDR, LINK, now=0.0)
    for i in range(50):
        watcher.receive_reading(ntp_reading(rng.getrandbits(64) * S >> 32), LINK, i * 2.0, NOON + i * 2 * S)
    assert watcher.take_offsets() == []
    assert watcher.ntp_unused == {gc.NTP_FIRST: 1, gc.NTP_DISAGREE: 49}


def test_ntp_agreement_allows_for_drift_over_the_time_between_requests():
    watcher = make_watcher(ntp_agreement=0.005, ntp_drift_allowance=0.001)
    watcher.saw_guest(MAC, IPADDR, LINK, now=0.0)
    watcher.receive_reading(ntp_reading(NOON), LINK, 0.0, NOON)
    # 100 s later the guest has lost 70 ms (700 ppm: Docker's VM): still agrees
    watcher.receive_reading(ntp_reading(NOON + 100 * S - 70 * MS), LINK, 100.0, NOON + 100 * S)
    (drifted,) = watcher.take_offsets()
    assert drifted.offset_s == pytest.approx(0.002) and drifted.error_s == pytest.approx(0.072)
    # then a step of 2 s within 1 s: disagrees, and the next request agrees with the stepped clock
    watcher.receive_reading(ntp_reading(NOON + 111 * S + 2 * S), LINK, 111.0, NOON + 111 * S)
    watcher.receive_reading(ntp_reading(NOON + 112 * S + 2 * S), LINK, 112.0, NOON + 112 * S)
    assert [round(o.offset_s, 3) for o in watcher.take_offsets()] == [2.002]
    # a guest losing 2 % (tick 9800) between requests 30 s apart: beyond the allowance, no reading
    watcher.receive_reading(ntp_reading(NOON + 142 * S + 2 * S - 600 * MS), LINK, 142.0, NOON + 142 * S)
    assert watcher.take_offsets() == [] and watcher.ntp_unused[gc.NTP_DISAGREE] == 2


def test_a_flood_of_ntp_requests_makes_one_reading_per_interval():
    watcher = make_watcher(interval=10.0)
    watcher.saw_guest(MAC, IPADDR, LINK, now=0.0)
    for i in range(10_000):  # 10 000 requests a second, all telling the right time
        t = i / 10_000
        watcher.receive_reading(ntp_reading(NOON + round(t * S)), LINK, t, NOON + round(t * S))
    assert len(watcher.take_offsets()) == 1 and watcher.ntp_unused[gc.NTP_TOO_SOON] == 9_998


def test_ntp_the_less_delayed_of_two_agreeing_requests_is_taken():
    watcher = make_watcher()
    watcher.saw_guest(MAC, IPADDR, LINK, now=0.0)
    # the guest is on the host's clock; its first request is stamped 0.2 ms after it left, the second 1.5 ms
    watcher.receive_reading(ntp_reading(NOON), LINK, 0.0002, NOON + 200_000)
    watcher.receive_reading(ntp_reading(NOON + S), LINK, 1.0015, NOON + S + 1_500_000)
    (offset,) = watcher.take_offsets()
    assert offset.offset_s == pytest.approx(0.0018) and abs(offset.offset_s) <= offset.error_s


def test_ntp_readings_in_another_era_are_placed_modulo_the_era():
    watcher = make_watcher()
    watcher.saw_guest(MAC, IPADDR, LINK, now=0.0)
    host = int(datetime(2036, 2, 7, 6, 28, 15, tzinfo=timezone.utc).timestamp()) * S  # a second before era 1
    for i in range(2):  # the guest is 3 s ahead: its timestamps are already in era 1 (small seconds)
        watcher.receive_reading(ntp_reading(host + i * S + 3 * S), LINK, float(i), host + i * S)
    (offset,) = watcher.take_offsets()
    assert offset.offset_s == pytest.approx(3.0, abs=offset.error_s)


def test_ntp_reading_from_an_unwatched_guest_or_without_wall_time_is_counted():
    watcher = make_watcher()
    watcher.receive_reading(ntp_reading(NOON), LINK, 0.0, NOON)
    watcher.saw_guest(MAC, IPADDR, LINK, now=0.0)
    watcher.receive_reading(ntp_reading(NOON), LINK, 0.0, None)
    assert watcher.ntp_unused == {gc.NTP_UNKNOWN_GUEST: 1, gc.NTP_NO_WALL_TIME: 1}


def test_counters_report_each_guest_latest_reading():
    watcher = make_watcher()
    watcher.saw_guest(MAC, IPADDR, LINK, now=0.0)
    run_rounds(watcher, SimulatedGuest(-20 * MS), until=5.0)
    figures = watcher.counters()
    assert figures["probes_sent"] == 4 and figures["probes_answered"] == 4 and figures["readings"] == 1
    guest = figures["guests"][GUEST_IP]
    assert guest["mac"] == GUEST_MAC and guest["source"] == "icmp"
    assert guest["offset_s"] == pytest.approx(-0.020, abs=guest["error_s"])


def test_misuse_raises_a_clear_error():
    with pytest.raises(ValueError, match="interval"):
        GuestClockWatcher(GW_MAC, GW_IP, interval=0)
    with pytest.raises(ValueError, match="6 bytes"):
        GuestClockWatcher(b"x", GW_IP, interval=1)


def test_a_paused_guest_is_read_again_as_soon_as_it_speaks():
    # a VM paused for 20 s (its host asleep): silent rounds, given up; its first frame after resuming
    # wakes the watcher at once (no minute of silence needed: it has answered before)
    watcher = make_watcher(interval=1.0)
    guest = SimulatedGuest(0)
    watcher.saw_guest(MAC, IPADDR, LINK, now=0.0)
    assert len(run_rounds(watcher, guest, until=5.0)) == 5
    paused = run_rounds(watcher, guest, start=5.0, until=25.0, answer=lambda frame: False)
    assert paused == [] and watcher.guests()[0].given_up and watcher.next_timer() is None
    guest.offset_ns = -20 * S  # its clock stood still while it was paused
    watcher.saw_guest(MAC, IPADDR, LINK, now=25.0)  # e.g. its NTP client's next request
    assert watcher.next_timer() == 25.5
    (resumed,) = run_rounds(watcher, guest, start=25.0, until=26.0)
    assert resumed.offset_s == pytest.approx(-20.0, abs=resumed.error_s) and resumed.crossing == "out"


def test_a_guest_that_answered_once_then_never_costs_a_falling_rate_of_probes():
    watcher = make_watcher(interval=10.0)
    guest = SimulatedGuest(0)
    watcher.saw_guest(MAC, IPADDR, LINK, now=0.0)
    assert len(run_rounds(watcher, guest, until=5.0)) == 1
    rounds_at = []
    for second in range(5, 86_400):  # a day of a frame a second, and not one answer more
        watcher.saw_guest(MAC, IPADDR, LINK, now=float(second))
        deadline = watcher.next_timer()
        while deadline is not None and deadline <= second + 1 and len(rounds_at) < 2000:
            rounds_at += [deadline] * len(watcher.on_timer(deadline, NOON + round(deadline * S)))
            deadline = watcher.next_timer()
    starts = rounds_at[::4]
    gaps = [b - a for a, b in zip(starts[2::3], starts[3::3])]  # from one give-up's last round to the next try
    assert len(rounds_at) <= 12 * 40, len(rounds_at)  # 12 probes a try, tries an hour apart at last
    assert gaps == sorted(gaps) and gaps[-1] >= 3600
