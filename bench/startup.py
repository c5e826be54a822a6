"""Start-up: exec of `hostclock run --qemu-stream PATH` -> the first NTP answer a guest gets.

The clock starts just before the exec; the guest driver connects to the socket
as soon as it exists and repeats a request every 2 ms until one is answered.
Anchor: exec of `python -c pass` to its exit, same interpreter, same run.
Median of several starts.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import tempfile
import time

from .common import PYTHON, REPO, Figure, child_env, hostclock_argv
from .guest_stream import StreamGuest

NAME = "startup"


def _start_to_answer(tmp: str, index: int) -> float:
    path = f"{tmp}/start{index}.sock"
    env = child_env()
    start = time.perf_counter()
    proc = subprocess.Popen(hostclock_argv("run", "--qemu-stream", path), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, env=env, cwd=REPO)
    try:
        deadline = start + 10
        while not os.path.exists(path):
            if time.perf_counter() > deadline or proc.poll() is not None:
                raise RuntimeError("the gateway did not create its socket")
            time.sleep(0.001)
        guest = StreamGuest(path, connect_timeout=5)
        try:
            while time.perf_counter() < deadline:
                if guest.query(timeout=0.002) is not None:
                    return time.perf_counter() - start
                # an answer to an earlier try may still come: any reply counts
                for frame in guest.receive_frames(0):
                    if guest.reply_stamp(frame) is not None:
                        return time.perf_counter() - start
        finally:
            guest.close()
        raise RuntimeError("no NTP answer within 10 s of the exec")
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _python_pass() -> float:
    start = time.perf_counter()
    subprocess.run([PYTHON, "-c", "pass"], check=True, env=child_env(), cwd=REPO)
    return time.perf_counter() - start


def run(quick: bool = False) -> list[Figure]:
    repeats = 2 if quick else 7
    ours, anchor = [], []
    with tempfile.TemporaryDirectory(prefix="hc-bench-") as tmp:
        for i in range(repeats):
            anchor.append(_python_pass())
            ours.append(_start_to_answer(tmp, i))
    value, base = statistics.median(ours), statistics.median(anchor)
    return [Figure(NAME, "start-up: exec of hostclock run -> first NTP answer", value, "s",
                   anchor="exec of python -c pass", anchor_value=base, ratio=value / base,
                   ratio_note="× python -c pass", target="≤ 0.5 s", holds=value <= 0.5,
                   extra={"runs": ours, "anchor_runs": anchor})]
