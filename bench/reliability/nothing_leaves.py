"""Nothing leaves the machine: a guest sprays 10,000 destinations; the sealed gateway's veth stays silent.

    python -m bench.reliability nothing-leaves [--seconds 30]

The gateway runs in a namespace whose only links are loopback and a veth with
a default route through it (`bench.reliability.sealed`); a guest on its TAP
sprays UDP, TCP and ICMP (`bench.reliability.spray`) while using NTP. Holds when
the capture on the veth has zero packets, every socket of the gateway process
is on loopback (or a Unix socket), and the guest's NTP was answered (how much of it is
reported beside: the spray is also a flood).

`control=True` runs the same with `--upstream 198.51.100.2:123
--allow-remote-upstream`: guest NTP is then meant to leave, so the capture
must see it and the socket audit must flag it. It shows that both checks can fail.
"""

from __future__ import annotations

import json
import subprocess
from typing import Any

from bench.common import PYTHON, REPO, child_env
from bench.reliability.sealed import SINK_SIDE, SealedGateway


def run(seconds: float = 30.0, destinations: int = 10_000, control: bool = False,
        gateway_args: tuple[str, ...] = ("--watch-guest-clock=1",)) -> dict[str, Any]:
    """`gateway_args`: by default the guest clock watcher runs too (it sends probes of its own,
    ICMP timestamps to the guest: they must stay on the guest's link as well)."""
    extra = (*gateway_args, *(("--upstream", f"{SINK_SIDE}:123", "--allow-remote-upstream") if control else ()))
    with SealedGateway(*extra) as sealed:
        cp = subprocess.run(sealed.in_guest(PYTHON, "-m", "bench.reliability.spray", "--destinations",
                                            str(destinations), "--seconds", str(seconds)),
                            capture_output=True, text=True, timeout=seconds + 120, env=child_env(), cwd=REPO)
        if cp.returncode != 0:
            raise RuntimeError(f"the guest's spray failed: {cp.stderr.strip()[-2000:]}")
        guest = json.loads(cp.stdout)
        sockets = sealed.sockets()
        ss = sealed.ss()
        rss = sealed.rss_kib()
        packets = sealed.captured()
        ready = sealed.ready_line
        status, stderr = sealed.stop_gateway()
    off_loopback = [f"{s.table} {s.local} -> {s.remote}" for s in sockets if not s.on_loopback]
    result = {
        "item": "nothing-leaves" + (" (control: remote upstream)" if control else ""),
        "gateway_args": list(extra), "gateway_ready_line": ready,
        "guest": guest,
        "veth_packets": len(packets),
        "veth_first_packets": packets[:5],
        "gateway_sockets": [f"{s.table} {s.local} -> {s.remote}" for s in sockets],
        "sockets_off_loopback": off_loopback,
        "gateway_rss_kib": rss,
        "gateway_exit": status,
        "gateway_summary": [line for line in stderr.splitlines() if "stopped:" in line][-1:],
        "ss": ss,
    }
    # what this item proves is the silence of the veth; the NTP figures under the spray are
    # reported beside it (how well a flood is served is the flood item's)
    result["ntp_answered_ratio"] = round(guest["ntp_answered"] / guest["ntp_sent"], 4) if guest["ntp_sent"] else 0
    result["holds"] = not packets and not off_loopback and status == 0 and guest["ntp_answered"] > 0
    return result
