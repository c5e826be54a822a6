"""UDP (RFC 768).

RFC 768: "Checksum is the 16-bit one's complement of the one's complement sum
of a pseudo header of information from the IP header, the UDP header, and the
data ... If the computed checksum is zero, it is transmitted as all ones ...
An all zero transmitted checksum value means that the transmitter generated no
checksum."
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from gateway.core import ethernet, ipv4
from gateway.core.checksum import internet_checksum, is_valid_checksum
from gateway.core.ipv4 import PROTO_UDP

__all__ = ["HEADER", "HEADER_LEN", "build_datagram", "is_valid_udp_checksum", "UdpFrame", "parse_frame"]

HEADER = struct.Struct("!HHHH")  # source port, destination port, length, checksum
HEADER_LEN = HEADER.size  # 8

_PSEUDO_TAIL = struct.Struct("!BBH")  # zero, protocol, UDP length (after src and dst IPs)


def _pseudo_header(src_ip: bytes, dst_ip: bytes, udp_len: int) -> bytes:
    return src_ip + dst_ip + _PSEUDO_TAIL.pack(0, PROTO_UDP, udp_len)


def is_valid_udp_checksum(src_ip: bytes, dst_ip: bytes, datagram: bytes) -> bool:
    """`datagram` is the whole UDP datagram (header + data) with its checksum field."""
    return is_valid_checksum(_pseudo_header(src_ip, dst_ip, len(datagram)) + datagram)


def build_datagram(src_ip: bytes, dst_ip: bytes, src_port: int, dst_port: int, payload: bytes) -> bytes:
    """A UDP datagram with its checksum over the pseudo header (never sent as zero)."""
    length = HEADER_LEN + len(payload)
    unsummed = HEADER.pack(src_port, dst_port, length, 0) + payload
    checksum = internet_checksum(_pseudo_header(src_ip, dst_ip, length) + unsummed) or 0xFFFF
    return unsummed[:6] + checksum.to_bytes(2, "big") + unsummed[8:]


@dataclass(frozen=True, slots=True)
class UdpFrame:
    """The addresses and payload of a UDP datagram found in an Ethernet frame (`parse_frame`)."""

    src_ip: bytes
    dst_ip: bytes
    src_port: int
    dst_port: int
    payload: bytes


def parse_frame(frame: bytes) -> UdpFrame | None:
    """The UDP datagram in an Ethernet/IPv4 frame, or None if it holds none (or a cut one).

    For tools that read frames the stack did not (the replay, reading a capture); it checks
    lengths, not checksums, and takes no fragments. The stack's hot path parses for itself.
    """
    eth = ethernet.HEADER_LEN
    if len(frame) < eth + ipv4.HEADER_LEN or ethernet.HEADER.unpack_from(frame)[2] != ethernet.ETHERTYPE_IPV4:
        return None
    version_ihl, _, total_len, _, flags_fragment, _, protocol, _, src_ip, dst_ip = ipv4.HEADER.unpack_from(frame, eth)
    ihl = (version_ihl & 0x0F) * 4
    if version_ihl >> 4 != 4 or protocol != ipv4.PROTO_UDP or ihl < ipv4.HEADER_LEN \
            or flags_fragment & (ipv4.FLAG_MF | ipv4.FRAGMENT_OFFSET_MASK):
        return None
    start, end = eth + ihl, eth + total_len
    if end > len(frame) or start + HEADER_LEN > end:
        return None
    src_port, dst_port, length, _ = HEADER.unpack_from(frame, start)
    if length < HEADER_LEN or start + length > end:
        return None
    return UdpFrame(src_ip, dst_ip, src_port, dst_port, frame[start + HEADER_LEN:start + length])
