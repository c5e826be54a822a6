"""An NTP flood from one guest while another polls, with the per-guest rate limit off and on.

    python -m bench.reliability ntp-flood [--seconds 20]

`hostclock run --qemu-stream`; the flooder (`bench.reliability.ntp_flooder`, guest .9,
another process) sends valid requests as fast as its connection takes them; the polite
guest (.3, `guest_client.PollingGuest`) asks once a second. Run three times, each with the
per-guest cap on requests awaiting the upstream (`[ntp] max_in_flight`, on by default):

1. the embedded responder as it runs by default, in a process of its own
   (`[ntp] responder = "process"`), no rate limit;
2. the same with `[ntp] ratelimit = true, ratelimit_interval = -1` (one reply per 0.5 s),
   burst 8, leak 2, so that a polite guest asking once a second is never limited: the
   flooder should get burst + seconds / 0.5 + 1/4 of its other requests;
3. for comparison, the responder in a thread of the gateway's process (`--responder
   thread`, the only way before), no rate limit.

Holds when the polite guest had 100 % answered in all three and p99 <= 10 ms in the first
two (the default), and, with the limit on, the requests refused are within 1 % of what the
settings say of those the gateway saw from the flooder (all but burst + seconds / interval,
less 1 in 2^leak of the rest).
"""

from __future__ import annotations

import json
import re
import subprocess
import tempfile
import time
from typing import Any

from bench.common import PYTHON, REPO, Child, child_env, hostclock_argv
from bench.reliability.guest_client import PollingGuest

LIMIT = {"ratelimit": True, "ratelimit_interval": -1, "ratelimit_burst": 8, "ratelimit_leak": 2}


def _one(seconds: float, limited: bool, responder: str = "process") -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="hc-ntpflood-") as tmp:
        path = f"{tmp}/qemu.sock"
        args = ["run", "--qemu-stream", path, "--no-dhcp", "--responder", responder]
        if limited:
            with open(f"{tmp}/hostclock.toml", "w") as f:
                f.write("[ntp]\n" + "".join(f"{k} = {str(v).lower() if isinstance(v, bool) else v}\n"
                                            for k, v in LIMIT.items()))
            args += ["--config", f"{tmp}/hostclock.toml"]
        with Child(hostclock_argv(*args), ready_marker="hostclock:") as gw:
            polite = PollingGuest(path, interval=1.0, timeout=0.9).start()
            time.sleep(1.0)
            flood = subprocess.run([PYTHON, "-m", "bench.reliability.ntp_flooder", path, "--seconds", str(seconds)],
                                   capture_output=True, text=True, timeout=seconds + 60, env=child_env(), cwd=REPO)
            guest = polite.stop()
            status = gw.stop()
    flooder = json.loads(flood.stdout) if flood.returncode == 0 else {"error": flood.stderr[-500:]}
    summary = next((line for line in gw.stderr.splitlines() if "stopped:" in line), "")
    refused = int(m.group(1)) if (m := re.search(r"(\d+) x ntp: over the guest's rate limit", summary)) else 0
    received = int(m.group(1)) if (m := re.search(r"stopped: (\d+) frames received", summary)) else 0
    result: dict[str, Any] = {"rate_limit": LIMIT if limited else "off",
                              "responder": f"embedded, {responder}",
                              "flooder": flooder, "polite": guest,
                              "gateway_frames_received": received, "refused_by_limit": refused,
                              "gateway_summary": summary[:500], "gateway_exit": status}
    if limited and "sent" in flooder:
        # the bucket lets burst + seconds / interval through; of the rest, 1 in 2^leak is answered anyway
        period = 2.0 ** LIMIT["ratelimit_interval"]
        by_bucket = LIMIT["ratelimit_burst"] + flooder["seconds"] / period
        every = 1 << LIMIT["ratelimit_leak"]
        seen = received - guest["sent"]
        result["flooder_requests_seen"] = seen
        result["expected_refused"] = round((seen - by_bucket) * (every - 1) / every)
        result["expected_forwarded"] = round(seen - result["expected_refused"])
    return result


def run(seconds: float = 20.0) -> dict[str, Any]:
    off = _one(seconds, limited=False)
    on = _one(seconds, limited=True)
    thread = _one(seconds, limited=False, responder="thread")
    holds = ("answered" in on["flooder"] and "answered" in off["flooder"]
             and all(r["polite"]["answered_ratio"] == 1.0 for r in (off, on, thread))
             and all((r["polite"]["p99_delay_ms"] or 1e9) <= 10 for r in (off, on))
             and abs(on["refused_by_limit"] - on["expected_refused"]) <= 0.01 * on["expected_refused"])
    return {"item": "ntp-flood", "seconds": seconds, "limit_off": off, "limit_on": on,
            "responder_in_a_thread": thread, "holds": holds}
