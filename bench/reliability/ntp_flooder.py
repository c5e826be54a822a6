"""A guest that floods valid NTP requests over `--qemu-stream`, as fast as the link takes them.

    python -m bench.reliability.ntp_flooder PATH --seconds 20

It is guest 192.168.65.9 (MAC 52:54:00:00:00:09), cycling through 64 source ports, and it
reads what comes back, counting the NTP replies per second. Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import socket
import struct
import time

from bench.common import ntp_request, udp_frame

FLOODER_MAC = bytes.fromhex("525400000009")
FLOODER_IP = bytes([192, 168, 65, 9])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("path")
    parser.add_argument("--seconds", type=float, default=20.0)
    args = parser.parse_args(argv)
    frames = [udp_frame(ntp_request(0x1000 + i), 50000 + i, src_ip=FLOODER_IP, src_mac=FLOODER_MAC) for i in range(64)]
    blob = b"".join(struct.pack("!I", len(f)) + f for f in frames)
    record = len(blob) // len(frames)  # every frame has the same length: frames sent = bytes sent / record
    sent_bytes = answered = 0
    pending = memoryview(blob)
    buffer = bytearray()
    started = time.monotonic()
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.connect(args.path)
        sock.setblocking(False)
        while time.monotonic() - started < args.seconds and sent_bytes < 5_000_000_000:
            try:
                n = sock.send(pending)  # whole or in part: the rest goes first next time (framing intact)
                sent_bytes += n
                pending = pending[n:] if n < len(pending) else memoryview(blob)
            except BlockingIOError:
                time.sleep(0.0005)
            try:
                while True:
                    data = sock.recv(1 << 20)
                    if not data:
                        break
                    buffer += data
                    while len(buffer) >= 4 and len(buffer) >= 4 + struct.unpack_from("!I", buffer)[0]:
                        n = struct.unpack_from("!I", buffer)[0]
                        frame = bytes(buffer[4:4 + n])
                        del buffer[:4 + n]
                        if len(frame) >= 90 and frame[23] == 17 and frame[34:36] == b"\x00\x7b":
                            answered += 1
            except BlockingIOError:
                pass
    elapsed = time.monotonic() - started
    sent = sent_bytes // record
    print(json.dumps({"sent": sent, "answered": answered, "seconds": round(elapsed, 2),
                      "answered_per_s": round(answered / elapsed, 2), "sent_per_s": round(sent / elapsed)}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
