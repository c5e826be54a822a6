"""A guest on a QEMU `-netdev stream` socket, as a bench driver: u32 big-endian length + frame.

`StreamGuest` sends NTP request frames (correct IPv4 and UDP checksums, a
sequence number in the transmit timestamp) and matches the replies by their
originate timestamp. As a module (`python -m bench.guest_stream PATH ...`) it
runs the load in its own process and prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import select
import socket
import struct
import time

from .common import GATEWAY_IP, GUEST_IP, ntp_request, udp_frame

_PREFIX = struct.Struct("!I")


class _FlowTemplate:
    """A request frame for one guest (ip, port) whose UDP checksum is patched per transmit stamp."""

    def __init__(self, sport: int, src_ip: bytes = GUEST_IP) -> None:
        frame = udp_frame(ntp_request(0), sport, src_ip=src_ip)
        # one's complement sum (mod 0xFFFF) of the pseudo header + UDP datagram with stamp and checksum zero
        udp = frame[34:]
        pseudo = src_ip + GATEWAY_IP + struct.pack("!BBH", 0, 17, len(udp))
        zeroed = udp[:6] + b"\0\0" + udp[8:]
        self.base = int.from_bytes(pseudo + zeroed, "big") % 0xFFFF
        self.head = frame[:40]  # up to the UDP checksum
        self.body = frame[42:-8]  # after the checksum, up to the transmit stamp
        self.length = len(frame)

    def frame(self, stamp: int) -> bytes:
        s = (self.base + stamp % 0xFFFF) % 0xFFFF
        checksum = (~(s or 0xFFFF) & 0xFFFF) or 0xFFFF
        return self.head + checksum.to_bytes(2, "big") + self.body + stamp.to_bytes(8, "big")


class StreamGuest:
    def __init__(self, path: str, *, connect_timeout: float = 5.0) -> None:
        deadline = time.monotonic() + connect_timeout
        while True:
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                self.sock.connect(path)
                break
            except (FileNotFoundError, ConnectionRefusedError):
                self.sock.close()
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.002)
        self.sock.setblocking(False)
        self._buffer = bytearray()
        self._seq = 0
        self._templates: dict[tuple[bytes, int], _FlowTemplate] = {}

    def close(self) -> None:
        self.sock.close()

    def template(self, sport: int, src_ip: bytes = GUEST_IP) -> _FlowTemplate:
        key = (src_ip, sport)
        t = self._templates.get(key)
        if t is None:
            t = self._templates[key] = _FlowTemplate(sport, src_ip)
        return t

    def next_stamp(self) -> int:
        self._seq += 1
        return (0xE000_0000 << 32) | self._seq

    def send_frames(self, frames: list[bytes]) -> None:
        data = b"".join(_PREFIX.pack(len(f)) + f for f in frames)
        view = memoryview(data)
        deadline = time.monotonic() + 5
        while view:
            try:
                n = self.sock.send(view)
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise TimeoutError("gateway is not reading")
                select.select([], [self.sock], [], 0.1)
                continue
            view = view[n:]

    def receive_frames(self, timeout: float) -> list[bytes]:
        """Frames available now, waiting up to `timeout` for the first."""
        ready, _, _ = select.select([self.sock], [], [], timeout)
        if not ready:
            return []
        frames = []
        while True:
            try:
                data = self.sock.recv(1 << 18)
            except BlockingIOError:
                break
            if not data:
                raise EOFError("gateway closed the stream")
            self._buffer += data
            if len(data) < (1 << 18):
                break
        buf = self._buffer
        offset = 0
        while len(buf) - offset >= 4:
            (length,) = _PREFIX.unpack_from(buf, offset)
            if len(buf) - offset - 4 < length:
                break
            frames.append(bytes(buf[offset + 4:offset + 4 + length]))
            offset += 4 + length
        del buf[:offset]
        return frames

    @staticmethod
    def reply_stamp(frame: bytes) -> int | None:
        """The originate timestamp of an NTP server reply frame from gateway:123, else None."""
        if len(frame) < 90 or frame[12:14] != b"\x08\x00" or frame[23] != 17 or frame[34:36] != b"\x00\x7b":
            return None
        if frame[42] & 7 != 4:
            return None
        return int.from_bytes(frame[66:74], "big")

    def query(self, sport: int = 40000, timeout: float = 1.0, src_ip: bytes = GUEST_IP) -> float | None:
        """One exchange; the round-trip time in seconds, or None on timeout."""
        stamp = self.next_stamp()
        start = time.perf_counter()
        self.send_frames([self.template(sport, src_ip).frame(stamp)])
        deadline = start + timeout
        while (left := deadline - time.perf_counter()) > 0:
            for frame in self.receive_frames(left):
                if self.reply_stamp(frame) == stamp:
                    return time.perf_counter() - start
        return None

    def new_flows(self, count: int, window: int = 32, chunk: int = 1024, timeout: float = 1.0) -> dict:
        """`count` exchanges, each from a new guest (ip, port); seconds per chunk of `chunk` new flows."""
        endpoints = [(bytes([192, 168, 65, 3 + (i // 50000) % 250]), 10000 + i % 50000) for i in range(count)]
        outstanding: dict[int, float] = {}
        chunk_times: list[float] = []
        lost = 0
        next_index = 0
        chunk_start = time.perf_counter()
        done = 0

        def send(n: int) -> None:
            nonlocal next_index
            frames = []
            now = time.perf_counter()
            for _ in range(n):
                if next_index >= count:
                    break
                ip, port = endpoints[next_index]
                stamp = self.next_stamp()
                frames.append(_FlowTemplate(port, ip).frame(stamp))
                outstanding[stamp] = now
                next_index += 1
            if frames:
                self.send_frames(frames)

        send(window)
        hard_deadline = time.monotonic() + 120
        while (outstanding or next_index < count) and time.monotonic() < hard_deadline:
            finished = 0
            for frame in self.receive_frames(0.05):
                if outstanding.pop(self.reply_stamp(frame) or -1, None) is not None:
                    finished += 1
            now = time.perf_counter()
            stale = [s for s, at in outstanding.items() if now - at > timeout]
            for s in stale:
                del outstanding[s]
            lost += len(stale)
            finished += len(stale)
            for _ in range(finished):
                done += 1
                if done % chunk == 0:
                    chunk_times.append(now - chunk_start)
                    chunk_start = now
            send(finished)
        return {"chunk_seconds": chunk_times, "chunk": chunk, "lost": lost, "done": done}

    def load(self, seconds: float, inflight: int, flows: int, warmup: float = 0.3,
             timeout: float = 0.5, first_port: int = 40000) -> dict:
        """Keep `inflight` exchanges in flight over `flows` guest ports for `seconds`."""
        ports = [first_port + i for i in range(flows)]
        templates = [self.template(p) for p in ports]
        outstanding: dict[int, float] = {}
        sent = answered = lost = 0
        turn = 0

        def requests(n: int, now: float) -> list[bytes]:
            nonlocal turn, sent
            out = []
            for _ in range(n):
                stamp = self.next_stamp()
                out.append(templates[turn % flows].frame(stamp))
                turn += 1
                outstanding[stamp] = now
            sent += n
            return out

        start = time.perf_counter()
        self.send_frames(requests(inflight, start))
        measure_from, end = start + warmup, start + warmup + seconds
        measuring = False
        next_sweep = start + timeout / 4
        while True:
            now = time.perf_counter()
            if not measuring and now >= measure_from:
                measuring, t0, base_answered, base_sent, base_lost = True, now, answered, sent, lost
            if now >= end:
                break
            done = 0
            for frame in self.receive_frames(0.05):
                stamp = self.reply_stamp(frame)
                if stamp is not None and outstanding.pop(stamp, None) is not None:
                    done += 1
            answered += done
            if now >= next_sweep:
                next_sweep = now + timeout / 4
                stale = [s for s, at in outstanding.items() if now - at > timeout]
                for s in stale:
                    del outstanding[s]
                lost += len(stale)
                done += len(stale)
            if done:
                self.send_frames(requests(done, time.perf_counter()))
        elapsed = now - t0
        grace = time.perf_counter() + 0.3
        while outstanding and time.perf_counter() < grace:
            for frame in self.receive_frames(0.02):
                outstanding.pop(self.reply_stamp(frame) or -1, None)
        lost += len(outstanding)
        done = answered - base_answered
        return {"answered": done, "sent": sent - base_sent, "lost": lost - base_lost, "seconds": elapsed,
                "rate": done / elapsed, "loss": (lost - base_lost) / max(1, sent - base_sent)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("path")
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--inflight", type=int, default=64)
    parser.add_argument("--flows", type=int, default=8)
    args = parser.parse_args()
    guest = StreamGuest(args.path)
    try:
        if guest.query(timeout=5.0) is None:
            raise SystemExit("no answer from the gateway")
        result = guest.load(min(args.seconds, 60.0), args.inflight, args.flows)
    finally:
        guest.close()
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
