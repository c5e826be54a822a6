"""The sans-IO responder: every rule of RFC 4330 §6 it follows, and ServerState."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, strategies as st
from scapy.layers.ntp import NTPHeader

from plugins.ntp.config import NtpConfig
from plugins.ntp.drops import SntpDrop
from plugins.ntp.kernel_state import UNKNOWN_KERNEL_STATE, KernelTimeState, LeapPending
from plugins.ntp.packet import HEADER, first_byte
from plugins.ntp.responder import Responder, ServerState, parse_refid
from plugins.ntp.timestamps import seconds_to_ntp_short, unix_ns_to_ntp

SYNCED = KernelTimeState(synchronised=True, leap=LeapPending.NONE, maxerror_us=1000, esterror_us=10)
UNSYNCED = KernelTimeState(synchronised=False, leap=LeapPending.NONE, maxerror_us=16_000_000, esterror_us=16_000_000)
REFERENCE = unix_ns_to_ntp(1_750_000_000 * 10**9)
RECEIVE = REFERENCE + (5 << 32) + 0x1234
TRANSMIT = RECEIVE + 0x00C0_FFEE
PRECISION = -23


def state(config: NtpConfig = NtpConfig(), kernel: KernelTimeState = SYNCED) -> ServerState:
    return ServerState.from_config(config, kernel, precision=PRECISION, reference_ntp=REFERENCE)


class Clock:
    """A clock callable that counts its reads."""

    def __init__(self, value: int = TRANSMIT) -> None:
        self.value = value
        self.reads = 0

    def __call__(self) -> int:
        self.reads += 1
        return self.value


def request(*, leap: int = 0, version: int = 4, mode: int = 3, poll: int = 6,
            transmit: bytes = bytes.fromhex("e8a1b2c3d4e5f607"), tail: bytes = b"") -> bytes:
    """A client request as a client would send it (other fields as ntpdig fills them)."""
    header = HEADER.pack(first_byte(leap, version, mode), 0, poll, -20, 1 << 16, 1 << 16, b"\0" * 4,
                         0, 0, 0, 0)
    return header[:40] + transmit + tail


def respond(data: bytes, responder: Responder | None = None, clock: Clock | None = None) -> bytes | None:
    responder = responder or Responder(state())
    return responder.respond(data, RECEIVE, clock or Clock())


# --- length -------------------------------------------------------------------------------------

@pytest.mark.parametrize("length", [0, 1, 4, 44, 47])
def test_shorter_than_48_bytes_is_dropped(length):
    responder, clock = Responder(state()), Clock()
    assert responder.respond(request()[:length], RECEIVE, clock) is None
    assert responder.drops == {SntpDrop.TOO_SHORT: 1}
    assert clock.reads == 0


@pytest.mark.parametrize("extra", [1, 2, 3, 5, 22])
def test_a_length_that_is_not_a_multiple_of_4_is_dropped(extra):
    responder = Responder(state())
    assert responder.respond(request(tail=b"\0" * extra), RECEIVE, Clock()) is None
    assert responder.drops == {SntpDrop.NOT_WORD_ALIGNED: 1}


@pytest.mark.parametrize(("name", "tail"), [
    ("plain header", b""),
    ("68 bytes: key ID 0 + MD5 (chrony would drop it; busybox and OpenNTPD answer)", bytes(4) + bytes(range(16))),
    ("68 bytes: key ID 1 + MD5", (1).to_bytes(4, "big") + bytes(range(16, 32))),
    ("72 bytes: key ID + SHA-1", (7).to_bytes(4, "big") + bytes(range(20))),
    ("RFC 7822 extension field, 16 bytes", bytes.fromhex("0104 0010") + bytes(12)),
])
def test_longer_requests_with_a_mac_or_extension_get_a_plain_48_byte_reply(name, tail):
    data = request(tail=tail)
    reply = respond(data)
    assert reply is not None and len(reply) == 48 <= len(data), name
    assert reply[24:32] == data[40:48]


# --- mode -----------------------------------------------------------------------------------------

@pytest.mark.parametrize(("mode", "reply_mode"), [(3, 4), (1, 2)])
def test_client_gets_server_and_symmetric_active_gets_symmetric_passive(mode, reply_mode):
    reply = respond(request(mode=mode))
    assert reply is not None
    assert reply[0] & 7 == reply_mode


def test_mode_1_is_answered_directly_but_never_reaches_the_responder_through_the_gateway():
    """The documented contract: `hostclock serve` answers a symmetric-active peer; the gateway's
    time service forwards mode 3 only, so a guest's `peer 192.168.65.1` gets nothing."""
    from gateway.core.service import GuestAddress
    from plugins.ntp.time_service import TimeService

    assert respond(request(mode=1))[0] & 7 == 2
    service = TimeService()
    guest = GuestAddress(bytes.fromhex("525400123456"), bytes([192, 168, 65, 3]), 123)
    assert service.handle_datagram(guest, bytes([192, 168, 65, 1]), request(mode=1), 0.0) == []
    assert service.forwarded == 0
    # ... and through the whole gateway stack: no Forward, no frame, one drop saying why
    from gateway import Config, build_stack
    from guest_frames import ntp_request, udp_to_gateway

    stack = build_stack(Config())
    assert stack.receive_frame(udp_to_gateway(ntp_request(mode=1)), now=1.0) == []
    assert stack.drop_counts() == {"ntp: mode 1 (only client requests, mode 3, are forwarded)": 1}


