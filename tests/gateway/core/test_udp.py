"""UDP datagrams the stack builds, and a built frame's payload replaced in place (the residence-time
correction rewrites an NTP reply after its frame is built): scapy checks the checksums."""

import pytest
from hypothesis import given, strategies as st
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether

from gateway.core.ethernet import HEADER_LEN as ETHERNET_HEADER_LEN
from gateway.core.udp import build_datagram, with_payload

SRC, DST = bytes([192, 168, 65, 1]), bytes([192, 168, 65, 3])


def frame_with(payload: bytes, ip_options: bytes = b"") -> bytes:
    return bytes(Ether(src="f6:16:36:bc:f9:c6", dst="52:54:00:12:34:56")
                 / IP(src="192.168.65.1", dst="192.168.65.3", options=ip_options) / UDP(sport=123, dport=40000)
                 / payload)


def scapy_udp_checksum_ok(frame: bytes) -> bool:
    packet = Ether(frame)
    given = packet[UDP].chksum
    del packet[UDP].chksum
    return Ether(bytes(packet))[UDP].chksum == given


def test_build_datagram_checksum_is_the_one_scapy_computes():
    datagram = build_datagram(SRC, DST, 123, 40000, b"\x24" + bytes(47))
    packet = IP(src="192.168.65.1", dst="192.168.65.3") / UDP(sport=123, dport=40000) / (b"\x24" + bytes(47))
    assert datagram[6:8] == bytes(UDP(bytes(packet)[20:]))[6:8]


@pytest.mark.parametrize("options", [b"", b"\x01\x01\x01\x01"])  # no options; four NOPs (IHL 6)
def test_with_payload_replaces_the_payload_and_recomputes_the_udp_checksum(options):
    frame = frame_with(b"\x24" + bytes(47), options)
    new = b"\x24" + bytes(31) + b"\xff" * 16
    rewritten = with_payload(frame, ETHERNET_HEADER_LEN, new)
    assert bytes(Ether(rewritten)[UDP].payload) == new
    assert rewritten[:len(frame) - 48 - 2] == frame[:len(frame) - 48 - 2]  # headers untouched but the checksum
    assert scapy_udp_checksum_ok(rewritten) and rewritten != frame


def test_with_payload_refuses_another_length():
    frame = frame_with(bytes(48))
    with pytest.raises(ValueError):
        with_payload(frame, ETHERNET_HEADER_LEN, bytes(52))


@given(st.binary(min_size=48, max_size=48), st.binary(min_size=48, max_size=48))
def test_the_incremental_checksum_equals_a_full_recomputation(before, after):
    src, dst = bytes([192, 168, 65, 1]), bytes([192, 168, 65, 3])
    frame = frame_with(before)
    expected = frame[:34] + build_datagram(src, dst, 123, 40000, after)
    assert with_payload(frame[:34] + build_datagram(src, dst, 123, 40000, before), ETHERNET_HEADER_LEN, after) \
        == expected
