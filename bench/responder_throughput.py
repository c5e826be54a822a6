"""SNTP responder throughput: requests/s answered on loopback with < 0.1 % loss.

The responder is `hostclock serve --listen 127.0.0.1:PORT` (the embedded
responder's code, in its own process). The load comes from `bench.loadgen` in
another process: non-blocking UDP sockets keeping a fixed number of requests in
flight; a request unanswered after 0.5 s is lost (and replaced).

Anchor: `chronyd -x` (never touches the clock) as a server on its own loopback
port, `local stratum 1`, `allow 127.0.0.1` (tests/realpeers ChronyServer),
under the same generator. Interleaved rounds; the best round of each counts.
"""

from __future__ import annotations

import json
import subprocess

from .common import PYTHON, REPO, Child, Figure, child_env, free_udp_port, hostclock_argv, realpeers

NAME = "responder_throughput"
INFLIGHT = 128
SOCKETS = 4


def load(port: int, seconds: float, inflight: int = INFLIGHT) -> dict:
    argv = [PYTHON, "-m", "bench.loadgen", "127.0.0.1", str(port), "--seconds", str(seconds),
            "--inflight", str(inflight), "--sockets", str(SOCKETS)]
    cp = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 30, env=child_env(), cwd=REPO)
    if cp.returncode != 0:
        raise RuntimeError(f"load generator failed: {cp.stderr}")
    return json.loads(cp.stdout)


def _best(results: list[dict]) -> dict:
    ok = [r for r in results if r["loss"] < 0.001] or results
    return max(ok, key=lambda r: r["rate"])


def run(quick: bool = False) -> list[Figure]:
    seconds = 1.0 if quick else 3.0
    rounds = 1 if quick else 3
    ours: list[dict] = []
    theirs: list[dict] = []
    port = free_udp_port()
    with Child(hostclock_argv("serve", "--listen", f"127.0.0.1:{port}"), ready_marker="hostclock:"), \
            realpeers().ChronyServer(stratum=1) as chrony:
        for _ in range(rounds):
            ours.append(load(port, seconds))
            theirs.append(load(chrony.port, seconds))
    best, anchor = _best(ours), _best(theirs)
    return [Figure(NAME, "SNTP responder throughput (loopback)", best["rate"], "req/s",
                   anchor="chronyd -x server, same generator", anchor_value=anchor["rate"],
                   ratio=best["rate"] / anchor["rate"], ratio_note="of chronyd",
                   target="≥ 50k req/s, loss < 0.1 %",
                   holds=best["rate"] >= 50_000 and best["loss"] < 0.001,
                   extra={"loss": best["loss"], "chronyd_loss": anchor["loss"], "inflight": INFLIGHT,
                          "sockets": SOCKETS, "rounds": [r["rate"] for r in ours],
                          "chronyd_rounds": [r["rate"] for r in theirs]})]
