"""`python -m bench.drift`: a drifting real VM kept on its host's clock through hostclock.

Each phase boots the guest (gateway/vm: Debian kernel, busybox, chronyd) under
QEMU with its only NIC on `hostclock run --qemu-stream` (a subprocess of this
checkout's hostclock), sets the guest's drift inside the guest with busybox
`adjtimex -t TICK` and runs a time-keeping policy there (gateway/vm/scenario.py):

  tick 10000 (natural), 9993 (-700 ppm, Docker's VM), 9800 (-2 %), S5 (the tick
  changed at random every 10-30 s within +-60 units)
  x  none | sntpc (chronyd -q every 30 s) | chronyd with Debian's defaults | (clock-safe: in the VM)
     chronyd tuned (minpoll -2, maxpoll 0, makestep 0.1 -1)
  and a host sleep: QEMU's monitor `stop`, 60 s, `cont` (under TCG the guest's
  clock stands still meanwhile; the bench checks that it did).

The guest's clock is observed from inside (a `chronyd -Q` every 2 s; the chronyd
daemon's measurements and tracking logs; the steps) and, where this hostclock
has `--watch-guest-clock`, from the gateway (its `--guest-clock-log` CSV).

Output in --out DIR (default bench/results/drift): drift.csv
(t_s,scenario,policy,offset_ms,source; offset = guest - host), summary.json,
the console of every guest, and PNG plots if matplotlib is installed
(`pip install -e '.[demo]'`).  The checks (slope, teeth, hold, recovery) are
printed with the figures; the exit status is 1 if one fails.

Safety: every clock that is set is the guest's, inside the VM; on the host only
the gateway runs (it answers NTP from the host clock and never sets it).
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from gateway.vm import image as vm_image
from gateway.vm import qemu
from gateway.vm.scenario import (RECOMMENDED_MAXPOLL, RECOMMENDED_MINPOLL, S5, Observation, Scenario,
                                 observe)

from . import drift_analysis as da
from .common import REPO, child_env, hostclock_argv

DEFAULT_OUT = REPO / "bench" / "results" / "drift"
BOOT_TIMEOUT = 240.0
GATEWAY_READY_TIMEOUT = 30.0
HOLD_LIMIT_S = 0.001
RECOVERY_LIMIT_S = 0.010
RECOVERY_TARGET_S = 5.0
SLOPE_TOLERANCE = 0.10
TEETH_TOLERANCE = 0.10
FILTER_N = 8            # the hold is judged on RFC 5905's clock filter (min delay of 8 samples)
WATCH_FLAG = "--watch-guest-clock"
# The inside view the checks use: the chronyd -x observer's samples that passed
# chrony's tests, without those whose round trip was over DELAY_FACTOR x the
# phase's median (their offset error is up to half the round trip).
OBSERVER = "guest-observer"
DAEMONS = ("chronyd-tuned", "chronyd-default")
DELAY_FACTOR = 1.5
# What counts as the clock being back after a pause: those samples, the policy
# daemon's, its steps and sntpc's (not the single-exchange -Q probe, whose error
# under load is several ms; nor tracking, chrony's own estimate).
RECOVERY_SOURCES = (OBSERVER, "guest-measurements", "guest-sntpc", "guest-step")
#: after cont, how long to look for the clock's jump (the pause it stood still for)
JUMP_WINDOW_S = 5.0


@dataclasses.dataclass(frozen=True)
class Phase:
    """One boot: SCENARIO observed for RUN_S seconds of host time while the VM runs,
    with (PAUSE_AT_S, PAUSE_S) a QEMU stop/cont in the middle."""

    scenario: Scenario
    run_s: float
    pause_at_s: float | None = None
    pause_s: float = 0.0

    @property
    def label(self) -> str:
        sc = self.scenario
        policy = sc.policy
        if policy == "chronyd-tuned" and (sc.minpoll, sc.maxpoll) != (RECOMMENDED_MINPOLL,
                                                                       RECOMMENDED_MAXPOLL):
            policy += f"[poll{sc.minpoll:+d}..{sc.maxpoll:+d}]"
        policy = policy if not sc.delay_s else f"none-then-{policy}"
        pause = f"+pause{self.pause_s:g}s" if self.pause_at_s is not None else ""
        return f"{policy}/{sc.name}{pause}"

    @property
    def scenario_label(self) -> str:
        pause = f"+pause{self.pause_s:g}s" if self.pause_at_s is not None else ""
        return f"{self.scenario.name}{pause}"


def full_plan() -> list[Phase]:
    """About 45 minutes: every tick x policy that shows something, two pauses, and
    the poll search behind the recommended chronyd configuration."""
    def sc(tick, policy, **kw):
        return Scenario(tick=tick, policy=policy, **kw)
    search = [Phase(sc(9993, "chronyd-tuned", minpoll=lo, maxpoll=hi), 80, pause_at_s=40, pause_s=60)
              for lo, hi in ((-4, -2), (0, 2), (2, 4))]
    return [
        Phase(sc(10000, "none"), 60),
        Phase(sc(9993, "none"), 90),
        Phase(sc(9800, "none"), 60),
        Phase(sc(S5, "none"), 90),
        Phase(sc(9993, "sntpc"), 130),
        Phase(sc(9800, "sntpc"), 100),
        Phase(sc(S5, "sntpc"), 100),
        Phase(sc(9993, "chronyd-tuned"), 120),
        Phase(sc(9800, "chronyd-tuned"), 120),
        Phase(sc(S5, "chronyd-tuned"), 150),
        Phase(sc(9993, "chronyd-default"), 180),
        Phase(sc(9800, "chronyd-default"), 180),
        Phase(sc(9993, "chronyd-tuned"), 120, pause_at_s=60, pause_s=60),
        Phase(sc(9993, "chronyd-default"), 360, pause_at_s=120, pause_s=60),
        *search,
    ]


def quick_plan() -> list[Phase]:
    """One boot: tick 9993 free for 40 s, then chronyd tuned for 50 s; a 20 s pause; 15 s more."""
    return [Phase(Scenario(tick=9993, policy="chronyd-tuned", delay_s=40), 105,
                  pause_at_s=90, pause_s=20)]


# -- the gateway ---------------------------------------------------------------------------------


class Gateway:
    """`hostclock run --qemu-stream SOCK` of this checkout, stdout drained, stderr to a file."""

    def __init__(self, sock: Path, workdir: Path, *, watch: bool):
        self.sock = sock
        self.clock_log = workdir / f"{sock.stem}-guest-clock.csv"
        self.stderr_path = workdir / f"{sock.stem}-hostclock.log"
        argv = hostclock_argv("run", "--qemu-stream", str(sock))
        if watch:
            argv += [f"{WATCH_FLAG}=1", "--guest-clock-log", str(self.clock_log)]
        self._stderr = open(self.stderr_path, "wb")
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=self._stderr, env=child_env(), cwd=REPO,
                                     start_new_session=True)
        self.ready = threading.Event()
        threading.Thread(target=self._drain, daemon=True).start()
        deadline = time.monotonic() + GATEWAY_READY_TIMEOUT
        while time.monotonic() < deadline and not (self.ready.is_set() and sock.exists()):
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        if not (self.ready.is_set() and sock.exists()):
            self.stop()
            raise RuntimeError(f"hostclock run did not become ready: {self.log()[-2000:]}")

    def _drain(self) -> None:
        assert self.proc.stdout is not None
        for _ in self.proc.stdout:
            self.ready.set()

    def log(self) -> str:
        try:
            return self.stderr_path.read_text(errors="replace")
        except OSError:
            return ""

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self._stderr.close()

    def readings(self) -> list[Observation]:
        """The gateway's --guest-clock-log rows as observations (source gateway-<source>)."""
        return _gateway_rows(self.clock_log) if self.clock_log.exists() else []


