"""The `peers` bench's SNTP client, run inside each guest namespace (and once on the host's loopback).

It stays up for the whole bench and takes one command per line on stdin:

    QUERY HOST PORT COUNT INTERVAL      ->  one JSON line: {"rows": [[offset, delay], ...], "lost": N}
    QUIT

and measures as a real client does, with nothing between the clock reads and the wire:

- a new socket, so a new source port, for every query (chronyd, ntpdig and ntplib do the same: each
  query is a new flow for whatever stands between the client and the server);
- a random transmit timestamp (as chronyd sends), checked against the reply's originate;
- T1 = the clock read just before `send`; T4 = the kernel's receive timestamp of the reply
  (`SO_TIMESTAMPNS`, CLOCK_REALTIME), so the client's own wake-up is not in the delay;
- offset = ((T2 - T1) + (T3 - T4)) / 2, delay = (T4 - T1) - (T3 - T2) (RFC 5905 §8).

It only reads the clock. Every loop is bounded: COUNT at most 10,000, each query waits at most
`_TIMEOUT` seconds, then counts as lost.
"""

from __future__ import annotations

import json
import os
import select
import socket
import struct
import sys
import time

_NTP_UNIX_OFFSET = 2_208_988_800
_TIMEOUT = 0.5
_MAX_COUNT = 10_000
#: SO_TIMESTAMPNS on Linux (the socket module does not name it); its control message is SCM_TIMESTAMPNS
SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)
_TIMESPEC = struct.Struct("@qq")
_HEADER = struct.Struct("!B3x4x4x4x8x8s8s8s")  # first byte; originate, receive, transmit
_CMSG_SPACE = socket.CMSG_SPACE(_TIMESPEC.size)


def _ntp_to_ns(raw: bytes) -> int:
    seconds, fraction = struct.unpack("!II", raw)
    # era 0 (until 2036): the server answers with today's date
    return (seconds - _NTP_UNIX_OFFSET) * 1_000_000_000 + ((fraction * 1_000_000_000) >> 32)


def query(address: tuple[str, int]) -> tuple[float, float] | None:
    """One exchange on a new socket: (offset, delay) in seconds, or None if lost or not a valid reply."""
    cookie = os.urandom(8)
    request = b"\x23" + bytes(39) + cookie  # LI 0, version 4, mode 3; the transmit timestamp is the cookie
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        sock.connect(address)
        t1 = time.time_ns()
        sock.send(request)
        deadline = time.monotonic() + _TIMEOUT
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([sock], [], [], left)[0]:
                return None
            try:
                data, ancillary, _, _ = sock.recvmsg(1024, _CMSG_SPACE)
            except ConnectionRefusedError:
                return None
            if len(data) < 48 or data[0] & 7 != 4 or data[24:32] != cookie:
                continue  # not the answer to this query: keep waiting for it
            t4 = None
            for level, kind, value in ancillary:
                if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS:
                    sec, nsec = _TIMESPEC.unpack(value[:_TIMESPEC.size])
                    t4 = sec * 1_000_000_000 + nsec
            if t4 is None:
                t4 = time.time_ns()
            break
    t2, t3 = _ntp_to_ns(data[32:40]), _ntp_to_ns(data[40:48])
    offset = ((t2 - t1) + (t3 - t4)) / 2e9
    delay = ((t4 - t1) - (t3 - t2)) / 1e9
    return offset, delay


def run_queries(host: str, port: int, count: int, interval: float) -> dict:
    rows, lost = [], 0
    for _ in range(min(count, _MAX_COUNT)):
        result = query((host, port))
        if result is None:
            lost += 1
        else:
            rows.append(result)
        time.sleep(interval)
    return {"rows": rows, "lost": lost}


def main() -> None:
    for line in sys.stdin:
        words = line.split()
        if not words or words[0] == "QUIT":
            break
        if words[0] != "QUERY" or len(words) != 5:
            print(json.dumps({"error": f"unknown command {line.strip()!r}"}), flush=True)
            continue
        _, host, port, count, interval = words
        print(json.dumps(run_queries(host, int(port), int(count), float(interval))), flush=True)


if __name__ == "__main__":
    main()
