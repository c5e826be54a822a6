"""`python -m bench.fuzz`: the fuzzing campaign, one harness after another, with a report.

Each harness runs in its own process under atheris (`bench.fuzz.runner`), its
working corpus in bench/fuzz/work/HARNESS (not kept in git) seeded from the
harness's `seeds()` and the saved corpus bench/fuzz/corpus/HARNESS. Reported per
harness: executions, coverage (libFuzzer's `cov`, edges of hostclock's code reached,
and `ft`, features), corpus size, executions per second and crashes. A crash's input
is copied to bench/fuzz/corpus/HARNESS/ (a regression input for the test suite).
Exit status 1 if anything crashed.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

from bench.common import REPO, child_env
from bench.fuzz.harnesses import HARNESSES

HERE = Path(__file__).resolve().parent
CORPUS = HERE / "corpus"
WORK = HERE / "work"

_DONE = re.compile(r"#(\d+)\s+(?:DONE|pulse|NEW|REDUCE|INITED)\s+cov: (\d+) ft: (\d+) corp: (\d+)/")
_STAT = re.compile(r"stat::(\w+):\s+(\d+)")
_CRASH = re.compile(r"Test unit written to (\S+)")


def seed_work_corpus(name: str) -> Path:
    import importlib

    work = WORK / name
    work.mkdir(parents=True, exist_ok=True)
    harness = importlib.import_module(f"bench.fuzz.harnesses.{name}")
    for data in harness.seeds():
        (work / f"seed-{hashlib.sha1(data).hexdigest()[:16]}").write_bytes(data)
    saved = CORPUS / name
    if saved.is_dir():
        for path in saved.iterdir():
            shutil.copy(path, work / path.name)
    return work


def run_harness(name: str, runs: int, max_seconds: int) -> dict:
    work = seed_work_corpus(name)
    artifacts = WORK / f"{name}-artifacts"
    artifacts.mkdir(parents=True, exist_ok=True)
    argv = [sys.executable, "-m", "bench.fuzz.runner", name, str(work), f"-runs={runs}",
            f"-max_total_time={max_seconds}", "-max_len=4096", "-timeout=10", "-rss_limit_mb=2048",
            "-print_final_stats=1", f"-artifact_prefix={artifacts}/", "-print_pcs=0"]
    started = time.monotonic()
    cp = subprocess.run(argv, capture_output=True, text=True, env=child_env(), cwd=REPO,
                        timeout=max_seconds + 600)
    elapsed = time.monotonic() - started
    log = cp.stderr
    (WORK / f"{name}.log").write_text(log[-200_000:])
    last = _DONE.findall(log)
    stats = {k: int(v) for k, v in _STAT.findall(log)}
    crashes = []
    for path in _CRASH.findall(log):
        source = Path(path)
        if source.exists():
            data = source.read_bytes()
            target = CORPUS / name / f"crash-{hashlib.sha1(data).hexdigest()[:16]}"
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
            crashes.append(str(target.relative_to(REPO)))
    executions = stats.get("number_of_executed_units", int(last[-1][0]) if last else 0)
    return {
        "harness": name, "executions": executions, "seconds": round(elapsed),
        "exec_per_s": round(executions / elapsed) if elapsed else 0,
        "cov": int(last[-1][1]) if last else None, "ft": int(last[-1][2]) if last else None,
        "corpus": int(last[-1][3]) if last else None, "peak_rss_mb": stats.get("peak_rss_mb"),
        "crashes": crashes, "exit": cp.returncode,
        "crash_excerpt": _crash_excerpt(log) if cp.returncode else "",
    }


def _crash_excerpt(log: str) -> str:
    at = log.find("=== Uncaught Python exception")
    return log[at:at + 1500] if at >= 0 else log[-1500:]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.fuzz", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=1_000_000, help="executions per harness (1,000,000)")
    parser.add_argument("--max-seconds", type=int, default=3600, help="time limit per harness (3600)")
    parser.add_argument("--only", action="append", choices=HARNESSES, metavar="HARNESS",
                        help=f"run only this harness (repeatable): {', '.join(HARNESSES)}")
    parser.add_argument("--json", type=Path, default=WORK / "report.json")
    args = parser.parse_args(argv)
    results = []
    for name in args.only or HARNESSES:
        print(f"fuzz: {name} ...", file=sys.stderr, flush=True)
        result = run_harness(name, args.runs, args.max_seconds)
        results.append(result)
        print(f"fuzz: {name}: {result['executions']:,} executions in {result['seconds']} s, cov {result['cov']}, "
              f"ft {result['ft']}, crashes {len(result['crashes'])}", file=sys.stderr, flush=True)
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2))
    print(f"{'harness':18} {'executions':>12} {'seconds':>8} {'exec/s':>7} {'cov':>6} {'ft':>7} {'corpus':>7} crashes")
    for r in results:
        print(f"{r['harness']:18} {r['executions']:>12,} {r['seconds']:>8} {r['exec_per_s']:>7} {r['cov']!s:>6} "
              f"{r['ft']!s:>7} {r['corpus']!s:>7} {len(r['crashes'])}")
    return 1 if any(r["crashes"] or r["exit"] for r in results) else 0


if __name__ == "__main__":
    raise SystemExit(main())
