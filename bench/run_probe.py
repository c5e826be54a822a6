"""`hostclock` with a probe: on SIGUSR1 it writes which modules are loaded to $HOSTCLOCK_PROBE_OUT.

Used by bench.footprint to check, inside the serving process, that neither scapy
nor the demo's libraries (rich, matplotlib) are imported on the run path. Otherwise exactly `python -m gateway ARGS`.
"""

from __future__ import annotations

import json
import os
import signal
import sys


def _dump(signum, frame) -> None:
    names = sorted(sys.modules)
    with open(os.environ["HOSTCLOCK_PROBE_OUT"], "w") as f:
        json.dump({"modules": len(names), "scapy": [n for n in names if n.split(".")[0] == "scapy"],
                   "demo_libraries": [n for n in names if n.split(".")[0] in ("rich", "matplotlib")],
                   "demo_modules": [n for n in names if n.startswith("gateway.app.demo")],
                   "vm_modules": [n for n in names if n == "gateway.vm" or n.startswith("gateway.vm.")],
                   "top_level": sorted({n.split(".")[0] for n in names})}, f)


def main() -> int:
    signal.signal(signal.SIGUSR1, _dump)
    from gateway.app.cli import main as hostclock_main

    return hostclock_main(sys.argv[1:])


if __name__ == "__main__":
    raise SystemExit(main())