def _gateway_rows(path: Path) -> list[Observation]:
    out = []
    with open(path, newline="") as fh:
        for row in csv.DictReader(fh):
            try:
                out.append(Observation(float(row["time_unix_s"]), f"gateway-{row['source']}",
                                       float(row["offset_s"]), {"error_s": float(row["error_s"] or "nan")}))
            except (KeyError, ValueError):
                continue
    return out


def gateway_can_watch() -> bool:
    """Whether this checkout's hostclock has --watch-guest-clock (the gateway's own view)."""
    try:
        out = subprocess.run(hostclock_argv("run", "--help"), capture_output=True, text=True,
                             env=child_env(), cwd=REPO, timeout=60).stdout
    except subprocess.TimeoutExpired:
        return False
    return WATCH_FLAG in out and "--guest-clock-log" in out


# -- one phase -------------------------------------------------------------------------------------


@dataclasses.dataclass
class PhaseResult:
    phase: Phase
    t0: float                                  # host time of the guest's "drift" line
    observations: list[Observation]
    events: dict[str, float]                   # stop, cont, policy: host time.time()
    console: str
    gateway_log: str
    error: str | None = None

    def points(self, *sources: str, since: float | None = None,
               until: float | None = None) -> list[da.Point]:
        """(t_s, offset_s) of these sources, t_s from the phase's start."""
        lo = -1e18 if since is None else since
        hi = 1e18 if until is None else until
        return [(o.t - self.t0, o.offset_s) for o in self.observations
                if o.source in sources and o.offset_s is not None and lo <= o.t - self.t0 <= hi]

    def clock_points(self, since: float | None = None, until: float | None = None) -> list[da.Point]:
        """The observer's good samples (see OBSERVER); the -Q probes if there are none."""
        obs = [o for o in self.observations if o.source == OBSERVER and o.offset_s is not None]
        delays = sorted(o.extra.get("delay_s") or 0.0 for o in obs)
        if not delays:
            return self.points("guest-probe", since=since, until=until)
        limit = DELAY_FACTOR * delays[len(delays) // 2]
        lo = -1e18 if since is None else since
        hi = 1e18 if until is None else until
        return [(o.t - self.t0, o.offset_s) for o in obs
                if (o.extra.get("delay_s") or 0.0) <= limit and lo <= o.t - self.t0 <= hi]

    def filtered_points(self, since: float | None = None, until: float | None = None) -> list[da.Point]:
        """The observer's samples through RFC 5905's clock filter (min delay of 8)."""
        lo = -1e18 if since is None else since
        hi = 1e18 if until is None else until
        samples = [(o.t - self.t0, o.offset_s, o.extra.get("delay_s") or 0.0)
                   for o in self.observations
                   if o.source == OBSERVER and o.offset_s is not None and lo <= o.t - self.t0 <= hi]
        return da.clock_filter(samples, FILTER_N)

    def gateway_points(self) -> list[da.Point]:
        """The gateway's own readings of the guest's clock (--guest-clock-log)."""
        return [(o.t - self.t0, o.offset_s) for o in self.observations
                if o.source.startswith("gateway-") and o.offset_s is not None]

    def event_s(self, name: str) -> float | None:
        t = self.events.get(name)
        return None if t is None else t - self.t0


def run_phase(image: vm_image.GuestImage, phase: Phase, workdir: Path, *, index: int,
              watch: bool, log) -> PhaseResult:
    sc = dataclasses.replace(phase.scenario,
                             duration_s=int(phase.run_s + BOOT_TIMEOUT + 60))
    sock = workdir / f"p{index}.sock"
    gw = Gateway(sock, workdir, watch=watch)
    events: dict[str, float] = {}
    t0 = time.time()
    error = None
    console = ""
    lines: list[qemu.ConsoleLine] = []
    t_boot = time.time()
    try:
        with qemu.Guest.start(image, qemu.stream_netdev(sock), append=sc.cmdline(),
                              accel=qemu.host_accel()) as guest:
            try:
                start = guest.wait_for(r"HOSTCLOCK-RESULT (drift|error)", BOOT_TIMEOUT)
                if "error" in start.text:
                    raise qemu.GuestError(start.text)
                t0 = start.t
                log(f"  booted in {start.t - t_boot:.0f} s; observing "
                    f"{phase.run_s:g} s" + (f" with a {phase.pause_s:g} s pause" if phase.pause_at_s
                                             is not None else ""))

                def watch_until(t_end: float) -> None:
                    for line in guest.lines(max(0.0, t_end - time.time())):
                        if "HOSTCLOCK-RESULT error" in line.text:
                            raise qemu.GuestError(line.text)

                if phase.pause_at_s is not None:
                    watch_until(t0 + phase.pause_at_s)
                    guest.stop()
                    events["stop"] = time.time()
                    time.sleep(phase.pause_s)
                    guest.cont()
                    events["cont"] = time.time()
                    watch_until(events["cont"] + phase.run_s - phase.pause_at_s)
                else:
                    watch_until(t0 + phase.run_s)
            except qemu.GuestError as e:
                error = str(e)
            lines = guest.console()
            console = "".join(f"{line.t:.6f} {line.text}\n" for line in lines)
    finally:
        gw.stop()
    observations = [o for line in lines if (o := observe(line.t, line.text)) is not None]
    observations += gw.readings()
    return _result(phase, t0, observations, events, console, gw.log(), error)


def _result(phase, t0, observations, events, console, gateway_log, error) -> PhaseResult:
    observations.sort(key=lambda o: o.t)
    for o in observations:
        if o.source == "guest-policy":
            events["policy"] = o.t
    return PhaseResult(phase, t0, observations, events, console, gateway_log, error)


def _phase_record(res: PhaseResult, name: str) -> dict:
    sc = dataclasses.asdict(res.phase.scenario)
    return {"name": name, "scenario": sc, "run_s": res.phase.run_s, "load_average": os.getloadavg(),
            "pause_at_s": res.phase.pause_at_s, "pause_s": res.phase.pause_s,
            "t0": res.t0, "events": res.events, "error": res.error}


def load_results(out: Path) -> list[PhaseResult]:
    """The phases of an earlier run in OUT (phases.json and its consoles), to analyse again."""
    results = []
    for rec in json.loads((out / "phases.json").read_text()):
        sc = rec["scenario"]
        sc["makestep"] = tuple(sc["makestep"])
        phase = Phase(Scenario(**sc), rec["run_s"], rec["pause_at_s"], rec["pause_s"])
        console = (out / f"console-{rec['name']}.txt").read_text()
        obs = []
        for line in console.splitlines():
            t, _, text = line.partition(" ")
            if (o := observe(float(t), text)) is not None:
                obs.append(o)
        gw_csv = out / f"guest-clock-{rec['name']}.csv"
        if gw_csv.exists():
            obs += _gateway_rows(gw_csv)
        results.append(_result(phase, rec["t0"], obs, rec["events"], console, "", rec["error"]))
    return results


# -- analysis of a phase ---------------------------------------------------------------------------


def analyse(res: PhaseResult) -> dict:
    """Per-phase figures.  Free segment: slope; sntpc: teeth; chronyd: settling and
    holding; pause: the jump and the recovery."""
    sc, ph = res.phase.scenario, res.phase
    out: dict = {"phase": ph.label, "tick": sc.tick, "policy": sc.policy, "error": res.error,
                 "observations": {}}
    for o in res.observations:
        out["observations"][o.source] = out["observations"].get(o.source, 0) + 1
    policy_at = res.event_s("policy") if sc.policy != "none" else None
    stop_at, cont_at = res.event_s("stop"), res.event_s("cont")

    # The clock running free: policy none, or before a delayed policy started.
    free_end = stop_at if sc.policy == "none" else (policy_at if sc.delay_s else None)
    if sc.policy == "none" or (sc.delay_s and policy_at is not None):
        free = res.clock_points(until=free_end)
        probes = res.points("guest-probe", until=free_end)
        if len(probes) >= 4:
            out["free_probe_slope_ppm"] = da.slope_ppm(probes)
        first = res.points("guest-first")  # the step at the start: the gateway may read before it
        since = first[0][0] if first else None
        gateway = [p for p in res.gateway_points() if (since is None or p[0] > since)
                   and (free_end is None or p[0] <= free_end)]
        if len(gateway) >= 4:
            out["free_gateway_slope_ppm"] = da.slope_ppm(gateway)
        if len(free) >= 4:
            ppm = da.slope_ppm(free)
            out["free"] = {"slope_ppm": ppm, "points": len(free),
                           "span_s": free[-1][0] - free[0][0],
                           "residual_max_ms": da.fit_residual_max(free) * 1e3}
            if sc.ppm is not None:
                out["free"]["expected_ppm"] = sc.ppm
                if sc.ppm:
                    out["free"]["relative_error"] = da.relative_error(ppm, sc.ppm)
            else:
                out["free"]["s5_segments"] = _s5_segments(res, until=free_end)

    if sc.policy == "sntpc":
        steps = res.points("guest-first") + res.points("guest-sntpc")
        corrected = da.teeth(steps)   # what each sntpc chronyd -q corrected (one exchange each) (clock-safe: in the VM)
        # S5's tick changes within a period, so no line fits it: there, the teeth are
        # what each chronyd -q corrected. (clock-safe: in the VM)
        heights = (da.sawtooth_heights(res.clock_points(), [t for t, _ in steps]) if sc.ppm is not None
                   else [(b[0] - a[0], b[1]) for a, b in zip(steps, steps[1:])])
        out["sntpc"] = {"teeth_ms": [h * 1e3 for _, h in heights],
                        "periods_s": [p for p, _ in heights],
                        "corrected_ms": [o * 1e3 for _, o in corrected]}
        if sc.ppm is not None and heights:
            expected = sc.ppm * 1e-6 * sc.sntpc_s
            out["sntpc"]["expected_tooth_ms"] = expected * 1e3
            out["sntpc"]["worst_relative_error"] = max(da.relative_error(h, expected) for _, h in heights)

    if sc.policy in DAEMONS:
        start = policy_at or 0.0
        end = stop_at if stop_at is not None else None
        # The first FILTER_N samples after the policy started still see the clock before it.
        meas = res.filtered_points(since=start, until=end)
        raw = res.clock_points(since=start, until=end)
        probes = res.points("guest-probe", since=start, until=end)
        own = res.points("guest-measurements", since=start, until=end)
        hold: dict = {"samples": len(raw),
                      "rejected": len(res.points(OBSERVER + "-rejected", since=start, until=end))}
        if own:
            own_settled = da.settle_time(own, HOLD_LIMIT_S, median_of=5)
            hold["own_samples"] = len(own)
            hold["own_settled_after_s"] = None if own_settled is None else own_settled - start
        settled = da.settle_time(meas, HOLD_LIMIT_S)
        if meas:
            last_t = meas[-1][0]
            hold["observed_s"] = last_t - start
            hold["settled_after_s"] = None if settled is None else settled - start
            hold["held_for_s"] = None if settled is None else last_t - settled
            if settled is not None:
                after = [abs(o) for t, o in meas if t >= settled]
                hold["filtered_max_ms"] = max(after) * 1e3
                hold["filtered_p50_ms"] = da.percentile(after, 50) * 1e3
                raw_after = [abs(o) for t, o in raw if t >= settled]
                if raw_after:
                    hold["raw_p95_ms"] = da.percentile(raw_after, 95) * 1e3
                    hold["raw_max_ms"] = max(raw_after) * 1e3
                pr = [abs(o) for t, o in probes if t >= settled]
                if pr:
                    hold["probe_p95_ms"] = da.percentile(pr, 95) * 1e3
                    hold["probe_max_ms"] = max(pr) * 1e3
            # from 10 s after the start on, however it went (S5's tick jumps kick it)
            later = [abs(o) for t, o in meas if t >= start + 10]
            if later:
                hold["after10s_filtered_max_ms"] = max(later) * 1e3
                hold["after10s_within_1ms"] = sum(v <= HOLD_LIMIT_S for v in later) / len(later)
            # the last 30 s, whatever happened before
            tail = [abs(o) for t, o in meas if t >= last_t - 30]
            hold["last30s_filtered_max_ms"] = max(tail) * 1e3
        out["hold"] = hold

    gw_points = res.gateway_points()
    if cont_at is not None:
        pts = res.points(*RECOVERY_SOURCES)
        before = [p for p in pts if p[0] <= stop_at]
        rec = da.recovery(pts, cont_at, RECOVERY_LIMIT_S)
        rec["paused_s"] = cont_at - stop_at
        # The jump: the farthest any observer saw the guest from where it was before the stop,
        # in the first seconds after cont. The first point of one source alone can come after the
        # guest's own chronyd has already stepped the clock back (it polls every 0.25-1 s).
        just_after = [o for t, o in pts + gw_points if cont_at <= t <= cont_at + JUMP_WINDOW_S]
        if before and just_after:
            jump = max((o - before[-1][1] for o in just_after), key=abs)
            rec["jump_s"] = jump
            # Under TCG the guest's clock stands still while QEMU is stopped: it
            # comes back as far behind as the pause was long.
            rec["clock_stood_still"] = abs(jump + rec["paused_s"]) < 1.0
        out["pause"] = rec

    gw = res.gateway_points()
    if gw:
        # the gateway's reading against the guest's own (clock-filtered) view at the same moment
        diffs = da.nearest_differences(gw, res.filtered_points(), 1.0)
        out["gateway"] = {"readings": len(gw),
                          "sources": sorted({o.source for o in res.observations
                                             if o.source.startswith("gateway-")}),
                          "vs_guest_median_abs_ms": (da.percentile([abs(d) for d in diffs], 50) * 1e3
                                                     if diffs else None),
                          "vs_guest_p95_abs_ms": (da.percentile([abs(d) for d in diffs], 95) * 1e3
                                                  if diffs else None),
                          "compared": len(diffs)}
        if cont_at is not None:
            after = [p for p in gw if p[0] >= cont_at]
            if after:
                out["gateway"]["first_after_cont_s"] = after[0][0] - cont_at
                out["gateway"]["first_after_cont_offset_s"] = after[0][1]
                rec = da.recovery(gw, cont_at, RECOVERY_LIMIT_S)
                out["gateway"]["recovered_s"] = rec.get("recovered_s")
    return out


def _s5_segments(res: PhaseResult, until: float | None) -> dict:
    """S5: the slope between two tick changes against that tick's ppm."""
    ticks = [(o.t - res.t0, o.extra["tick"]) for o in res.observations if o.source == "guest-tick"]
    errors = []
    for (t_a, tick), nxt in zip(ticks, ticks[1:] + [(until or 1e18, None)]):
        seg = [p for p in res.clock_points() if t_a + 1 <= p[0] <= nxt[0] - 0.5]
        expected = (tick - 10000) * 100.0
        if len(seg) >= 4 and abs(expected) >= 500:
            errors.append(da.relative_error(da.slope_ppm(seg), expected))
    return {"ticks": [t for _, t in ticks], "segments_compared": len(errors),
            "median_relative_error": sorted(errors)[len(errors) // 2] if errors else None}


# -- checks ---------------------------------------------------------------------------------------


def checks(figures: list[dict]) -> list[dict]:
    """The figures the experiment must show (issue: "checks, not hopes")."""
    out = []

    def check(name, value, target, holds, **extra):
        out.append({"check": name, "value": value, "target": target, "holds": bool(holds), **extra})

    for f in figures:
        if f.get("error"):
            check(f"{f['phase']}: ran", f["error"], "no guest error", False)
            continue
        free = f.get("free")
        if free and free.get("expected_ppm"):
            check(f"{f['phase']}: free-running slope", f"{free['slope_ppm']:+.0f} ppm",
                  f"within 10 % of {free['expected_ppm']:+.0f} ppm",
                  free["relative_error"] <= SLOPE_TOLERANCE, relative_error=free["relative_error"])
        if free and free.get("expected_ppm") and "free_gateway_slope_ppm" in f:
            gs = f["free_gateway_slope_ppm"]
            check(f"{f['phase']}: the gateway's slope (no agent: ICMP timestamps)", f"{gs:+.0f} ppm",
                  f"within 10 % of {free['expected_ppm']:+.0f} ppm",
                  da.relative_error(gs, free["expected_ppm"]) <= SLOPE_TOLERANCE)
        if free and free.get("expected_ppm") == 0:
            check(f"{f['phase']}: natural slope", f"{free['slope_ppm']:+.1f} ppm",
                  "|slope| <= 70 ppm (10 % of the -700 ppm case)", abs(free["slope_ppm"]) <= 70)
        sn = f.get("sntpc")
        if sn and "expected_tooth_ms" in sn:
            check(f"{f['phase']}: sawtooth teeth",
                  ", ".join(f"{v:+.1f}" for v in sn["teeth_ms"]) + " ms",
                  f"each within 10 % of {sn['expected_tooth_ms']:+.1f} ms (ppm x 30 s)",
                  sn["worst_relative_error"] <= TEETH_TOLERANCE and len(sn["teeth_ms"]) >= 2,
                  worst_relative_error=sn["worst_relative_error"])
        hold = f.get("hold")
        if hold is not None and f["policy"] == "chronyd-tuned" and f["tick"] != S5:
            held = hold.get("held_for_s")
            check(f"{f['phase']}: chronyd holds", _hold_text(hold),
                  "|offset| <= 1 ms (clock filter, min delay of 8) for >= 30 s, within 1 ms after <= 20 s",
                  held is not None and held >= 30 and hold["settled_after_s"] <= 20)
        pause = f.get("pause")
        if pause is not None:
            check(f"{f['phase']}: clock stood still while stopped",
                  f"jump {pause.get('jump_s', float('nan')):+.2f} s over a {pause['paused_s']:.1f} s pause",
                  "jump = -pause (+-1 s)", pause.get("clock_stood_still", False))
            if f["policy"] == "chronyd-tuned" and "[poll" not in f["phase"]:  # the recommended one
                rs = pause.get("recovered_s")
                check(f"{f['phase']}: back within 10 ms", "never" if rs is None else f"{rs:.1f} s",
                      "<= 5 s after cont", rs is not None and rs <= RECOVERY_TARGET_S)
    return out


def _hold_text(hold: dict) -> str:
    if hold.get("settled_after_s") is None:
        return "never settled"
    return (f"within 1 ms after {hold['settled_after_s']:.0f} s, then held {hold['held_for_s']:.0f} s: "
            f"filtered max {hold['filtered_max_ms']:.2f} ms (p50 {hold['filtered_p50_ms']:.2f}), "
            f"raw samples p95 {hold.get('raw_p95_ms', float('nan')):.2f} ms")


# -- output ---------------------------------------------------------------------------------------


def write_csv(results: list[PhaseResult], path: Path) -> int:
    rows = 0
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["t_s", "scenario", "policy", "offset_ms", "source"])
        for res in results:
            policy_at = res.event_s("policy")
            sc = res.phase.scenario
            for o in res.observations:
                if o.offset_s is None:
                    continue
                t_s = o.t - res.t0
                policy = sc.policy if not sc.delay_s or (policy_at is not None and t_s >= policy_at) \
                    else "none"
                w.writerow([f"{t_s:.3f}", res.phase.scenario_label, policy, f"{o.offset_s * 1e3:.4f}",
                            o.source])
                rows += 1
    return rows


def summary_table(figures: list[dict], check_list: list[dict]) -> str:
    lines = ["", f"{'phase':44} figures"]
    for f in figures:
        parts = []
        if f.get("error"):
            parts.append(f"ERROR {f['error'][:80]}")
        if "free" in f:
            fr = f["free"]
            parts.append(f"free slope {fr['slope_ppm']:+.1f} ppm"
                         + (f" (set {fr['expected_ppm']:+.0f})" if "expected_ppm" in fr else ""))
        if "sntpc" in f and f["sntpc"]["teeth_ms"]:
            t, c = f["sntpc"]["teeth_ms"], f["sntpc"]["corrected_ms"]
            parts.append(f"teeth {min(t):+.1f}..{max(t):+.1f} ms over {len(t)} periods of "
                         f"{min(f['sntpc']['periods_s']):.1f}..{max(f['sntpc']['periods_s']):.1f} s"
                         + (f"; each chronyd -q corrected {min(c):+.1f}..{max(c):+.1f} ms" if c else ""))  # clock-safe: a message
        if "hold" in f:
            h = f["hold"]
            parts.append(_hold_text(h))
            if "after10s_within_1ms" in h:
                parts.append(f"from 10 s on {100 * h['after10s_within_1ms']:.0f} % within 1 ms, "
                             f"max {h['after10s_filtered_max_ms']:.2f} ms")
            if "last30s_filtered_max_ms" in h:
                parts.append(f"last 30 s filtered max {h['last30s_filtered_max_ms']:.2f} ms")
        if "pause" in f:
            p = f["pause"]
            rs = p.get("recovered_s")
            parts.append(f"after cont {p.get('first_offset_s', float('nan')):+.3f} s, "
                         + (f"within 10 ms after {rs:.1f} s" if rs is not None else
                            f"not within 10 ms after {p.get('observed_s', 0):.0f} s "
                            f"(at {p.get('last_offset_s', float('nan')):+.3f} s"
                            + (f", ~{p['extrapolated_recovery_s']:.0f} s extrapolated"
                               if p.get("extrapolated_recovery_s") else "") + ")"))
        if "gateway" in f:
            g = f["gateway"]
            parts.append(f"gateway: {g['readings']} readings ({', '.join(g['sources'])}), "
                         f"|gateway - guest| median {g['vs_guest_median_abs_ms'] or float('nan'):.2f} ms, "
                         f"p95 {g['vs_guest_p95_abs_ms'] or float('nan'):.2f} ms"
                         + (f", slope {f['free_gateway_slope_ppm']:+.1f} ppm" if "free_gateway_slope_ppm" in f else "")
                         + (f", within 10 ms {g['recovered_s']:.1f} s after cont"
                            if g.get("recovered_s") is not None else ""))
        lines.append(f"{f['phase']:44} " + "; ".join(p for p in parts if p))
    lines += ["", "checks:"]
    for c in check_list:
        lines.append(f"  [{'ok' if c['holds'] else 'FAIL'}] {c['check']}: {c['value']} "
                     f"(target {c['target']})")
    return "\n".join(lines)


def _run(args, log) -> tuple[list[PhaseResult], bool, int]:
    if qemu.qemu_binary() is None:
        log(f"error: {qemu.QEMU} not found (apt-get install --no-install-recommends qemu-system-x86)")
        return [], False, 2
    plan = quick_plan() if args.quick else full_plan()
    if args.only:
        plan = [p for p in plan if any(s in p.label for s in args.only)]
        if not plan:
            log("error: --only matched no phase")
            return [], False, 2
    try:
        image = vm_image.build(progress=lambda p: log(f"guest image [{p.step}/{p.total}] {p.message}"))
    except vm_image.BuildError as e:
        log(f"error: guest image: {e}")
        return [], False, 1
    watch = gateway_can_watch()
    log("gateway view: " + (f"hostclock run {WATCH_FLAG}=1 --guest-clock-log" if watch else
                            f"this hostclock has no {WATCH_FLAG}: guest view only"))
    args.out.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="hcdrift-", dir="/tmp"))  # short socket paths
    results: list[PhaseResult] = []
    records = []
    try:
        for i, phase in enumerate(plan):
            log(f"phase {i + 1}/{len(plan)}: {phase.label}")
            res = run_phase(image, phase, workdir, index=i, watch=watch, log=log)
            if res.error:
                log(f"  guest error: {res.error.splitlines()[0]}")
            results.append(res)
            name = phase.label.replace("/", "_")
            (args.out / f"console-{name}.txt").write_text(res.console)
            if res.gateway_log:
                (args.out / f"hostclock-{name}.log").write_text(res.gateway_log)
            clock_log = workdir / f"p{i}-guest-clock.csv"
            if clock_log.exists():
                shutil.copy(clock_log, args.out / f"guest-clock-{name}.csv")
            records.append(_phase_record(res, name))
            (args.out / "phases.json").write_text(json.dumps(records, indent=1) + "\n")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return results, watch, 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.drift", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true",
                    help="one boot (tick 9993 free 40 s, chronyd tuned, a 20 s pause): < 3 min")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"output directory ({DEFAULT_OUT})")
    ap.add_argument("--from", dest="from_dir", type=Path, metavar="DIR",
                    help="analyse an earlier run's DIR again (its phases.json and consoles)")
    ap.add_argument("--only", action="append", metavar="SUBSTRING",
                    help="run only the full run's phases whose label contains this (repeatable)")
    args = ap.parse_args(argv)
    started = time.monotonic()

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    if args.from_dir:
        results = load_results(args.from_dir)
        args.out = args.from_dir if args.out == DEFAULT_OUT else args.out
        watch = any(o.source.startswith("gateway-") for r in results for o in r.observations)
        args.quick = json.loads((args.from_dir / "summary.json").read_text()).get("quick", False) \
            if (args.from_dir / "summary.json").exists() else args.quick
    else:
        results, watch, code = _run(args, log)
        if code:
            return code
    figures = [analyse(r) for r in results]
    check_list = checks(figures)
    rows = write_csv(results, args.out / "drift.csv")
    plots: list[str] = []
    plot_note = ""
    from . import drift_plots
    if drift_plots.available():
        plots = [str(p) for p in drift_plots.make_plots(results, figures, args.out)]
    else:
        plot_note = "no plots: matplotlib is not installed (pip install -e '.[demo]' for the PNGs)"
    elapsed = time.monotonic() - started
    image = vm_image.find_image()
    run = {"seconds": elapsed, "accel": qemu.host_accel(), "load_average": os.getloadavg(),
           "image": image.key if image else None}
    if args.from_dir and (args.from_dir / "summary.json").exists():  # the run's, not this analysis's
        earlier = json.loads((args.from_dir / "summary.json").read_text())
        run = {k: earlier.get(k, v) for k, v in run.items()}
        elapsed = run["seconds"] or 0.0
    summary = {"quick": args.quick, **run, "gateway_view": watch,
               "phases": figures, "checks": check_list, "csv_rows": rows,
               "plots": [Path(p).name for p in plots]}
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(summary_table(figures, check_list))
    if plot_note:
        print(plot_note)
    print(f"\n{'quick' if args.quick else 'full'} run, {elapsed:.0f} s, load average "
          f"{run['load_average'][0]:.1f}; {rows} rows in {args.out / 'drift.csv'}, summary in "
          f"{args.out / 'summary.json'}" + (f", {len(plots)} plots" if plots else ""))
    return 0 if check_list and all(c["holds"] for c in check_list) else 1


if __name__ == "__main__":
    raise SystemExit(main())
