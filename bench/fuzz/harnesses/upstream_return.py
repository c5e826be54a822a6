"""The upstream return path: `Stack.receive_upstream` on a flow a guest's request opened.

Input: byte 0 = the request's length in words (12 + n % 8, so 48..76 bytes), then the
request payload (its mode and version forced to a client's, so that a flow opens), then
what the upstream answers: up to four replies, each a u16 big-endian length and bytes, the
last on a flow id that does not exist. Properties: no exception escapes; a reply reaches
the guest only if it is an NTP server reply (mode 4) no longer than the request; the frame
is well-formed and addressed to the guest, port and gateway address of the flow, from
port 123; the time service's counters add up (answered + its drops = replies handed in).
"""

from __future__ import annotations

import struct

from bench.common import udp_frame
from bench.fuzz.frame_checks import check_emitted, require
from bench.fuzz.harnesses.stack_frames import CONFIG, build_stack
from gateway.core.service import Forward

NAME = "upstream_return"


def seeds() -> list[bytes]:
    request = bytes([0x23, 0, 6, 0xEC]) + bytes(36) + bytes(range(8))
    reply = bytes([0x24, 2, 6, 0xEC]) + bytes(20) + bytes(range(8)) + bytes(16)
    return [bytes([0]) + request + struct.pack("!H", len(reply)) + reply,
            bytes([5]) + request + bytes(20) + struct.pack("!H", 68) + reply + bytes(20)
            + struct.pack("!H", 48) + bytes([0x1C]) + bytes(47)]


def check(data: bytes) -> None:
    if not data:
        return
    length = 4 * (12 + data[0] % 8)
    request = bytearray(data[1:1 + length].ljust(length, b"\0"))
    request[0] = (request[0] & 0xC0) | (((request[0] >> 3) & 7) % 4 + 1) << 3 | 3
    rest = data[1 + length:]
    stack = build_stack()
    service = stack.services[123]
    frame = udp_frame(bytes(request), 40000)
    outputs = stack.receive_frame(frame, 10.0)
    forwards = [o for o in outputs if isinstance(o, Forward)]
    require(len(forwards) == 1 and len(outputs) == 1, f"a client request made {outputs!r}")
    flow = forwards[0].flow
    replies, offset = [], 0
    while offset + 2 <= len(rest) and len(replies) < 4:
        (n,) = struct.unpack_from("!H", rest, offset)
        replies.append(rest[offset + 2:offset + 2 + n])
        offset += 2 + n
    handed = 0
    for i, reply in enumerate(replies):
        flow_id = flow.id if i < len(replies) - 1 or len(replies) == 1 else flow.id + 1000
        answered, dropped = service.answered, sum(service.drops.values())
        out = stack.receive_upstream(123, flow_id, reply, 11.0 + i)
        handed += 1
        require(service.answered + sum(service.drops.values()) == answered + dropped + 1,
                "an upstream reply neither answered nor dropped")
        if out is None:
            continue
        require(flow_id == flow.id, "a reply on no flow reached a guest")
        require(len(reply) >= 48 and reply[0] & 7 == 4, "a reply that is not mode 4 reached the guest")
        require(len(reply) <= len(request), "an NTP reply longer than its request (amplification)")
        check_emitted(out, frame, CONFIG.gateway.mtu, stack.local_ips)
        require(out[34:36] == b"\x00\x7b" and out[42:] [:len(reply)] == reply, "not the reply, or not from port 123")
        require(out[26:30] == flow.local_ip, "the reply comes from another gateway address than the guest wrote to")
