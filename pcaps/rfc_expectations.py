#!/usr/bin/env python3
"""What the RFCs say must happen to every frame of a capture: the corpus's independent expectations.

    python3 pcaps/rfc_expectations.py pcaps/hostile/ntp_modes.pcap    # one line per record

The goldens in pcaps/golden/ are written by the replay itself, so they only
detect a change. This file is the other half: it reads a capture with scapy
and decides, from the rules of the RFCs and of the README (the gateway's
address, MAC, MTU, ICMP error rate limit and default stratum and refid), what
a correct gateway does with each record: skip it (not a guest's frame), answer
it (ARP reply, echo reply, NTP server reply, ICMP port unreachable) or drop it
for a named reason; and it checks a reply's fields. It imports nothing of the
gateway, so a bug in the gateway's codecs or rules is not repeated here.

Reasons are short keys (`Reason`); tests/gateway/replay/test_pcap_corpus.py
maps each to the gateway's wording. A frame that no rule here covers (DHCP, an
echo request to a broadcast address, ...) raises `NoRule`: a capture added to
the corpus with such frames needs a rule written here first.

The rules, in the order a host applies them (one reason per frame):

* Ethernet (IEEE 802.3, RFC 894): at least 14 bytes; the destination is the
  gateway's MAC or broadcast (a group address is not ours); a source MAC is
  never a group address; EtherType 0x0806 (ARP) or 0x0800 (IPv4); VLAN tags,
  IPv6, 802.3 length fields and other EtherTypes are not spoken.
* ARP (RFC 826): at least 28 bytes, Ethernet/IPv4 (htype 1, ptype 0x0800, hlen
  6, plen 4), a unicast sender; "?Is the opcode ares_op$REQUEST? (NOW look at
  the opcode!!) Yes: ... Send the packet to the (new) target hardware address";
  only a target protocol address that is the gateway's is answered.
* IPv4 (RFC 791, RFC 1122 §3.2.1): at least 20 bytes, version 4, IHL >= 5, the
  header within the frame, total length from the header to the frame's end,
  a correct header checksum (§3.2.1.2 "MUST verify"), no fragments (the
  gateway does not reassemble), a destination of the gateway (or a broadcast,
  for UDP), no unicast destination inside a link-layer broadcast (§3.3.6),
  and a source that is a host of the guest subnet (§3.2.1.3: not 0.0.0.0, the
  network or broadcast address, nor the gateway's own).
* ICMP (RFC 792): at least 8 bytes and a correct checksum; only an echo
  request (type 8) is answered, with an echo reply carrying its identifier,
  sequence number and data, and none whose reply would exceed the MTU (the
  gateway never fragments).
* UDP (RFC 768): at least 8 bytes, a length from 8 to the IP payload, a
  checksum that is correct or zero ("no checksum"). Port 123: the time
  service (below); any other port: ICMP port unreachable (RFC 1122 §4.1.3.1),
  never for a broadcast (RFC 1122 §3.2.2), at most 100 per second with a
  burst of 100 (RFC 1812 §4.3.2.8; the README's figures).
* NTP on port 123 (RFC 4330 §5-6, RFC 5905 §7.3): not a broadcast; at least 48
  bytes in whole 32-bit words; version 1-4; mode 3 is answered with mode 4,
  every other mode dropped. The reply: 48 bytes (never longer than the
  request), LI 0 (the replay serves a synchronised clock), the request's
  version and poll, stratum 10 and refid 127.127.1.1 (the README's default),
  originate = the request's transmit timestamp byte for byte, receive = when
  the request arrived, transmit not before receive.
"""

from __future__ import annotations

import enum
import ipaddress
import struct
import sys
from dataclasses import dataclass, field
from pathlib import Path

from scapy.utils import RawPcapNgReader, RawPcapReader, checksum

GATEWAY_MAC = bytes.fromhex("f616 36bc f9c6")
GATEWAY_IP = ipaddress.IPv4Address("192.168.65.1")
SUBNET = ipaddress.IPv4Network("192.168.65.0/24")
BROADCAST_MAC = b"\xff" * 6
MTU = 1500
#: RFC 1812 §4.3.2.8 lets a router limit ICMP errors; the README's limit: 100 a second, burst 100
ICMP_ERRORS_PER_S = 100
ICMP_ERROR_BURST = 100
#: the README: the host clock is served as synchronised, stratum 10, refid 127.127.1.1
STRATUM, REFID = 10, bytes([127, 127, 1, 1])
NTP_UNIX_OFFSET = 2_208_988_800
_NS = 1_000_000_000


