"""Properties every frame the gateway emits must have, checked independently of the stack's own code.

`check_emitted(frame, asked, mtu)` raises `PropertyViolation` unless the frame is
well-formed Ethernet/ARP or Ethernet/IPv4 (header checksum, total length), its
ICMP or UDP checksum is right, it comes from the gateway's MAC and an address of
the gateway, no IPv4 datagram is larger than the MTU, and it is addressed to
the guest that spoke (`asked`: the frame it answers).
"""

from __future__ import annotations

import struct

GATEWAY_MAC = bytes.fromhex("f61636bcf9c6")
BROADCAST_MAC = b"\xff" * 6


class PropertyViolation(AssertionError):
    """A fuzz input broke a property: a bug, as much as an exception escaping."""


def require(condition: bool, what: str) -> None:
    if not condition:
        raise PropertyViolation(what)


def ones_complement_sum(data: bytes) -> int:
    if len(data) & 1:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return total


def checksum_ok(data: bytes) -> bool:
    return ones_complement_sum(data) == 0xFFFF


def fix_checksums(frame: bytes) -> bytes:
    """The frame with its IPv4 header, UDP and ICMP checksums made right (where it has them),
    so that a fuzzer gets past the checksum checks to what lies behind them."""
    if len(frame) < 34 or frame[12:14] != b"\x08\x00":
        return frame
    out = bytearray(frame)
    ihl = (out[14] & 0x0F) * 4
    if ihl < 20 or 14 + ihl > len(out):
        return frame
    out[24:26] = b"\0\0"
    out[24:26] = struct.pack("!H", ~ones_complement_sum(bytes(out[14:14 + ihl])) & 0xFFFF)
    total = struct.unpack_from("!H", out, 16)[0]
    end = min(len(out), 14 + max(total, ihl))
    start = 14 + ihl
    protocol = out[23]
    if protocol == 1 and end - start >= 4:
        out[start + 2:start + 4] = b"\0\0"
        out[start + 2:start + 4] = struct.pack("!H", ~ones_complement_sum(bytes(out[start:end])) & 0xFFFF)
    elif protocol == 17 and end - start >= 8:
        udp_len = struct.unpack_from("!H", out, start + 4)[0]
        udp_end = start + udp_len
        if 8 <= udp_len and udp_end <= end:
            out[start + 6:start + 8] = b"\0\0"
            pseudo = bytes(out[26:34]) + struct.pack("!BBH", 0, 17, udp_len)
            csum = ~ones_complement_sum(pseudo + bytes(out[start:udp_end])) & 0xFFFF
            out[start + 6:start + 8] = struct.pack("!H", csum or 0xFFFF)
    return bytes(out)


def check_emitted(frame: bytes, asked: bytes, mtu: int, local_ips: frozenset[bytes] | set[bytes]) -> None:
    """Raise PropertyViolation unless `frame` (emitted in answer to `asked`) is well-formed and
    addressed to the guest that sent `asked`."""
    require(type(frame) is bytes, f"emitted a {type(frame).__name__}, not bytes")
    require(60 <= len(frame) <= 14 + mtu, f"frame of {len(frame)} bytes (Ethernet minimum 60, MTU {mtu})")
    require(frame[6:12] == GATEWAY_MAC, "source MAC is not the gateway's")
    ethertype = frame[12:14]
    guest_mac = asked[6:12]
    if ethertype == b"\x08\x06":
        htype, ptype, hlen, plen, op = struct.unpack_from("!HHBBH", frame, 14)
        require((htype, ptype, hlen, plen, op) == (1, 0x0800, 6, 4, 2), "ARP reply header")
        require(frame[22:28] == GATEWAY_MAC and frame[28:32] in local_ips, "ARP reply sender")
        asked_sender_mac = asked[22:28]
        require(frame[0:6] == asked_sender_mac == frame[32:38], "ARP reply not to the asker")
        require(frame[38:42] == asked[28:32], "ARP reply target IP is not the asker's")
        return
    require(ethertype == b"\x08\x00", f"ethertype {ethertype.hex()}")
    require(frame[14] == 0x45, "IPv4 header with options or not version 4")
    require(checksum_ok(frame[14:34]), "bad IPv4 header checksum")
    total = struct.unpack_from("!H", frame, 16)[0]
    require(20 <= total <= mtu and 14 + total <= len(frame), f"IPv4 total length {total}")
    require(len(frame) == max(60, 14 + total), "frame longer than its datagram plus padding")
    require(frame[20:22] in (b"\0\0", b"\x40\x00"), "fragmented reply")
    src_ip, dst_ip = frame[26:30], frame[30:34]
    require(src_ip in local_ips, "IPv4 source is not a gateway address")
    asked_src_ip = asked[26:30]
    broadcast = frame[0:6] == BROADCAST_MAC
    require(frame[0:6] == guest_mac or broadcast, "Ethernet destination is not the guest that spoke")
    datagram = frame[34:14 + total]
    protocol = frame[23]
    if protocol == 1:
        require(dst_ip == asked_src_ip, "ICMP reply not to the asker's address")
        require(checksum_ok(datagram), "bad ICMP checksum")
        require(datagram[0] in (0, 3), f"ICMP type {datagram[0]}")
    elif protocol == 17:
        require(len(datagram) >= 8, "UDP shorter than its header")
        sport, dport, udp_len, csum = struct.unpack_from("!HHHH", datagram)
        require(udp_len == len(datagram), "UDP length differs from the datagram's")
        if csum:
            pseudo = src_ip + dst_ip + struct.pack("!BBH", 0, 17, udp_len)
            require(checksum_ok(pseudo + datagram), "bad UDP checksum")
        asked_sport = struct.unpack_from("!H", asked, 14 + (asked[14] & 0x0F) * 4)[0]
        require(dport == asked_sport, "UDP reply not to the asker's port")
        require(dst_ip == asked_src_ip or sport == 67, "UDP reply to another address (only DHCP may)")
    else:
        raise PropertyViolation(f"emitted IPv4 protocol {protocol}")
