"""The stack's `receive_frame`, with every service behind it, over a sequence of frames.

Input: byte 0 = flags (bit 0: make the checksums right first, to get past them), then frames,
each a u16 big-endian length and the bytes; each frame arrives 0.25 s after the one before.
Properties, per frame: no exception escapes; every emitted frame is well-formed, from the
gateway, addressed to the guest that spoke and within the MTU (`frame_checks.check_emitted`);
every `Forward` carries a request the time service's screening lets through; the counters
add up: frames_received rises by one, and the frame was either handed to exactly one service,
answered by the stack itself, or dropped (one reason counted); frames_sent counts the frames.
"""

from __future__ import annotations

import struct
from collections import Counter

from bench.fuzz.frame_checks import check_emitted, fix_checksums, require
from bench.fuzz.seeds import stack_seed_frames
from gateway.app.config import Config
from gateway.core.drops import Drop
from gateway.core.service import Forward
from gateway.core.stack import Stack
from plugins.dhcp.plugin import PLUGIN as DHCP
from plugins.ntp.plugin import PLUGIN as NTP

NAME = "stack_frames"
CONFIG = Config().replace(ntp={"max_flows": 4}, gateway={"host_alias_ip": "192.168.65.2"})
#: drops of a reply, counted beside the frame's own fate
_REPLY_SIDE = {Drop.REPLY_OVER_MTU, Drop.REPLY_BAD_DESTINATION}


def split_frames(data: bytes, limit: int = 32) -> tuple[int, list[bytes]]:
    flags = data[0] if data else 0
    frames, offset = [], 1
    while offset + 2 <= len(data) and len(frames) < limit:
        (length,) = struct.unpack_from("!H", data, offset)
        frames.append(data[offset + 2:offset + 2 + length])
        offset += 2 + length
    return flags, frames


def join_frames(frames: list[bytes], flags: int = 1) -> bytes:
    return bytes([flags]) + b"".join(struct.pack("!H", len(f)) + f for f in frames)


def seeds() -> list[bytes]:
    frames = stack_seed_frames()
    return [join_frames([f]) for f in frames] + [join_frames(frames)]


def build_stack(config: Config = CONFIG) -> Stack:
    """The stack `gateway.app.assembly.build_stack` makes (the ntp and dhcp plugins' services),
    without the entry-point scan, which would cost most of each execution."""
    services = [service for plugin in (NTP, DHCP)
                for service in plugin.contribute(config.settings_for(plugin), config.gateway).services]
    return Stack(config.gateway, services)


def _count_calls(service, calls: Counter) -> None:
    handle = service.handle_datagram

    def counted(*args, **kwargs):
        calls[service.port] += 1
        return handle(*args, **kwargs)

    service.handle_datagram = counted


def check(data: bytes) -> None:
    flags, frames = split_frames(data)
    stack = build_stack(CONFIG)
    calls: Counter = Counter()
    for service in stack.services.values():
        _count_calls(service, calls)
    time_service = stack.services[123]
    mtu = CONFIG.gateway.mtu
    now = 1000.0
    for frame in frames:
        if flags & 1:
            frame = fix_checksums(frame)
        received, sent = stack.frames_received, stack.frames_sent
        drops_before = Counter(stack.drops)
        calls_before = sum(calls.values())
        forwarded_before = time_service.forwarded
        outputs = stack.receive_frame(frame, now)
        now += 0.25
        emitted = [o for o in outputs if type(o) is bytes]
        forwards = [o for o in outputs if isinstance(o, Forward)]
        require(len(emitted) + len(forwards) == len(outputs), f"emitted {outputs!r}")
        for out in emitted:
            check_emitted(out, frame, mtu, stack.local_ips)
        for forward in forwards:
            require(forward.port == 123 and 48 <= len(forward.payload) and len(forward.payload) % 4 == 0
                    and forward.payload[0] & 7 == 3 and 1 <= (forward.payload[0] >> 3) & 7 <= 4,
                    "forwarded a request the screening should have dropped")
            require(forward.flow.guest.mac == frame[6:12] and forward.flow.guest.ip == frame[26:30],
                    "a flow keyed on another guest than the one that spoke")
        require(time_service.forwarded - forwarded_before == len(forwards), "forwarded count")
        require(stack.frames_received == received + 1, "frames_received")
        require(stack.frames_sent == sent + len(emitted), "frames_sent does not count the frames emitted")
        new_drops = stack.drops - drops_before
        frame_drops = sum(n for reason, n in new_drops.items() if reason not in _REPLY_SIDE)
        handed = sum(calls.values()) - calls_before
        if handed:
            require(handed == 1 and frame_drops == 0, f"handed to {handed} services and dropped {dict(new_drops)}")
        elif frame_drops:
            require(frame_drops == 1, f"one frame, {frame_drops} drops: {dict(new_drops)}")
            require(len(emitted) <= 1 and (not emitted or Drop.PORT_UNREACHABLE in new_drops),
                    "a dropped frame answered")
        else:
            require(len(emitted) == 1 or Drop.REPLY_OVER_MTU in new_drops,
                    f"a frame neither handed on, answered nor dropped: {frame[:42].hex()}")