class NoRule(Exception):
    """The capture holds a frame that no rule here decides: write one before adding it to the corpus."""


class Reason(enum.Enum):
    """Why a record is skipped or a frame dropped, in the RFCs' terms (the test maps each to the gateway's words)."""

    # not a guest's frame: skipped
    NOT_ETHERNET = "the record's link type is not Ethernet"
    SNAP_CUT = "the capture kept less of the frame than was on the wire"
    FROM_GATEWAY = "the gateway sent it"
    # Ethernet
    ETH_TRUNCATED = "shorter than the 14-byte Ethernet header"
    ETH_NOT_FOR_US = "destination MAC is another host's"
    ETH_MULTICAST = "destination MAC is a group address"
    ETH_BAD_SOURCE = "source MAC is a group address"
    ETH_VLAN = "VLAN tag"
    ETH_IPV6 = "IPv6"
    ETH_LLC = "802.3 length field"
    ETH_OTHER_TYPE = "another EtherType"
    # ARP
    ARP_TRUNCATED = "ARP shorter than 28 bytes"
    ARP_NOT_ETHERNET_IPV4 = "ARP not Ethernet/IPv4"
    ARP_BAD_SENDER = "ARP sender is a group address"
    ARP_NOT_REQUEST = "ARP opcode is not request"
    ARP_NOT_FOR_US = "ARP target is not the gateway"
    # IPv4
    IP_TRUNCATED = "shorter than the IPv4 header"
    IP_VERSION = "IP version is not 4"
    IP_IHL = "IHL below 5"
    IP_TOTAL_LENGTH = "total length below the header or beyond the frame"
    IP_CHECKSUM = "IPv4 header checksum"
    IP_FRAGMENT = "a fragment"
    IP_NOT_FOR_US = "destination is not the gateway"
    IP_UNICAST_IN_LINK_BROADCAST = "unicast destination in a link-layer broadcast"
    IP_BAD_SOURCE = "source is not a host of the subnet"
    IP_TCP = "TCP"
    IP_OTHER_PROTOCOL = "another IP protocol"
    # ICMP
    ICMP_TRUNCATED = "ICMP shorter than 8 bytes"
    ICMP_CHECKSUM = "ICMP checksum"
    ICMP_NOT_ECHO_REQUEST = "ICMP type is not echo request"
    REPLY_OVER_MTU = "the reply would exceed the MTU"
    # UDP
    UDP_TRUNCATED = "shorter than the 8-byte UDP header"
    UDP_LENGTH = "UDP length below 8 or beyond the IP payload"
    UDP_CHECKSUM = "UDP checksum"
    UDP_BROADCAST_TO_NTP = "NTP to a broadcast address"
    PORT_UNREACHABLE = "no service on the port: ICMP port unreachable sent"
    PORT_UNREACHABLE_NOT_FOR_BROADCAST = "no service on the port, and no ICMP error may answer a broadcast"
    PORT_UNREACHABLE_RATE_LIMITED = "no service on the port, over the ICMP error rate limit"
    # NTP
    NTP_SHORT = "NTP shorter than 48 bytes"
    NTP_NOT_WORDS = "NTP length not a multiple of 4"
    NTP_VERSION = "NTP version outside 1-4"
    NTP_MODE = "NTP mode is not 3"


class Reply(enum.Enum):
    ARP = "ARP reply"
    ECHO = "ICMP echo reply"
    NTP = "NTP server reply"
    PORT_UNREACHABLE = "ICMP port unreachable"


@dataclass
class Expectation:
    """What must happen to one record."""

    number: int
    #: the record's bytes and its capture time (Unix ns)
    data: bytes
    ts_ns: int
    #: the record is not a guest's frame: why (then nothing else applies)
    skip: Reason | None = None
    #: the drop reason the gateway must count for it, if any
    drop: Reason | None = None
    #: the reply the gateway must send, if any (a port unreachable comes with its drop reason)
    reply: Reply | None = None
    #: what the dissection found that a reason's wording names (link type, NTP version and mode)
    notes: dict = field(default_factory=dict)

    def __str__(self) -> str:
        if self.skip:
            return f"#{self.number}: skipped ({self.skip.value})"
        if self.notes.get("rate limit tie"):
            return f"#{self.number}: answered with an ICMP port unreachable or not (a tie of the rate limit)"
        parts = [f"answered with an {self.reply.value}" if self.reply else "not answered"]
        if self.drop:
            parts.append(f"counted as: {self.drop.value}")
        return f"#{self.number}: " + ", ".join(parts)


