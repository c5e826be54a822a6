"""A lean SNTP load generator: non-blocking UDP sockets keeping N requests in flight.

Run as a separate process (`python -m bench.loadgen HOST PORT --seconds S`);
prints one JSON line: answered, sent, lost, rate, loss.

Each request carries a sequence number in its transmit timestamp; a reply
counts only if it is a server reply (mode 4) whose originate timestamp is one
still outstanding. A request unanswered after `--timeout` seconds is lost and
replaced, so the window never drains. Bounded: it stops after `--seconds`.
"""

from __future__ import annotations

import argparse
import json
import select
import socket
import time


def run(host: str, port: int, seconds: float, inflight: int, sockets: int, timeout: float,
        warmup: float) -> dict:
    socks = []
    for _ in range(sockets):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        s.connect((host, port))
        s.setblocking(False)
        socks.append(s)
    by_fd = {s.fileno(): s for s in socks}
    poller = select.epoll()
    for s in socks:
        poller.register(s.fileno(), select.EPOLLIN)
    head = bytes([0x23, 0, 6, 0xEC]) + bytes(36)
    seq = 0
    outstanding: dict[bytes, float] = {}  # transmit timestamp -> sent at
    owner: dict[bytes, socket.socket] = {}
    sent = answered = lost = bad = send_fail = 0
    counted_answered = counted_sent = 0

    def send(s: socket.socket, now: float) -> None:
        nonlocal seq, sent, send_fail
        seq += 1
        stamp = seq.to_bytes(8, "big")
        try:
            s.send(head + stamp)
        except (BlockingIOError, ConnectionRefusedError):
            send_fail += 1
            return
        outstanding[stamp] = now
        owner[stamp] = s
        sent += 1

    per_socket = max(1, inflight // sockets)
    now = time.perf_counter()
    for s in socks:
        for _ in range(per_socket):
            send(s, now)
    start = now
    measure_from = start + warmup
    end = measure_from + seconds
    measuring = False
    next_sweep = now + timeout / 4
    while True:
        now = time.perf_counter()
        if not measuring and now >= measure_from:
            measuring = True
            counted_answered, counted_sent, lost_at_start, t0 = answered, sent, lost, now
        if now >= end:
            break
        for fd, _ in poller.poll(0.05):
            s = by_fd[fd]
            while True:
                try:
                    reply = s.recv(512)
                except BlockingIOError:
                    break
                except ConnectionRefusedError:
                    bad += 1
                    continue
                stamp = reply[24:32]
                if len(reply) < 48 or reply[0] & 7 != 4 or outstanding.pop(stamp, None) is None:
                    bad += 1
                    continue
                del owner[stamp]
                answered += 1
                send(s, time.perf_counter())
        if now >= next_sweep:
            next_sweep = now + timeout / 4
            stale = [stamp for stamp, at in outstanding.items() if now - at > timeout]
            for stamp in stale:
                del outstanding[stamp]
                s = owner.pop(stamp)
                lost += 1
                send(s, now)
    elapsed = now - t0
    # grace period: replies to requests still in flight are not losses
    grace_end = time.perf_counter() + min(timeout, 0.5)
    while outstanding and time.perf_counter() < grace_end:
        for fd, _ in poller.poll(0.02):
            s = by_fd[fd]
            while True:
                try:
                    reply = s.recv(512)
                except (BlockingIOError, ConnectionRefusedError):
                    break
                outstanding.pop(reply[24:32], None)
    lost += len(outstanding)
    for s in socks:
        s.close()
    done = answered - counted_answered
    issued = sent - counted_sent
    return {"answered": done, "sent": issued, "lost": lost - lost_at_start, "bad": bad,
            "send_fail": send_fail, "seconds": elapsed, "rate": done / elapsed,
            "loss": (lost - lost_at_start) / max(1, issued)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("host")
    parser.add_argument("port", type=int)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--warmup", type=float, default=0.3)
    parser.add_argument("--inflight", type=int, default=64)
    parser.add_argument("--sockets", type=int, default=4)
    parser.add_argument("--timeout", type=float, default=0.5)
    args = parser.parse_args()
    result = run(args.host, args.port, min(args.seconds, 60.0), args.inflight, args.sockets, args.timeout,
                 args.warmup)
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
