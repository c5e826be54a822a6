"""Run inside the guest namespace: ntplib queries alternating between servers; one JSON line out.

`python -m bench.ntp_client --server 192.168.65.1:123 --server 127.0.0.1:123 --count 400`
sends `count` queries to each server, alternating, `--interval` seconds apart,
and prints {"HOST:PORT": [[offset, delay], ...], "failures": {...}}. ntplib only
reads the clock (it never sets it).
"""

from __future__ import annotations

import argparse
import json
import time

import ntplib


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--server", action="append", required=True)
    parser.add_argument("--count", type=int, default=400)
    parser.add_argument("--interval", type=float, default=0.01)
    parser.add_argument("--timeout", type=float, default=1.0)
    args = parser.parse_args()
    client = ntplib.NTPClient()
    results: dict[str, list] = {s: [] for s in args.server}
    failures: dict[str, int] = {s: 0 for s in args.server}
    deadline = time.monotonic() + 120  # bounded whatever happens
    for _ in range(min(args.count, 10_000)):
        for server in args.server:
            host, port = server.rsplit(":", 1)
            try:
                r = client.request(host, port=int(port), version=4, timeout=args.timeout)
            except Exception:
                failures[server] += 1
            else:
                results[server].append([r.offset, r.delay, r.leap, r.stratum])
            time.sleep(args.interval)
        if time.monotonic() > deadline:
            break
    print(json.dumps({"results": results, "failures": failures}), flush=True)


if __name__ == "__main__":
    main()