# -- reading a capture (scapy's readers) --------------------------------------------------------

@dataclass
class Record:
    number: int
    ts_ns: int
    linktype: int
    data: bytes
    caplen: int
    wirelen: int


def read_records(path: Path) -> list[Record]:
    """Every whole record of the capture; a record the file ends inside is no frame at all."""
    with open(path, "rb") as f:
        pcapng = f.read(4) == b"\x0a\x0d\x0d\x0a"
    records = []
    if pcapng:
        reader = RawPcapNgReader(str(path))
        for number, (data, meta) in enumerate(reader, 1):
            ts = (meta.tshigh << 32) | meta.tslow
            ts_ns = ts * _NS // meta.tsresol
            records.append(Record(number, ts_ns, meta.linktype, data, len(data), meta.wirelen))
    else:
        reader = RawPcapReader(str(path))
        scale = 1 if reader.nano else 1000
        for number, (data, meta) in enumerate(reader, 1):
            if len(data) < meta.caplen:  # the file ends inside this record
                break
            records.append(Record(number, meta.sec * _NS + meta.usec * scale, reader.linktype, data,
                                  meta.caplen, meta.wirelen))
    reader.close()
    return records


# -- deciding each frame ----------------------------------------------------------------------

class _IcmpErrorBucket:
    """RFC 1812 §4.3.2.8's token bucket at the README's rate, in exact integer units (1e-9 token).

    A datagram that comes within `TIE` of the moment the bucket refills to one
    token may be answered or not: a gateway reading its clock as float seconds
    since 1970 sees time only to about 0.2 µs, so an exact tie can go either
    way. There `tie_break` (the gateway's actual choice) decides, and the bucket
    goes on from what was done; everywhere else the bucket decides alone.
    """

    #: 1e-3 token = 10 µs of refill at 100/s: far above float rounding, far below the corpus's spacing
    TIE = _NS // 1000

    def __init__(self) -> None:
        self.tokens = ICMP_ERROR_BURST * _NS
        self.last_ns: int | None = None

    def take(self, now_ns: int, tie_break) -> tuple[bool, bool]:
        """(send a port unreachable?, was it a tie?) for a datagram at `now_ns`."""
        if self.last_ns is not None:
            self.tokens = min(ICMP_ERROR_BURST * _NS, self.tokens + (now_ns - self.last_ns) * ICMP_ERRORS_PER_S)
        self.last_ns = now_ns
        tie = abs(self.tokens - _NS) <= self.TIE
        send = tie_break() if tie else self.tokens >= _NS
        if send:
            self.tokens = max(0, self.tokens - _NS)
        return send, tie


def expectations(path: Path, sent_port_unreachable=None) -> list[Expectation]:
    """What must happen to each record of the capture at `path`, in order.

    `sent_port_unreachable(number)` tells whether the gateway answered record
    `number` with a port unreachable; it is asked only at an exact tie of the
    ICMP error rate limit (see `_IcmpErrorBucket`), where either is right.
    """
    bucket = _IcmpErrorBucket()
    result = []
    for record in read_records(path):
        e = Expectation(record.number, record.data, record.ts_ns)
        if record.linktype != 1:
            e.skip = Reason.NOT_ETHERNET
            e.notes["linktype"] = record.linktype
        elif record.caplen < record.wirelen:
            e.skip = Reason.SNAP_CUT
        elif record.data[6:12] == GATEWAY_MAC:
            e.skip = Reason.FROM_GATEWAY
        else:
            tie_break = (lambda n=record.number: bool(sent_port_unreachable and sent_port_unreachable(n)))
            _decide_ethernet(e, record.data, _Bucket(bucket, tie_break))
        result.append(e)
    return result


class _Bucket:
    """The capture's one bucket, with this frame's tie-break."""

    def __init__(self, bucket: _IcmpErrorBucket, tie_break) -> None:
        self._bucket, self._tie_break = bucket, tie_break

    def take(self, now_ns: int) -> tuple[bool, bool]:
        return self._bucket.take(now_ns, self._tie_break)


