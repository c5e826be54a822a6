"""Many guests on a QEMU `-netdev stream` socket, each asking for the time once a second, as a bench driver.

`python -m bench.guest_swarm PATH --guests 1000 --seconds 60` connects `guests`
streams to the gateway's socket (each one guest: its own MAC, and an IPv4 address
and source ports no other guest uses), then each guest sends one NTP request per
`--interval` seconds, the guests' sends spread evenly over the interval, each
request from a new source port (as chronyd, ntpdig and ntplib do, so each is a
new flow for the gateway). A reply is matched by its originate timestamp; one not
back within `--timeout` seconds is lost. Prints one JSON line: sent, answered,
lost, and the exchange latency (send -> reply read, this process's view) p50/p99/max.

Bounded: at most 5,000 guests and 600 seconds; the connect phase has its own deadline.
"""

from __future__ import annotations

import argparse
import json
import os
import select
import socket
import struct
import time

from .common import GATEWAY_IP, ntp_request, percentile, udp_frame

_PREFIX = struct.Struct("!I")
_MAX_GUESTS = 5_000
_MAX_SECONDS = 600.0


class _Guest:
    __slots__ = ("sock", "mac", "ip", "ports", "buffer")

    def __init__(self, path: str, index: int, deadline: float) -> None:
        while True:
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                self.sock.connect(path)
                break
            except (FileNotFoundError, ConnectionRefusedError, BlockingIOError):
                self.sock.close()
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.005)
        self.sock.setblocking(False)
        self.mac = bytes([0x52, 0x54, 0x00, (index >> 16) & 0xFF, (index >> 8) & 0xFF, index & 0xFF])
        # 252 addresses (.3-.254), so up to ~20 guests share one; each guest its own port range
        self.ip = bytes([192, 168, 65, 3 + index % 252])
        first = 1024 + (index // 252) * 2000
        self.ports = iter(range(first, first + 2000))
        self.buffer = bytearray()

    def request(self, stamp: int) -> bytes:
        frame = udp_frame(ntp_request(stamp), next(self.ports), src_ip=self.ip, dst_ip=GATEWAY_IP, src_mac=self.mac)
        return _PREFIX.pack(len(frame)) + frame

    def replies(self) -> list[int]:
        """The originate timestamps of the NTP replies readable now."""
        try:
            data = self.sock.recv(1 << 16)
        except BlockingIOError:
            return []
        if not data:
            raise EOFError("the gateway closed a guest's stream")
        buf = self.buffer
        buf += data
        stamps, offset = [], 0
        while len(buf) - offset >= 4:
            (length,) = _PREFIX.unpack_from(buf, offset)
            if len(buf) - offset - 4 < length:
                break
            frame = buf[offset + 4:offset + 4 + length]
            offset += 4 + length
            if len(frame) >= 90 and frame[34:36] == b"\x00\x7b" and frame[42] & 7 == 4:
                stamps.append(int.from_bytes(frame[66:74], "big"))
        del buf[:offset]
        return stamps


def run(path: str, guests: int, seconds: float, interval: float, timeout: float) -> dict:
    guests = min(guests, _MAX_GUESTS)
    seconds = min(seconds, _MAX_SECONDS)
    connect_deadline = time.monotonic() + 30
    swarm = [_Guest(path, i, connect_deadline) for i in range(guests)]
    by_fd = {g.sock.fileno(): g for g in swarm}
    poller = select.epoll()
    for fd in by_fd:
        poller.register(fd, select.EPOLLIN)
    outstanding: dict[int, float] = {}
    latencies: list[float] = []
    sent = lost = late = 0
    seq = 0
    step = interval / guests
    start = time.monotonic() + 0.5  # every guest attached before the first send
    end = start + seconds
    next_index, next_at = 0, start
    hard_deadline = end + timeout + 5
    try:
        while True:
            now = time.monotonic()
            if now > hard_deadline:
                break
            # the sends due now (a late loop catches up at once: the schedule does not drift)
            while next_at <= now and next_at < end:
                seq += 1
                stamp = (0xE100_0000 << 32) | seq
                guest = swarm[next_index]
                data = guest.request(stamp)
                try:
                    n = guest.sock.send(data)
                except BlockingIOError:
                    lost += 1  # the gateway is not reading this guest's stream
                else:
                    if n < len(data):  # keep the stream's framing whole: the rest, waiting at most 1 s
                        guest.sock.settimeout(1.0)
                        guest.sock.sendall(data[n:])
                        guest.sock.setblocking(False)
                    outstanding[stamp] = time.monotonic()
                    sent += 1
                next_index += 1
                if next_index == guests:
                    next_index = 0
                next_at += step
            if next_at >= end and not outstanding:
                break
            wait = max(0.0, min(next_at, end + timeout) - time.monotonic())
            for fd, _ in poller.poll(min(wait, 0.05)):
                for stamp in by_fd[fd].replies():
                    at = outstanding.pop(stamp, None)
                    if at is not None:
                        latencies.append(time.monotonic() - at)
                    else:
                        late += 1
            now = time.monotonic()
            if outstanding and now - next(iter(outstanding.values())) > timeout:
                for stamp in [s for s, at in outstanding.items() if now - at > timeout]:
                    del outstanding[stamp]
                    lost += 1
    finally:
        poller.close()
        for g in swarm:
            g.sock.close()
    lost += len(outstanding)
    return {"guests": guests, "seconds": seconds, "interval": interval, "sent": sent, "answered": len(latencies),
            "lost": lost, "late_replies": late,
            "latency_p50": percentile(latencies, 50), "latency_p99": percentile(latencies, 99),
            "latency_max": max(latencies) if latencies else float("nan"), "driver_pid": os.getpid()}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("path")
    parser.add_argument("--guests", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--interval", type=float, default=1.0)
    parser.add_argument("--timeout", type=float, default=2.0)
    args = parser.parse_args()
    print(json.dumps(run(args.path, args.guests, args.seconds, args.interval, args.timeout)), flush=True)


if __name__ == "__main__":
    main()