@pytest.mark.parametrize(("mode", "reason"), [
    (0, SntpDrop.MODE_RESERVED), (2, SntpDrop.MODE_SYMMETRIC_PASSIVE), (4, SntpDrop.MODE_SERVER),
    (5, SntpDrop.MODE_BROADCAST), (6, SntpDrop.MODE_CONTROL), (7, SntpDrop.MODE_PRIVATE),
])
def test_every_other_mode_is_dropped_by_reason(mode, reason):
    responder, clock = Responder(state()), Clock()
    assert responder.respond(request(mode=mode), RECEIVE, clock) is None
    assert responder.drops == {reason: 1}
    assert clock.reads == 0


def test_a_monlist_query_padded_to_192_bytes_is_never_answered():
    # ntpdc's MON_GETLIST_1: mode 7, version 2, implementation 3 (XNTPD), request code 42
    monlist = bytes.fromhex("17 00 03 2a") + bytes(188)
    responder = Responder(state())
    assert responder.respond(monlist, RECEIVE, Clock()) is None
    assert responder.drops == {SntpDrop.MODE_PRIVATE: 1}


def test_an_ntpq_readvar_is_never_answered():
    readvar = bytes.fromhex("16 02 00 01 00 00 00 00 00 00 00 00") + bytes(36)  # mode 6, opcode 2
    responder = Responder(state())
    assert responder.respond(readvar, RECEIVE, Clock()) is None
    assert responder.drops == {SntpDrop.MODE_CONTROL: 1}


# --- version --------------------------------------------------------------------------------------

@pytest.mark.parametrize("version", [1, 2, 3, 4])
def test_versions_1_to_4_are_copied(version):
    reply = respond(request(version=version))
    assert reply is not None
    assert (reply[0] >> 3) & 7 == version


@pytest.mark.parametrize("version", [0, 5, 6, 7])
def test_other_versions_are_dropped(version):
    responder = Responder(state())
    assert responder.respond(request(version=version), RECEIVE, Clock()) is None
    assert responder.drops == {SntpDrop.BAD_VERSION: 1}


# --- copied fields --------------------------------------------------------------------------------

@pytest.mark.parametrize("poll", [-6, 0, 4, 6, 10, 17, 127, -128])
def test_poll_is_copied(poll):
    reply = respond(request(poll=poll))
    assert reply is not None
    assert HEADER.unpack(reply)[2] == poll


@given(transmit=st.binary(min_size=8, max_size=8), leap=st.integers(0, 3))
def test_originate_is_the_request_transmit_byte_for_byte(transmit, leap):
    # chronyd sends random bytes; ntpdig its real time with LI=3; zero is copied too
    reply = respond(request(leap=leap, transmit=transmit))
    assert reply is not None
    assert reply[24:32] == transmit


def test_the_request_leap_indicator_does_not_reach_the_reply():
    reply = respond(request(leap=3))  # ntpdig sends LI=3
    assert reply is not None and reply[0] >> 6 == 0


# --- timestamps -----------------------------------------------------------------------------------

def test_receive_is_the_given_receive_time_and_transmit_the_clock_read_once():
    clock = Clock()
    reply = Responder(state()).respond(request(), RECEIVE, clock)
    assert reply is not None
    fields = HEADER.unpack(reply)
    assert fields[9] == RECEIVE
    assert fields[10] == TRANSMIT
    assert clock.reads == 1


def test_the_clock_is_read_after_every_other_field_is_packed():
    responder = Responder(state())
    seen = []

    def spying_clock() -> int:
        # everything else is packed already, so changing the state now changes nothing
        seen.append(responder.state)
        responder.state = dataclasses.replace(responder.state, stratum=15, reference_ntp=1)
        return TRANSMIT

    reply = responder.respond(request(), RECEIVE, spying_clock)
    assert reply is not None and len(seen) == 1
    fields = HEADER.unpack(reply)
    assert (fields[1], fields[7], fields[10]) == (seen[0].stratum, REFERENCE, TRANSMIT)


