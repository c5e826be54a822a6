"""The guest's DHCP lease, read from the gateway's own DHCPACKs on the wire.

The demo does not reach into the DHCP plugin (gateway/ never names a plugin): it
reads what any DHCP server tells a client, in the frames the gateway sends the
guest. RFC 2131 §2 (the BOOTP fixed part: op 2 = BOOTREPLY, yiaddr at byte 16,
chaddr at 28, the options after the magic cookie at 236) and RFC 2132 (option 53
= 5: DHCPACK; 51: lease time; 42: NTP servers; 255: end; 0: pad).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

__all__ = ["Lease", "lease_in_frame"]

_ETHERTYPE_IPV4 = 0x0800
_UDP = 17
_SERVER_PORT, _CLIENT_PORT = 67, 68
_MAGIC = b"\x63\x82\x53\x63"
_OPT_PAD, _OPT_END, _OPT_MESSAGE_TYPE, _OPT_LEASE_TIME, _OPT_NTP_SERVERS = 0, 255, 53, 51, 42
_DHCPACK = 5


@dataclass(frozen=True, slots=True)
class Lease:
    mac: bytes
    ip: str
    lease_time_s: int | None
    ntp_servers: tuple[str, ...]


def _ipv4(data: bytes) -> str:
    return ".".join(str(b) for b in data)


def lease_in_frame(frame: bytes) -> Lease | None:
    """The lease a DHCPACK in this Ethernet frame grants, or None (any other frame, or a malformed one)."""
    if len(frame) < 14 + 20 + 8 + 240 or struct.unpack_from("!H", frame, 12)[0] != _ETHERTYPE_IPV4:
        return None
    ihl = (frame[14] & 0x0F) * 4
    if frame[14 + 9] != _UDP or ihl < 20:
        return None
    udp = 14 + ihl
    source_port, destination_port = struct.unpack_from("!HH", frame, udp)
    if (source_port, destination_port) != (_SERVER_PORT, _CLIENT_PORT):
        return None
    bootp = udp + 8
    if len(frame) < bootp + 240 or frame[bootp] != 2 or frame[bootp + 236:bootp + 240] != _MAGIC:
        return None
    options: dict[int, bytes] = {}
    at = bootp + 240
    while at < len(frame):
        code = frame[at]
        if code == _OPT_END:
            break
        if code == _OPT_PAD:
            at += 1
            continue
        if at + 2 > len(frame) or at + 2 + frame[at + 1] > len(frame):
            return None
        options.setdefault(code, frame[at + 2:at + 2 + frame[at + 1]])
        at += 2 + frame[at + 1]
    if options.get(_OPT_MESSAGE_TYPE) != bytes([_DHCPACK]):
        return None
    lease_time = options.get(_OPT_LEASE_TIME)
    ntp = options.get(_OPT_NTP_SERVERS, b"")
    return Lease(mac=bytes(frame[bootp + 28:bootp + 34]), ip=_ipv4(frame[bootp + 16:bootp + 20]),
                 lease_time_s=struct.unpack("!I", lease_time)[0] if lease_time and len(lease_time) == 4 else None,
                 ntp_servers=tuple(_ipv4(ntp[i:i + 4]) for i in range(0, len(ntp) - 3, 4)))
