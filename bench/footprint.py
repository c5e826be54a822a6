"""Footprint of a serving gateway: memory (RSS) and the CPU it burns while idle.

`hostclock run --qemu-stream PATH` (through bench.run_probe, which only adds a
SIGUSR1 handler that lists the loaded modules) serves a guest driver for a
moment (load over 8 flows); then:

* memory: RSS of the process tree (gateway plus any child), with PSS beside it;
  the module list from inside the serving process shows whether scapy, or the
  demo's rich and matplotlib, were imported on the run path;
* idle cost: CPU time (user + system, all threads) and context switches of the
  tree over 30 s (quick: 5 s) with no traffic, as a share of one core.
"""

from __future__ import annotations

import json
import os
import signal
import tempfile
import time

from .common import PYTHON, Child, Figure, child_env, context_switches, cpu_seconds, process_tree, pss_kib, rss_kib
from .guest_stream import StreamGuest

NAME = "footprint"


def run(quick: bool = False) -> list[Figure]:
    idle_seconds = 5.0 if quick else 30.0
    with tempfile.TemporaryDirectory(prefix="hc-bench-") as tmp:
        path, probe = f"{tmp}/qemu.sock", f"{tmp}/probe.json"
        env = dict(child_env(), HOSTCLOCK_PROBE_OUT=probe)
        with Child([PYTHON, "-m", "bench.run_probe", "run", "--qemu-stream", path], env=env,
                   ready_marker="hostclock:") as gateway:
            guest = StreamGuest(path)
            try:
                guest.query(timeout=5)
                load = guest.load(0.5 if quick else 2.0, inflight=32, flows=8, warmup=0.1)
                time.sleep(0.5)
                pids = process_tree(gateway.pid)
                rss = sum(rss_kib(p) for p in pids)
                pss = sum(pss_kib(p) for p in pids)
                os.kill(gateway.pid, signal.SIGUSR1)
                deadline = time.monotonic() + 5
                while not os.path.exists(probe) and time.monotonic() < deadline:
                    time.sleep(0.01)
                time.sleep(0.1)
                with open(probe) as f:
                    modules = json.load(f)
                # idle: the guest stays attached, sends nothing
                time.sleep(1.0)
                cpu0 = sum(cpu_seconds(p) for p in pids)
                ctx0 = sum(context_switches(p) for p in pids)
                t0 = time.monotonic()
                time.sleep(idle_seconds)
                elapsed = time.monotonic() - t0
                cpu = sum(cpu_seconds(p) for p in pids) - cpu0
                ctx = sum(context_switches(p) for p in pids) - ctx0
            finally:
                guest.close()
    rss_mb, pss_mb = rss / 1024, pss / 1024
    share = cpu / elapsed
    return [
        Figure(NAME, "memory: RSS of hostclock run, serving", rss_mb, "MB", target="≤ 40 MB, no scapy, no rich/matplotlib",
               holds=rss_mb <= 40 and not modules["scapy"] and not modules["demo_libraries"],
               extra={"pss_mb": pss_mb, "processes": len(pids), "scapy_modules_loaded": len(modules["scapy"]),
                      "demo_libraries_loaded": modules["demo_libraries"],
                      "modules_loaded": modules["modules"], "top_level_modules": modules["top_level"],
                      "served": load["answered"]}),
        Figure(NAME, f"idle cost: CPU over {idle_seconds:.0f} s idle", share * 100, "% of a core",
               target="≤ 0.1 % of a core", holds=share <= 0.001,
               extra={"cpu_seconds": cpu, "context_switches": ctx, "idle_seconds": elapsed}),
    ]
