"""A hostile guest's garbage, as fast as it can send it, for `--seconds`; prints one JSON line.

    python -m bench.reliability.garbage --tap IFACE --seconds 30        # inside the guest namespace
    python -m bench.reliability.garbage --qemu-stream PATH --seconds 30

The frames (4,096, seeded) are random bytes, valid ARP/ICMP/NTP frames with bytes
mutated, broadcast frames, and IPv4 to the gateway's MAC with random headers: what
costs the gateway the most work per frame without being answered (mostly).
"""

from __future__ import annotations

import argparse
import json
import random
import socket
import struct
import time

from bench.common import GATEWAY_MAC, GUEST_MAC, arp_request, ntp_request, udp_frame


def garbage_frames(count: int = 4096, seed: int = 5) -> list[bytes]:
    rng = random.Random(seed)
    valid = [arp_request(), udp_frame(ntp_request(), 40000), udp_frame(b"x" * 64, 40001, dport=9)]
    frames = []
    for i in range(count):
        kind = i % 4
        if kind == 0:
            frame = bytes(rng.getrandbits(8) for _ in range(rng.randrange(14, 300)))
        elif kind == 1:
            frame = bytearray(rng.choice(valid))
            for _ in range(rng.randint(1, 6)):
                frame[rng.randrange(len(frame))] = rng.randrange(256)
            frame = bytes(frame)
        elif kind == 2:
            frame = b"\xff" * 6 + GUEST_MAC + rng.choice([b"\x08\x06", b"\x08\x00", b"\x86\xdd"]) + bytes(
                rng.getrandbits(8) for _ in range(rng.randrange(46, 200)))
        else:
            frame = GATEWAY_MAC + GUEST_MAC + b"\x08\x00" + bytes(rng.getrandbits(8) for _ in range(rng.randrange(20, 200)))
        frames.append(frame[:14] + frame[14:] if len(frame) >= 14 else frame.ljust(14, b"\0"))
    return frames


def flood_tap(iface: str, seconds: float, frames: list[bytes]) -> int:
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    sock.bind((iface, 0))
    sock.setblocking(False)
    sent, deadline = 0, time.monotonic() + seconds
    while time.monotonic() < deadline and sent < 100_000_000:
        for frame in frames:
            try:
                sock.send(frame)
                sent += 1
            except BlockingIOError:
                time.sleep(0.0001)
            except OSError:
                pass
    sock.close()
    return sent


def flood_stream(path: str, seconds: float, frames: list[bytes]) -> int:
    blob = b"".join(struct.pack("!I", len(f)) + f for f in frames)
    sent, deadline = 0, time.monotonic() + seconds
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.connect(path)
        sock.settimeout(0.5)
        while time.monotonic() < deadline and sent < 100_000_000:
            try:
                sock.sendall(blob)
                sent += len(frames)
            except socket.timeout:
                pass
    return sent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--tap")
    where.add_argument("--qemu-stream")
    parser.add_argument("--seconds", type=float, default=30.0)
    args = parser.parse_args(argv)
    frames = garbage_frames()
    started = time.monotonic()
    sent = flood_tap(args.tap, args.seconds, frames) if args.tap else flood_stream(args.qemu_stream, args.seconds, frames)
    elapsed = time.monotonic() - started
    print(json.dumps({"frames_sent": sent, "seconds": round(elapsed, 2), "rate": round(sent / elapsed)}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