def _decide_ethernet(e: Expectation, frame: bytes, bucket: _Bucket) -> None:
    if len(frame) < 14:
        e.drop = Reason.ETH_TRUNCATED
        return
    dst, src = frame[0:6], frame[6:12]
    (ethertype,) = struct.unpack_from("!H", frame, 12)
    if dst != GATEWAY_MAC and dst != BROADCAST_MAC:
        e.drop = Reason.ETH_MULTICAST if dst[0] & 1 else Reason.ETH_NOT_FOR_US
    elif src[0] & 1:
        e.drop = Reason.ETH_BAD_SOURCE
    elif ethertype in (0x8100, 0x88A8):
        e.drop = Reason.ETH_VLAN
    elif ethertype == 0x86DD:
        e.drop = Reason.ETH_IPV6
    elif ethertype <= 1500:
        e.drop = Reason.ETH_LLC
    elif ethertype == 0x0806:
        _decide_arp(e, frame[14:])
    elif ethertype == 0x0800:
        _decide_ipv4(e, frame, bucket)
    else:
        e.drop = Reason.ETH_OTHER_TYPE


def _decide_arp(e: Expectation, arp: bytes) -> None:
    if len(arp) < 28:
        e.drop = Reason.ARP_TRUNCATED
        return
    htype, ptype, hlen, plen, op = struct.unpack_from("!HHBBH", arp)
    if (htype, ptype, hlen, plen) != (1, 0x0800, 6, 4):
        e.drop = Reason.ARP_NOT_ETHERNET_IPV4
    elif arp[8] & 1:
        e.drop = Reason.ARP_BAD_SENDER
    elif op != 1:
        e.drop = Reason.ARP_NOT_REQUEST
    elif ipaddress.IPv4Address(arp[24:28]) != GATEWAY_IP:
        e.drop = Reason.ARP_NOT_FOR_US
    else:
        e.reply = Reply.ARP


def _decide_ipv4(e: Expectation, frame: bytes, bucket: _Bucket) -> None:
    ip = frame[14:]
    if len(ip) < 20:
        e.drop = Reason.IP_TRUNCATED
        return
    version, ihl = ip[0] >> 4, (ip[0] & 0x0F) * 4
    if version != 4:
        e.drop = Reason.IP_VERSION
        return
    if ihl < 20:
        e.drop = Reason.IP_IHL
        return
    if ihl > len(ip):
        e.drop = Reason.IP_TRUNCATED
        return
    (total,) = struct.unpack_from("!H", ip, 2)
    if not ihl <= total <= len(ip):
        e.drop = Reason.IP_TOTAL_LENGTH
        return
    if checksum(ip[:ihl]) != 0:
        e.drop = Reason.IP_CHECKSUM
        return
    (flags_fragment,) = struct.unpack_from("!H", ip, 6)
    if flags_fragment & 0x2000 or flags_fragment & 0x1FFF:  # MF, or an offset
        e.drop = Reason.IP_FRAGMENT
        return
    protocol = ip[9]
    src, dst = ipaddress.IPv4Address(ip[12:16]), ipaddress.IPv4Address(ip[16:20])
    broadcast = dst in (ipaddress.IPv4Address("255.255.255.255"), SUBNET.broadcast_address)
    if dst != GATEWAY_IP and not (broadcast and protocol == 17):
        if broadcast or dst.is_multicast:
            raise NoRule(f"#{e.number}: IP protocol {protocol} to {dst}")
        e.drop = Reason.IP_NOT_FOR_US
        return
    link_broadcast = frame[0:6] == BROADCAST_MAC
    if link_broadcast and not broadcast:
        e.drop = Reason.IP_UNICAST_IN_LINK_BROADCAST
        return
    payload = ip[ihl:total]
    if protocol == 17 and len(payload) >= 4 and struct.unpack_from("!H", payload, 2)[0] in (67, 68):
        raise NoRule(f"#{e.number}: DHCP (UDP/{struct.unpack_from('!H', payload, 2)[0]}), whose client may "
                     "send from 0.0.0.0 (RFC 1122 §3.2.1.3, RFC 2131 §4.1)")
    if src not in SUBNET or src in (SUBNET.network_address, SUBNET.broadcast_address, GATEWAY_IP):
        e.drop = Reason.IP_BAD_SOURCE
        return
    if protocol == 1:
        _decide_icmp(e, ihl, payload)
    elif protocol == 17:
        _decide_udp(e, ip[:ihl], payload, broadcast or link_broadcast, bucket)
    elif protocol == 6:
        e.drop = Reason.IP_TCP
    else:
        e.drop = Reason.IP_OTHER_PROTOCOL


