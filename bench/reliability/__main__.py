"""`python -m bench.reliability ITEM [--seconds N]`: run one item of the campaign at full length, print JSON.

Exit status 0 when the item holds, 1 when it does not.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys

ITEMS = {
    "nothing-leaves": ("bench.reliability.nothing_leaves", 30.0),
    "storm": ("bench.reliability.storm", 20.0),
    "flood": ("bench.reliability.flood", 30.0),
    "ntp-flood": ("bench.reliability.ntp_flood", 20.0),
    "upstream-restart": ("bench.reliability.faults:upstream_restart", 5.0),
    "stop-continue": ("bench.reliability.faults:stop_continue", 30.0),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.reliability", description=__doc__)
    parser.add_argument("item", choices=sorted(ITEMS))
    parser.add_argument("--seconds", type=float, help="how long (default: the item's full length)")
    args = parser.parse_args(argv)
    module_name, full_seconds = ITEMS[args.item]
    module_name, _, function = module_name.partition(":")
    run = getattr(importlib.import_module(module_name), function or "run")
    result = run(seconds=args.seconds or full_seconds)
    json.dump(result, sys.stdout, indent=2)
    print()
    return 0 if result.get("holds") else 1


if __name__ == "__main__":
    raise SystemExit(main())
