"""The time service's screening of guest requests, and the SNTP responder that answers them.

Input: byte 0 = which path (bit 0: through the time service first), then the request.
Properties: no exception escapes; the responder answers with exactly 48 bytes, never more
than the request, mode 4 to mode 3 and mode 2 to mode 1 only, the version copied, the
originate field the request's transmit timestamp byte for byte, the transmit timestamp the
clock it read; a request it does not answer is counted under one reason; whatever the
time service forwards, the responder answers (the screening is no looser than the server).
"""

from __future__ import annotations

from bench.fuzz.frame_checks import require
from plugins.ntp.config import NtpConfig
from gateway.core.service import GuestAddress
from plugins.ntp.kernel_state import UNKNOWN_KERNEL_STATE
from plugins.ntp.responder import Responder, ServerState
from plugins.ntp.time_service import TimeService

NAME = "ntp_screening"
GUEST = GuestAddress(bytes.fromhex("525400123456"), bytes([192, 168, 65, 3]), 40000)
GATEWAY = bytes([192, 168, 65, 1])
CLOCK = 0xE9B2_1A4C_0123_4567


RESPONDER = Responder(ServerState.from_config(NtpConfig(), UNKNOWN_KERNEL_STATE, precision=-20,
                                             reference_ntp=CLOCK - (1 << 32)))


def seeds() -> list[bytes]:
    client = bytes([0x23, 0, 6, 0xEC]) + bytes(36) + bytes(range(1, 9))
    return [b"\x01" + client, b"\x00" + client, b"\x00" + bytes([0x0B]) + client[1:],
            b"\x01" + client + bytes(20), b"\x00" + bytes([0x17]) + client[1:]]


def check(data: bytes) -> None:
    if not data:
        return
    request = data[1:]
    through_service = data[0] & 1
    forwarded = False
    if through_service:
        service = TimeService()
        before = sum(service.drops.values())
        outputs = service.handle_datagram(GUEST, GATEWAY, request, 5.0)
        forwarded = bool(outputs)
        require(len(outputs) + sum(service.drops.values()) - before == 1, "screening counted wrong")
        require(service.forwarded == len(outputs), "forwarded count")
        if forwarded:
            require(outputs[0].payload == request, "the time service changed the request")
    drops_before = sum(RESPONDER.drops.values())
    reads = []
    reply = RESPONDER.respond(request, CLOCK - 1000, lambda: reads.append(1) or CLOCK)
    if reply is None:
        require(sum(RESPONDER.drops.values()) == drops_before + 1, "an unanswered request not counted once")
        require(not forwarded, "the time service forwarded a request the responder will not answer")
        return
    require(len(reads) == 1, "the clock read more or less than once")
    require(len(reply) == 48 and len(reply) <= len(request), f"reply of {len(reply)} to {len(request)} bytes")
    mode, reply_mode = request[0] & 7, reply[0] & 7
    require((mode, reply_mode) in ((3, 4), (1, 2)), f"mode {mode} answered with mode {reply_mode}")
    require((reply[0] >> 3) & 7 == (request[0] >> 3) & 7, "version not copied")
    require(reply[24:32] == request[40:48], "originate is not the request's transmit timestamp")
    require(reply[40:48] == CLOCK.to_bytes(8, "big"), "transmit is not the clock read")
    require(reply[2] == request[2], "poll not copied")