def _decide_icmp(e: Expectation, ihl: int, icmp: bytes) -> None:
    if len(icmp) < 8:
        e.drop = Reason.ICMP_TRUNCATED
    elif checksum(icmp) != 0:
        e.drop = Reason.ICMP_CHECKSUM
    elif icmp[0] != 8:
        e.drop = Reason.ICMP_NOT_ECHO_REQUEST
    elif 20 + len(icmp) > MTU:  # the echo reply carries the same ICMP message behind a 20-byte header
        e.drop = Reason.REPLY_OVER_MTU
    else:
        e.reply = Reply.ECHO


def _decide_udp(e: Expectation, ip_header: bytes, udp: bytes, broadcast: bool, bucket: _Bucket) -> None:
    if len(udp) < 8:
        e.drop = Reason.UDP_TRUNCATED
        return
    sport, dport, length, udp_checksum = struct.unpack_from("!HHHH", udp)
    if not 8 <= length <= len(udp):
        e.drop = Reason.UDP_LENGTH
        return
    pseudo_header = ip_header[12:20] + struct.pack("!BBH", 0, 17, length)  # RFC 768
    if udp_checksum != 0 and checksum(pseudo_header + udp[:length]) != 0:
        e.drop = Reason.UDP_CHECKSUM
        return
    data = udp[8:length]
    if dport == 123:
        _decide_ntp(e, data, broadcast)
    elif broadcast:
        e.drop = Reason.PORT_UNREACHABLE_NOT_FOR_BROADCAST
    else:
        send, tie = bucket.take(e.ts_ns)
        if tie:
            e.notes["rate limit tie"] = True
        if send:
            e.drop, e.reply = Reason.PORT_UNREACHABLE, Reply.PORT_UNREACHABLE
        else:
            e.drop = Reason.PORT_UNREACHABLE_RATE_LIMITED


def _decide_ntp(e: Expectation, ntp: bytes, broadcast: bool) -> None:
    if broadcast:
        e.drop = Reason.UDP_BROADCAST_TO_NTP
        return
    if len(ntp) < 48:
        e.drop = Reason.NTP_SHORT
        return
    if len(ntp) % 4:
        e.drop = Reason.NTP_NOT_WORDS
        return
    version, mode = (ntp[0] >> 3) & 7, ntp[0] & 7
    e.notes.update(version=version, mode=mode)
    if not 1 <= version <= 4:
        e.drop = Reason.NTP_VERSION
    elif mode != 3:
        e.drop = Reason.NTP_MODE
    else:
        e.reply = Reply.NTP


# -- checking a reply ------------------------------------------------------------------------

def reply_problems(e: Expectation, sent: list[bytes], arrival_ns: int) -> list[str]:
    """How the frames the gateway sent for `e` differ from what the RFCs require (empty: none).

    `arrival_ns` is when the request reached the gateway on the replay's clock
    (Unix ns): the NTP reply's receive timestamp must say so.
    """
    if e.reply is None:
        return [f"sent {len(sent)} frame(s) for a frame that must not be answered"] if sent else []
    if len(sent) != 1:
        return [f"sent {len(sent)} frames; expected one {e.reply.value}"]
    reply, request = sent[0], e.data
    problems = []

    def want(what: str, got, expected) -> None:
        if got != expected:
            problems.append(f"{what}: {got!r}, expected {expected!r}")

    want("Ethernet source", reply[6:12], GATEWAY_MAC)
    if e.reply is Reply.ARP:
        # RFC 826: swap sender and target, put in our hardware address, opcode reply, sent to the asker
        want("Ethernet destination", reply[0:6], request[22:28])
        want("EtherType", reply[12:14], b"\x08\x06")
        arp, asked = reply[14:42], request[14:42]
        want("ARP htype/ptype/hlen/plen/op", arp[0:8], bytes.fromhex("0001 0800 06 04 0002"))
        want("ARP sender hardware address", arp[8:14], GATEWAY_MAC)
        want("ARP sender protocol address", arp[14:18], asked[24:28])
        want("ARP target hardware address", arp[18:24], asked[8:14])
        want("ARP target protocol address", arp[24:28], asked[14:18])
        return problems
    want("Ethernet destination", reply[0:6], request[6:12])
    want("EtherType", reply[12:14], b"\x08\x00")
    ip, asked_ip = reply[14:], request[14:]
    ihl, asked_ihl = (ip[0] & 0x0F) * 4, (asked_ip[0] & 0x0F) * 4
    (total,) = struct.unpack_from("!H", ip, 2)
    want("IP version", ip[0] >> 4, 4)
    want("IP length", len(ip) >= total, True)
    want("IP header checksum", checksum(ip[:ihl]), 0)
    want("IP source", ip[12:16], asked_ip[16:20])
    want("IP destination", ip[16:20], asked_ip[12:16])
    want("IP TTL above zero", ip[8] > 0, True)
    want("reply within the MTU", total <= MTU, True)
    body, asked_body = ip[ihl:total], asked_ip[asked_ihl:struct.unpack_from("!H", asked_ip, 2)[0]]
    if e.reply is Reply.ECHO:
        # RFC 792: "the source and destination addresses are simply reversed, the type code changed
        # to 0, and the checksum recomputed"; identifier, sequence number and data are returned
        want("IP protocol", ip[9], 1)
        want("ICMP type/code", body[0:2], b"\x00\x00")
        want("ICMP checksum", checksum(body), 0)
        want("ICMP identifier, sequence and data", body[4:], asked_body[4:])
    elif e.reply is Reply.PORT_UNREACHABLE:
        # RFC 792 type 3 code 3: the internet header plus the first 64 bits of the original datagram;
        # RFC 1812 §4.3.2.3: as much as fits in 576 bytes
        want("IP protocol", ip[9], 1)
        want("ICMP type/code", body[0:2], b"\x03\x03")
        want("ICMP checksum", checksum(body), 0)
        want("ICMP unused word", body[4:8], bytes(4))
        quoted = body[8:]
        want("quotes the original IP header and 8 bytes of its data", quoted[:asked_ihl + 8],
             asked_ip[:asked_ihl + 8])
        want("within 576 bytes", total <= 576, True)
    elif e.reply is Reply.NTP:
        problems += _ntp_reply_problems(ip[9], body, asked_body, arrival_ns)
    return problems


