"""A guest that tries to reach everywhere: run inside the guest namespace, prints one JSON line.

    python -m bench.reliability.spray --destinations 10000 --seconds 30

Each round sends, to each of the destinations, a UDP datagram (ports 123, 53,
67, 443 and random ones in turn), a TCP SYN (a non-blocking connect, closed
again) and an ICMP echo request (a raw socket). The destinations are the
three documentation ranges and random unicast addresses (seeded, so each run
is the same); the guest's default route is the gateway, so every one of them
reaches the gateway as a frame to its MAC. Meanwhile a second thread uses NTP
as a guest would: a request to the gateway every 100 ms, counting the replies
whose originate timestamp is the request's transmit timestamp.

Rounds repeat until `--seconds` have passed (at least one round); every loop is
bounded in count and time.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import random
import socket
import struct
import threading
import time

GATEWAY = "192.168.65.1"
_SKIP = [ipaddress.ip_network(n) for n in ("0.0.0.0/8", "127.0.0.0/8", "192.168.65.0/24", "224.0.0.0/3")]


def destinations(count: int, seed: int = 12) -> list[str]:
    """The documentation ranges first, then random unicast addresses off the guest subnet."""
    picked: list[str] = []
    for net in ("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24"):
        picked.extend(str(a) for a in ipaddress.ip_network(net))
    rng = random.Random(seed)
    while len(picked) < count:
        address = ipaddress.IPv4Address(rng.getrandbits(32))
        if not any(address in net for net in _SKIP):
            picked.append(str(address))
    return picked[:count]


def _icmp_echo(ident: int, seq: int) -> bytes:
    header = struct.pack("!BBHHH", 8, 0, 0, ident, seq) + b"hostclock-spray!"
    s = sum(struct.unpack(f"!{len(header) // 2}H", header))
    s = (s & 0xFFFF) + (s >> 16)
    s = (s & 0xFFFF) + (s >> 16)
    return header[:2] + struct.pack("!H", ~s & 0xFFFF) + header[4:]


def spray_round(targets: list[str], counts: dict[str, int], rng: random.Random) -> None:
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.setblocking(False)
    icmp = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
    icmp.setblocking(False)
    try:
        for i, address in enumerate(targets):
            port = (123, 53, 67, 443)[i % 4] if i % 5 else rng.randrange(1, 65536)
            payload = bytes([0x23]) + bytes(47) if port == 123 else b"spray"
            for what, sock, data, to in (("udp", udp, payload, (address, port)),
                                         ("icmp", icmp, _icmp_echo(os.getpid() & 0xFFFF, i & 0xFFFF), (address, 0))):
                try:
                    sock.sendto(data, to)
                    counts[what] += 1
                except OSError:  # a full socket buffer: wait a moment, count it as not sent
                    counts[f"{what}_not_sent"] += 1
                    time.sleep(0.001)
        for start in range(0, len(targets), 256):  # TCP: SYNs in batches, each socket closed again
            batch = []
            for address in targets[start:start + 256]:
                s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                s.setblocking(False)
                try:
                    s.connect((address, (80, 443, 22)[len(batch) % 3]))
                except BlockingIOError:
                    counts["tcp"] += 1
                except OSError:
                    counts["tcp_not_sent"] += 1
                batch.append(s)
            time.sleep(0.02)
            for s in batch:
                s.close()
    finally:
        udp.close()
        icmp.close()


def ntp_client(stop: threading.Event, results: dict) -> None:
    """A guest using NTP normally, every 100 ms; records delays of the answered queries."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.settimeout(1.0)
    try:
        while not stop.is_set() and results["sent"] < 100_000:
            transmit = os.urandom(8)
            t0 = time.monotonic()
            sock.sendto(bytes([0x23, 0, 6, 0xEC]) + bytes(36) + transmit, (GATEWAY, 123))
            results["sent"] += 1
            deadline = t0 + 1.0
            while time.monotonic() < deadline:
                try:
                    reply = sock.recv(512)
                except (socket.timeout, BlockingIOError):
                    break
                if len(reply) >= 48 and reply[24:32] == transmit:
                    results["delays_ms"].append((time.monotonic() - t0) * 1000)
                    break
            stop.wait(0.1)
    finally:
        sock.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--destinations", type=int, default=10_000)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--ntp-only", action="store_true", help="send nothing but the NTP polls (a polite guest)")
    args = parser.parse_args(argv)
    targets = destinations(args.destinations)
    counts = {"udp": 0, "tcp": 0, "icmp": 0, "udp_not_sent": 0, "tcp_not_sent": 0, "icmp_not_sent": 0}
    ntp = {"sent": 0, "delays_ms": []}
    stop = threading.Event()
    client = threading.Thread(target=ntp_client, args=(stop, ntp), daemon=True)
    client.start()
    rng = random.Random(7)
    started = time.monotonic()
    rounds = 0
    while rounds < 1000:
        if args.ntp_only:
            stop.wait(args.seconds)
            break
        spray_round(targets, counts, rng)
        rounds += 1
        if time.monotonic() - started >= args.seconds:
            break
    stop.set()
    client.join(timeout=3)
    delays = sorted(ntp["delays_ms"])
    print(json.dumps({
        "destinations": len(targets), "rounds": rounds, "seconds": round(time.monotonic() - started, 1),
        "sent": counts, "ntp_sent": ntp["sent"], "ntp_answered": len(delays),
        "ntp_p99_delay_ms": round(delays[min(len(delays) - 1, int(0.99 * len(delays)))], 2) if delays else None,
        "ntp_p50_delay_ms": round(delays[len(delays) // 2], 2) if delays else None,
        "ntp_p90_delay_ms": round(delays[int(0.9 * len(delays))], 2) if delays else None,
        "ntp_max_delay_ms": round(delays[-1], 2) if delays else None,
    }))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
