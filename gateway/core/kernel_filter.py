"""The frames the stack could act on, as a classic BPF program the kernel runs before queueing a frame.

A TAP device queues what its far side sends until the gateway reads it, and
drops what does not fit. A guest that floods it (garbage as fast as it can
send) fills that queue with frames the stack would only drop, and its own
well-formed requests are lost among them. Linux runs a socket filter attached
to the TAP (`TUNATTACHFILTER`) on every frame *before* it is queued, so the
frames the stack is certain to drop never take a place in the queue nor cost
the gateway a read. The kernel counts what the filter drops as the device's
TX drops (`ip -s link show dev NAME`).

The program is a superset of the stack's acceptance, never narrower: it keeps
every frame the stack could answer, forward or learn from. It makes the
stack's checks that sit at fixed offsets, and leaves the rest (the UDP and ICMP
checksums, source addresses, RFC 1122's broadcast rules) to the stack, which
counts what it drops by reason as before. It keeps:

- frames to the gateway's MAC or to ff:ff:ff:ff:ff:ff from a unicast MAC, and of those
- ARP requests for Ethernet and IPv4 (htype 1, ptype 0x0800, hlen 6, plen 4,
  op 1) whose sender hardware address is the frame's source, and whose target
  protocol address is one of the gateway's;
- IPv4 with a header of at least 20 bytes and a total length within the
  frame, not a fragment, whose header checksum is right (checked for a
  20-byte header, the usual one; one with options is left to the stack), to
  one of the gateway's addresses, that is ICMP or UDP (to a bound port only
  when unbound ports are silently dropped; otherwise every port, as each may
  be answered with port unreachable);
- IPv4 UDP to the limited or the subnet broadcast address, to a port whose
  service takes broadcasts (DHCP).

A load past the frame's end ends a classic BPF program with 0 (drop): the
stack drops such a short frame too. Sans-IO and stdlib only: the program is
data, built here from the stack's configuration; the TAP edge attaches it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from gateway.core.stack import Stack

__all__ = ["Instruction", "frame_filter", "ACCEPT_LENGTH"]

# <linux/filter.h>, <linux/bpf_common.h>: the classic BPF instruction classes, sizes and modes used here
BPF_LD, BPF_LDX, BPF_ST, BPF_ALU, BPF_JMP, BPF_RET, BPF_MISC = 0x00, 0x01, 0x02, 0x04, 0x05, 0x06, 0x07
BPF_W, BPF_H, BPF_B = 0x00, 0x08, 0x10
BPF_ABS, BPF_IND, BPF_MEM, BPF_LEN, BPF_MSH = 0x20, 0x40, 0x60, 0x80, 0xA0
BPF_ADD, BPF_RSH, BPF_AND = 0x00, 0x70, 0x50
BPF_JA, BPF_JEQ, BPF_JGE, BPF_JSET = 0x00, 0x10, 0x30, 0x40
BPF_K, BPF_X = 0x00, 0x08
BPF_TAX = 0x00

#: what an accepting program returns: bytes of the frame to keep (all of any frame)
ACCEPT_LENGTH = 0x40000

_ETHERTYPE_IPV4, _ETHERTYPE_ARP = 0x0800, 0x0806
_PROTO_ICMP, _PROTO_UDP = 1, 17
#: offsets in an Ethernet frame (IPv4 ones for a 20-byte header; the UDP port follows the real IHL)
_ARP_HTYPE_PTYPE, _ARP_HLEN_PLEN, _ARP_OP, _ARP_SENDER_MAC, _ARP_TARGET_IP = 14, 14 + 4, 14 + 6, 14 + 8, 14 + 24
_ARP_ETHERNET_IPV4, _ARP_LENGTHS, _ARP_REQUEST = 0x00010800, 0x0604, 1
_SOURCE_MAC = 6
_IPV4_TOTAL_LENGTH = 14 + 2
_IPV4_VERSION, _IPV4_FRAGMENT, _IPV4_PROTOCOL, _IPV4_DESTINATION = 14, 14 + 6, 14 + 9, 14 + 16
#: the "more fragments" flag and the fragment offset
_FRAGMENT_BITS = 0x3FFF


@dataclass(frozen=True)
class Instruction:
    """One `struct sock_filter`: opcode, jump-if-true and jump-if-false offsets, constant."""

    code: int
    jt: int
    jf: int
    k: int


def frame_filter(stack: "Stack") -> tuple[Instruction, ...]:
    """The classic BPF program keeping what `stack` could act on (see the module's docstring)."""
    config = stack.config
    mac = stack.mac
    local_ips = sorted(int.from_bytes(ip, "big") for ip in stack.local_ips)
    broadcast_ips = sorted({0xFFFFFFFF, int(config.network.broadcast_address)})
    services = stack.services
    broadcast_ports = sorted(port for port, service in services.items() if service.accepts_broadcast)
    unicast_ports = None if config.unbound_udp == "port-unreachable" else sorted(services)

    p = _Program()
    # Ethernet: to the gateway's MAC, or broadcast
    p.load(BPF_W, 0)
    p.jump_if(int.from_bytes(mac[:4], "big"), "gateway mac", "broadcast mac")
    p.label("gateway mac")
    p.load(BPF_H, 4)
    p.jump_if(int.from_bytes(mac[4:], "big"), "source mac", "drop")
    p.label("broadcast mac")
    p.jump_if(0xFFFFFFFF, "broadcast mac low", "drop")
    p.label("broadcast mac low")
    p.load(BPF_H, 4)
    p.jump_if(0xFFFF, "source mac", "drop")
    p.label("source mac")
    p.load(BPF_B, _SOURCE_MAC)
    p.jump_set(1, "drop", "ethertype")  # the group bit: a broadcast or multicast source
    p.label("ethertype")
    p.load(BPF_H, 12)
    p.jump_if(_ETHERTYPE_IPV4, "ipv4", "not ipv4")
    p.label("not ipv4")
    p.jump_if(_ETHERTYPE_ARP, "arp", "drop")
    # ARP: an Ethernet/IPv4 request from a unicast sender, for one of the gateway's addresses
    p.label("arp")
    p.load(BPF_W, _ARP_HTYPE_PTYPE)
    p.jump_if(_ARP_ETHERNET_IPV4, "arp lengths", "drop")
    p.label("arp lengths")
    p.load(BPF_H, _ARP_HLEN_PLEN)
    p.jump_if(_ARP_LENGTHS, "arp op", "drop")
    p.label("arp op")
    p.load(BPF_H, _ARP_OP)
    p.jump_if(_ARP_REQUEST, "arp sender", "drop")
    p.label("arp sender")
    p.load(BPF_W, _ARP_SENDER_MAC)  # ar$sha is the frame's source MAC (which is unicast: checked above)
    p.emit(BPF_MISC | BPF_TAX)
    p.load(BPF_W, _SOURCE_MAC)
    p.emit(BPF_JMP | BPF_JEQ | BPF_X, "arp sender low", "drop")
    p.label("arp sender low")
    p.load(BPF_H, _ARP_SENDER_MAC + 4)
    p.emit(BPF_MISC | BPF_TAX)
    p.load(BPF_H, _SOURCE_MAC + 4)
    p.emit(BPF_JMP | BPF_JEQ | BPF_X, "arp target", "drop")
    p.label("arp target")
    p.load(BPF_W, _ARP_TARGET_IP)
    p.one_of(local_ips, "accept")
    # IPv4: version 4, a header of 20 bytes or more, the datagram within the frame
    p.label("ipv4")
    p.load(BPF_B, _IPV4_VERSION)
    p.jump_if(0x45, "header checksum", "not 20 bytes")
    p.label("not 20 bytes")
    p.emit(BPF_ALU | BPF_AND | BPF_K, k=0xF0)
    p.jump_if(0x40, "ihl", "drop")
    p.label("ihl")
    p.load(BPF_B, _IPV4_VERSION)
    p.emit(BPF_ALU | BPF_AND | BPF_K, k=0x0F)
    p.emit(BPF_JMP | BPF_JGE | BPF_K, "total length", "drop", 5)
    # a 20-byte header's checksum: the one's complement sum of its ten 16-bit words is 0xFFFF
    # (RFC 791 §3.1, RFC 1071). Ten words sum to S < 2**20; one fold, (S >> 16) + (S & 0xFFFF),
    # is at most 0xFFFF + 15, and equals 0xFFFF exactly when the folded sum does (a second fold
    # would only turn a result above 0xFFFF into one of at most 15: wrong either way)
    p.label("header checksum")
    p.load(BPF_H, 14)
    for offset in range(16, 34, 2):
        p.emit(BPF_MISC | BPF_TAX)
        p.load(BPF_H, offset)
        p.emit(BPF_ALU | BPF_ADD | BPF_X)
    p.emit(BPF_ST, k=0)  # M[0] = S
    p.emit(BPF_ALU | BPF_RSH | BPF_K, k=16)
    p.emit(BPF_MISC | BPF_TAX)
    p.emit(BPF_LD | BPF_MEM, k=0)
    p.emit(BPF_ALU | BPF_AND | BPF_K, k=0xFFFF)
    p.emit(BPF_ALU | BPF_ADD | BPF_X)
    p.jump_if(0xFFFF, "total length", "drop")
    p.label("total length")
    p.load(BPF_H, _IPV4_TOTAL_LENGTH)
    p.emit(BPF_ALU | BPF_ADD | BPF_K, k=14)
    p.emit(BPF_MISC | BPF_TAX)
    p.emit(BPF_LD | BPF_W | BPF_LEN)
    p.emit(BPF_JMP | BPF_JGE | BPF_X, "unfragmented", "drop")  # frame length >= 14 + total length
    # not a fragment, to the gateway or broadcast
    p.label("unfragmented")
    p.load(BPF_H, _IPV4_FRAGMENT)
    p.jump_set(_FRAGMENT_BITS, "drop", "destination")
    p.label("destination")
    p.load(BPF_W, _IPV4_DESTINATION)
    p.dispatch([(ip, "to the gateway") for ip in local_ips] + [(ip, "to broadcast") for ip in broadcast_ips])
    p.label("to the gateway")
    p.load(BPF_B, _IPV4_PROTOCOL)
    p.jump_if(_PROTO_ICMP, "accept", "not icmp")
    p.label("not icmp")
    if unicast_ports is None:
        p.jump_if(_PROTO_UDP, "accept", "drop")
    else:
        p.jump_if(_PROTO_UDP, "unicast port", "drop")
        p.label("unicast port")
        p.udp_destination_port()
        p.one_of(unicast_ports, "accept")
    p.label("to broadcast")
    p.load(BPF_B, _IPV4_PROTOCOL)
    p.jump_if(_PROTO_UDP, "broadcast port", "drop")
    p.label("broadcast port")
    p.udp_destination_port()
    p.one_of(broadcast_ports, "accept")
    p.label("accept")
    p.emit(BPF_RET | BPF_K, k=ACCEPT_LENGTH)
    p.label("drop")
    p.emit(BPF_RET | BPF_K, k=0)
    return p.assemble()


class _Program:
    """A tiny assembler: instructions with jumps to labels, resolved to classic BPF's forward offsets."""

    def __init__(self) -> None:
        self._code: list[tuple[int, str | None, str | None, int]] = []
        self._labels: dict[str, int] = {}
        self._fresh = 0

    def emit(self, code: int, jt: str | None = None, jf: str | None = None, k: int = 0) -> None:
        self._code.append((code, jt, jf, k))

    def label(self, name: str) -> None:
        if name in self._labels:
            raise ValueError(f"label {name!r} defined twice")
        self._labels[name] = len(self._code)

    def load(self, size: int, offset: int) -> None:
        self.emit(BPF_LD | size | BPF_ABS, k=offset)

    def jump_if(self, value: int, if_equal: str, otherwise: str) -> None:
        self.emit(BPF_JMP | BPF_JEQ | BPF_K, if_equal, otherwise, value)

    def jump_set(self, bits: int, if_any: str, if_none: str) -> None:
        self.emit(BPF_JMP | BPF_JSET | BPF_K, if_any, if_none, bits)

    def dispatch(self, cases: list[tuple[int, str]]) -> None:
        """To the target of the first case whose value A equals, else to "drop"."""
        for value, target in cases:
            self._fresh += 1
            following = f"case {self._fresh}"
            self.jump_if(value, target, following)
            self.label(following)
        self.emit(BPF_JMP | BPF_JA | BPF_K, jt="drop")

    def one_of(self, values: list[int], target: str) -> None:
        """To `target` if A is one of `values`, else to "drop"."""
        self.dispatch([(value, target) for value in values])

    def udp_destination_port(self) -> None:
        """A = the UDP destination port: X = the IPv4 header's length (4 * IHL), then a load past it."""
        self.emit(BPF_LDX | BPF_B | BPF_MSH, k=14)
        self.emit(BPF_LD | BPF_H | BPF_IND, k=14 + 2)

    def assemble(self) -> tuple[Instruction, ...]:
        program = []
        for index, (code, jt, jf, k) in enumerate(self._code):
            if code == BPF_JMP | BPF_JA:
                program.append(Instruction(code, 0, 0, self._offset(index, jt)))
            elif code & 0x07 == BPF_JMP:
                program.append(Instruction(code, self._offset(index, jt), self._offset(index, jf), k))
            else:
                program.append(Instruction(code, 0, 0, k))
        return tuple(program)

    def _offset(self, index: int, label: str | None) -> int:
        if label not in self._labels:
            raise ValueError(f"jump to undefined label {label!r}")
        offset = self._labels[label] - index - 1
        if not 0 <= offset <= 255:
            raise ValueError(f"jump to {label!r} is {offset} instructions: classic BPF jumps 0..255 forward")
        return offset