def _ntp_reply_problems(protocol: int, udp: bytes, asked_udp: bytes, arrival_ns: int) -> list[str]:
    problems = []

    def want(what: str, got, expected) -> None:
        if got != expected:
            problems.append(f"{what}: {got!r}, expected {expected!r}")

    want("IP protocol", protocol, 17)
    sport, dport, length, _ = struct.unpack_from("!HHHH", udp)
    asked_sport, _, asked_length, _ = struct.unpack_from("!HHHH", asked_udp)
    want("UDP ports", (sport, dport), (123, asked_sport))
    ntp, asked = udp[8:length], asked_udp[8:asked_length]
    # RFC 4330 §5: the server's reply is the 48-byte header; it is never longer than the request
    want("NTP length", len(ntp), 48)
    if len(ntp) < 48:
        return problems
    want("LI (synchronised)", ntp[0] >> 6, 0)
    want("version (copied from the request)", (ntp[0] >> 3) & 7, (asked[0] >> 3) & 7)
    want("mode", ntp[0] & 7, 4)
    want("stratum (the README's default)", ntp[1], STRATUM)
    want("poll (copied from the request)", ntp[2], asked[2])
    want("reference ID (the README's default)", ntp[12:16], REFID)
    root_delay, root_dispersion = struct.unpack_from("!II", ntp, 4)
    want("root delay below 1 s", root_delay < 1 << 16, True)
    want("root dispersion below 1 s", root_dispersion < 1 << 16, True)
    # RFC 4330 §5: "Originate Timestamp ... copied unchanged from the Transmit Timestamp field of the request"
    want("originate (the request's transmit, byte for byte)", ntp[24:32], asked[40:48])
    reference, receive, transmit = (_ntp_to_unix_ns(ntp[o:o + 8]) for o in (16, 32, 40))
    # RFC 5905 §7.3: receive = "time at the server when the request arrived"; transmit = when it departed
    if abs(receive - arrival_ns) > 1000:
        problems.append(f"receive timestamp {receive} ns, expected the arrival time {arrival_ns} ns (within 1 µs)")
    if not receive <= transmit <= receive + 1_000_000:
        problems.append(f"transmit timestamp {transmit} ns is not within 1 ms after receive {receive} ns")
    if not 0 < reference <= transmit:
        problems.append(f"reference timestamp {reference} ns is not before the transmit timestamp")
    return problems


def _ntp_to_unix_ns(stamp: bytes) -> int:
    """An NTP timestamp (era 0: the corpus is dated 2024-2026) in Unix ns."""
    seconds, fraction = struct.unpack("!II", stamp)
    return (seconds - NTP_UNIX_OFFSET) * _NS + fraction * _NS // (1 << 32)


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python3 pcaps/rfc_expectations.py CAPTURE", file=sys.stderr)
        return 2
    for expectation in expectations(Path(argv[0])):
        print(expectation)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
