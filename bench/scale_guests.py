"""Scale: 1,000 guests attached over `--qemu-stream`, each asking for the time once a second for 60 s.

`hostclock run --qemu-stream PATH` serves `bench.guest_swarm` (another process):
1,000 stream connections, each a guest with its own MAC and addresses, each
sending one NTP request a second from a new source port (a new flow each time,
as real clients do), the sends spread evenly over the second. Figures: requests
lost (target 0), the exchange latency p99 as the driver sees it (send -> reply
read, with the driver's own scheduling in it), and the gateway's RSS at the end.
Quick: 100 guests for 5 s.
"""

from __future__ import annotations

import json
import subprocess
import tempfile

from .common import PYTHON, REPO, Child, Figure, child_env, hostclock_argv, process_tree, rss_kib

NAME = "scale_guests"


def run(quick: bool = False) -> list[Figure]:
    guests, seconds = (100, 5.0) if quick else (1000, 60.0)
    with tempfile.TemporaryDirectory(prefix="hc-bench-") as tmp:
        path = f"{tmp}/qemu.sock"
        # warnings only: a line per attached guest would fill the unread stderr pipe and stall the gateway
        # and as many guests at once as the driver attaches (64 by default; more are refused)
        with Child(hostclock_argv("run", "--qemu-stream", path, "--log-level", "warning",
                                  "--max-guests", str(guests)),
                   ready_marker="hostclock:") as gateway:
            cp = subprocess.run([PYTHON, "-m", "bench.guest_swarm", path, "--guests", str(guests),
                                 "--seconds", str(seconds)], capture_output=True, text=True,
                                timeout=seconds + 120, cwd=REPO, env=child_env())
            if cp.returncode != 0:
                raise RuntimeError(f"guest swarm failed: {cp.stderr.strip()[-2000:]}")
            result = json.loads(cp.stdout)
            rss_mb = sum(rss_kib(p) for p in process_tree(gateway.pid)) / 1024
    label = f"{guests} guests over --qemu-stream, 1 query/s each, {seconds:.0f} s"
    return [
        Figure(NAME, f"{label}: lost", result["lost"], f"of {result['sent']}", target="0",
               holds=result["lost"] == 0, extra=result),
        Figure(NAME, f"{label}: exchange latency p99", result["latency_p99"] * 1e3, "ms",
               anchor="p50", anchor_value=result["latency_p50"] * 1e3,
               ratio=result["latency_p99"] / result["latency_p50"], ratio_note="p99 / p50",
               extra={"max_ms": result["latency_max"] * 1e3}),
        Figure(NAME, f"{label}: RSS of hostclock run at the end", rss_mb, "MB"),
    ]
