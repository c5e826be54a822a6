"""`python -m bench` runs every benchmark and prints the table; `--quick` is the short CI smoke run.

The same figures go to bench/results/latest.json (or `--json PATH`). A bench
that cannot run (no root for the TAP bench, say) is reported as FAILED in the
table and in the JSON, and the exit status is 1; the others still run.
`--only NAME` (repeatable) runs a subset.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import time
import traceback
from pathlib import Path

from . import report

BENCHES = ["stack_fast_path", "responder_throughput", "gateway_end_to_end", "time_accuracy", "peers", "startup",
           "footprint", "flow_scale", "scale_guests", "vm_jitter"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="short smoke version (< 60 s)")
    parser.add_argument("--only", action="append", choices=BENCHES, metavar="NAME",
                        help=f"run only this bench (repeatable): {', '.join(BENCHES)}")
    parser.add_argument("--json", type=Path, help="where to write the figures (default bench/results/latest.json)")
    args = parser.parse_args(argv)
    started = time.monotonic()
    figures, failures = [], {}
    for name in args.only or BENCHES:
        t0 = time.monotonic()
        print(f"bench: {name} ...", file=sys.stderr, flush=True)
        try:
            module = importlib.import_module(f"bench.{name}")
            if args.quick and not getattr(module, "QUICK", True) and not args.only:
                print(f"bench: {name} is not in the quick run", file=sys.stderr, flush=True)
                continue
            figures.extend(module.run(quick=args.quick))
        except Exception as e:  # one bench failing must not hide the others' figures
            failures[name] = f"{type(e).__name__}: {e}"
            traceback.print_exc(file=sys.stderr)
        print(f"bench: {name} done in {time.monotonic() - t0:.1f} s", file=sys.stderr, flush=True)
    elapsed = time.monotonic() - started
    path = report.write_json(figures, failures, quick=args.quick, seconds=elapsed, path=args.json)
    print(report.table(figures, failures))
    print(f"\n{'quick' if args.quick else 'full'} run, {elapsed:.0f} s; figures in {path}")
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