# --- server fields from the state -------------------------------------------------------------

def test_reply_carries_the_state_and_scapy_reads_it_the_same_way():
    data = request(version=3, poll=10)
    reply = respond(data)
    assert reply is not None
    ntp = NTPHeader(reply).fields
    assert (ntp["leap"], ntp["version"], ntp["mode"]) == (0, 3, 4)
    assert (ntp["stratum"], ntp["poll"], ntp["precision"]) == (10, 10, PRECISION)
    assert ntp["delay"] == 0
    assert ntp["dispersion"] == seconds_to_ntp_short(2.0 ** PRECISION) == 1
    assert ntp["id"] == "127.127.1.1"
    assert (ntp["ref"], ntp["orig"], ntp["recv"], ntp["sent"]) == (
        REFERENCE, int.from_bytes(data[40:48], "big"), RECEIVE, TRANSMIT)


@given(data=st.binary(max_size=200))
def test_any_bytes_give_a_48_byte_reply_no_longer_than_the_request_or_a_counted_drop(data):
    responder = Responder(state())
    reply = responder.respond(data, RECEIVE, Clock())
    if reply is None:
        assert sum(responder.drops.values()) == 1
    else:
        assert len(reply) == 48 <= len(data)
        assert not responder.drops


# --- ServerState ----------------------------------------------------------------------------------

def test_synchronised_state_serves_config_stratum_and_refid():
    s = state(NtpConfig(stratum=3, refid="192.0.2.7"))
    assert (s.leap, s.stratum, s.refid, s.precision, s.root_delay) == (0, 3, bytes([192, 0, 2, 7]), PRECISION, 0)
    assert s.reference_ntp == REFERENCE
    assert s.synchronised


@pytest.mark.parametrize(("leap", "indicator"), [
    (LeapPending.NONE, 0), (LeapPending.INSERT, 1), (LeapPending.DELETE, 2)])
def test_leap_indicator_follows_the_kernels_pending_leap_second(leap, indicator):
    kernel = dataclasses.replace(SYNCED, leap=leap)
    assert state(kernel=kernel).leap == indicator
    reply = respond(request(), Responder(state(kernel=kernel)))
    assert reply is not None and reply[0] >> 6 == indicator


def test_unsynchronised_host_is_served_as_synchronised_by_default():
    s = state(NtpConfig(report_unsync=False), UNSYNCED)
    assert s == state(NtpConfig(), SYNCED)


def test_unsynchronised_host_reported_honestly_the_chrony_way():
    s = state(NtpConfig(report_unsync=True), UNSYNCED)
    assert (s.leap, s.stratum, s.refid, s.reference_ntp) == (3, 0, bytes(4), 0)
    assert (s.root_delay, s.root_dispersion) == (0x10000, 0x10000)  # 1.0 s each
    assert not s.synchronised
    reply = respond(request(), Responder(s))
    assert reply is not None
    ntp = NTPHeader(reply)
    assert (ntp.leap, ntp.stratum, ntp.delay, ntp.dispersion) == (3, 0, 1, 1)
    assert HEADER.unpack(reply)[10] == TRANSMIT  # the time is still the host's


def test_report_unsync_changes_nothing_while_the_host_is_synchronised():
    assert state(NtpConfig(report_unsync=True), SYNCED) == state(NtpConfig(), SYNCED)


def test_unknown_kernel_state_is_served_as_synchronised_even_with_report_unsync():
    assert state(NtpConfig(report_unsync=True), UNKNOWN_KERNEL_STATE).synchronised


@pytest.mark.parametrize(("text", "refid"), [
    ("127.127.1.1", bytes([127, 127, 1, 1])), ("LOCL", b"LOCL"), ("GPS", b"GPS\0"), ("X", b"X\0\0\0")])
def test_refid_is_an_ipv4_address_or_padded_ascii(text, refid):
    assert parse_refid(text) == refid


@pytest.mark.parametrize("text", ["", "TOOLONG", "é"])
def test_refid_refuses_what_does_not_fit(text):
    with pytest.raises(ValueError):
        parse_refid(text)


@pytest.mark.parametrize("change", [
    {"leap": 4}, {"stratum": 256}, {"refid": b"abc"}, {"precision": -129},
    {"root_delay": -1}, {"root_dispersion": 1 << 32}, {"reference_ntp": 1 << 64}])
def test_server_state_refuses_values_that_do_not_fit_the_wire(change):
    with pytest.raises(ValueError):
        dataclasses.replace(state(), **change)
