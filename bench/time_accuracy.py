"""Time accuracy through the gateway: a guest namespace on a TAP asks 192.168.65.1 for the time.

The guest is a network namespace (it shares the host clock, so the true offset
is 0) whose only link is hostclock's TAP: `hostclock run --tap NAME`, in the
root namespace, forwards each request through a per-flow loopback socket to the
embedded responder and back. Inside the namespace, ntplib (`bench.ntp_client`)
alternates queries between the gateway and the anchor.

Anchor: `chronyd -x` (never touches the clock) serving on the namespace's own
loopback, 127.0.0.1:123 — the same client, the same namespace, no gateway. So
"delay added by the gateway" = median delay via the gateway - median delay direct.

Checks with clients that validate the reply: ntpdig -j and chronyd -Q (query
only), a few times each, through the gateway and direct.
"""

from __future__ import annotations

import json
import statistics
import subprocess

from .common import PYTHON, REPO, Child, Figure, hostclock_argv, percentile, realpeers

NAME = "time_accuracy"
GATEWAY = "192.168.65.1"


def _stats(rows: list[list[float]]) -> dict:
    offsets = [abs(r[0]) for r in rows]
    signed = [r[0] for r in rows]
    delays = [r[1] for r in rows]
    return {"n": len(rows), "median_abs_offset": statistics.median(offsets),
            "p99_abs_offset": percentile(offsets, 99), "median_offset": statistics.median(signed),
            "median_delay": statistics.median(delays), "p99_delay": percentile(delays, 99),
            "unsynchronised_answers": sum(1 for r in rows if r[2] == 3 or r[3] in (0, 16))}


def _checks(ns, rp, repeats: int) -> dict:
    out: dict[str, list] = {}
    for label, fn in (("ntpdig via gateway", lambda: rp.clients.ntpdig(ns, GATEWAY, timeout=5)),
                      ("ntpdig direct", lambda: rp.clients.ntpdig(ns, "127.0.0.1", timeout=5)),
                      ("chronyd -Q via gateway", lambda: rp.clients.chronyd_query(ns, GATEWAY, timeout=10)),
                      ("chronyd -Q direct", lambda: rp.clients.chronyd_query(ns, "127.0.0.1", timeout=10))):
        if rp.clients.missing_tools(label.split()[0]):
            continue
        values = []
        for _ in range(repeats):
            try:
                values.append(fn().offset)
            except rp.clients.ClientError as e:
                values.append(f"rejected: {str(e).splitlines()[0]}")
        out[label] = values
    return out


def run(quick: bool = False) -> list[Figure]:
    rp = realpeers()
    reason = rp.root_skip_reason()
    if reason:
        raise RuntimeError(f"time accuracy needs TAP + namespaces: {reason}")
    count = 60 if quick else 400
    tap = rp.unique_name("hcb")
    with Child(hostclock_argv("run", "--tap", tap), ready_marker="hostclock:") as gateway, \
            rp.GuestNamespace("hcb") as ns:
        ns.adopt_tap(tap)
        rp.clients.ping(ns, GATEWAY, count=1, timeout=5)  # ARP resolved, as in a booted guest
        with rp.ChronyServer(ns=ns, stratum=1):
            argv = [PYTHON, "-m", "bench.ntp_client", "--server", f"{GATEWAY}:123", "--server", "127.0.0.1:123",
                    "--count", str(count), "--interval", "0.005"]
            cp = ns.run(argv, timeout=150, cwd=REPO)
            if cp.returncode != 0:
                raise RuntimeError(f"ntp client failed: {cp.stderr}")
            data = json.loads(cp.stdout)
            checks = _checks(ns, rp, 1 if quick else 3)
        gateway_pid = gateway.pid
    via = _stats(data["results"][f"{GATEWAY}:123"])
    direct = _stats(data["results"]["127.0.0.1:123"])
    added = via["median_delay"] - direct["median_delay"]
    extra = {"via_gateway": via, "direct_chronyd": direct, "failures": data["failures"], "checks": checks,
             "gateway_pid": gateway_pid}
    p99_ok = via["p99_abs_offset"] <= 50e-6 or via["p99_abs_offset"] <= 1.5 * direct["p99_abs_offset"]
    us = 1e6
    return [
        Figure(NAME, f"median |offset| via gateway (ntplib, {via['n']} queries)", via["median_abs_offset"] * us, "µs",
               anchor="ntplib -> chronyd -x on the namespace's loopback", anchor_value=direct["median_abs_offset"] * us,
               ratio=via["median_abs_offset"] / direct["median_abs_offset"], ratio_note="× direct",
               target="≤ 10 µs", holds=via["median_abs_offset"] <= 10e-6, extra=extra),
        Figure(NAME, "p99 |offset| via gateway", via["p99_abs_offset"] * us, "µs",
               anchor="same, chronyd direct", anchor_value=direct["p99_abs_offset"] * us,
               ratio=via["p99_abs_offset"] / direct["p99_abs_offset"], ratio_note="× direct",
               target="≤ 50 µs or ≤ 1.5× direct", holds=p99_ok),
        Figure(NAME, "delay added by the gateway (p50 via - p50 direct)", added * us, "µs",
               anchor="p50 delay direct", anchor_value=direct["median_delay"] * us,
               ratio=via["median_delay"] / direct["median_delay"], ratio_note="p50 delay via / direct",
               target="≤ 60 µs", holds=added <= 60e-6,
               extra={"p50_delay_via": via["median_delay"] * us, "p50_delay_direct": direct["median_delay"] * us}),
    ]
