"""Scale: 10,000 distinct guest flows against the flow-table limit (1024).

Through a real gateway (`hostclock run --qemu-stream`): the guest driver sends
one NTP request from each of 10,000 distinct (ip, port) endpoints, 32 in
flight, so past the first 1024 every new flow evicts (vpnkit's rule: the
oldest quarter at the limit) and closes sockets. Reported:

* time per new flow in the last 1024 flows (at 10k) against the first 1024
  (at 1k, no eviction yet): flat means ≈ 1;
* RSS after 10k flows against RSS after 1k: bounded means ≈ 1;
* the sans-IO flow table alone: time per new flow when 100k flows went through
  against 1k (in process, no sockets).
"""

from __future__ import annotations

import tempfile
import time

from .common import Child, Figure, hostclock_argv, process_tree, rss_kib
from .guest_stream import StreamGuest

NAME = "flow_scale"


def _table_cost(total: int, measure_last: int = 1024) -> float:
    """Seconds per new flow over the last `measure_last` of `total` new flows (sans-IO FlowTable)."""
    from gateway.core.flows import FlowTable
    from gateway.core.service import GuestAddress

    table = FlowTable(max_flows=1024)
    mac = b"\x52\x54\x00\x12\x34\x56"
    guests = [GuestAddress(mac, bytes([192, 168, (i >> 16) & 255, (i >> 8) & 255]), i & 0xFFFF) for i in range(total)]
    local = bytes([192, 168, 65, 1])
    for g in guests[:total - measure_last]:
        table.touch(g, local, 1.0)
        table.take_closed()
    start = time.perf_counter()
    for g in guests[total - measure_last:]:
        table.touch(g, local, 1.0)
        table.take_closed()
    return (time.perf_counter() - start) / measure_last


def run(quick: bool = False) -> list[Figure]:
    total = 4096 if quick else 10_000
    chunk = 1024
    with tempfile.TemporaryDirectory(prefix="hc-bench-") as tmp:
        path = f"{tmp}/qemu.sock"
        with Child(hostclock_argv("run", "--qemu-stream", path), ready_marker="hostclock:") as gateway:
            guest = StreamGuest(path)
            try:
                guest.query(timeout=5)
                first = guest.new_flows(chunk, chunk=chunk)
                rss_1k = sum(rss_kib(p) for p in process_tree(gateway.pid))
                rest = guest.new_flows(total - chunk, chunk=chunk)
                rss_10k = sum(rss_kib(p) for p in process_tree(gateway.pid))
            finally:
                guest.close()
    t_first = first["chunk_seconds"][0] / chunk
    t_last = rest["chunk_seconds"][-1] / chunk
    table_1k = min(_table_cost(1024) for _ in range(3))
    table_big = min(_table_cost(100_000) for _ in range(3))
    return [
        Figure(NAME, f"time per new flow at {total // 1000}k flows (through the gateway)", t_last * 1e6, "µs",
               anchor="time per new flow, first 1k flows", anchor_value=t_first * 1e6, ratio=t_last / t_first,
               ratio_note=f"{total // 1000}k / 1k", target="flat (≈ 1×)", holds=t_last / t_first <= 1.5,
               extra={"chunk_seconds": first["chunk_seconds"] + rest["chunk_seconds"],
                      "lost": first["lost"] + rest["lost"]}),
        Figure(NAME, f"RSS after {total // 1000}k flows", rss_10k / 1024, "MB", anchor="RSS after 1k flows",
               anchor_value=rss_1k / 1024, ratio=rss_10k / rss_1k, ratio_note=f"{total // 1000}k / 1k",
               target="bounded (≈ 1×)", holds=rss_10k / rss_1k <= 1.2),
        Figure(NAME, "flow table alone: time per new flow at 100k flows", table_big * 1e6, "µs",
               anchor="same at 1k flows", anchor_value=table_1k * 1e6, ratio=table_big / table_1k,
               ratio_note="100k / 1k", target="flat (≈ 1×)", holds=table_big / table_1k <= 1.5),
    ]
