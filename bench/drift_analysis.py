"""The drift experiment's arithmetic (bench/drift.py): slopes, sawtooth teeth,
convergence and recovery, from (t_s, offset_s) points.  Pure functions, no I/O.

Sign everywhere: offset = guest clock minus host clock (negative: guest behind).
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence

Point = tuple[float, float]  # (t_s, offset_s)


def linear_fit(points: Sequence[Point]) -> tuple[float, float]:
    """Least-squares (slope, intercept) of offset against t."""
    if len(points) < 2:
        raise ValueError(f"a line needs two points, got {len(points)}")
    n = len(points)
    mt = sum(t for t, _ in points) / n
    mo = sum(o for _, o in points) / n
    stt = sum((t - mt) ** 2 for t, _ in points)
    if stt == 0:
        raise ValueError("all points at the same time")
    slope = sum((t - mt) * (o - mo) for t, o in points) / stt
    return slope, mo - slope * mt


def slope_ppm(points: Sequence[Point]) -> float:
    """The drift rate of the offset, in ppm (s per s x 1e6)."""
    return linear_fit(points)[0] * 1e6


def fit_residual_max(points: Sequence[Point]) -> float:
    """The largest distance of a point from the fitted line, in seconds."""
    slope, intercept = linear_fit(points)
    return max(abs(o - (slope * t + intercept)) for t, o in points)


def relative_error(measured: float, expected: float) -> float:
    if expected == 0:
        raise ValueError("relative error against 0")
    return abs(measured - expected) / abs(expected)


def running_median(values: Sequence[float], n: int = 5) -> list[float]:
    """The median of each value and the N-1 before it (fewer at the start)."""
    return [statistics.median(values[max(0, i - n + 1):i + 1]) for i in range(len(values))]


def settle_time(points: Sequence[Point], limit: float, *, median_of: int = 1) -> float | None:
    """The earliest t from which every point (or the running median of MEDIAN_OF
    points) stays within +-LIMIT until the end; None if the last one is not."""
    if not points:
        return None
    pts = sorted(points)
    values = [o for _, o in pts]
    if median_of > 1:
        values = running_median(values, median_of)
    settled = None
    for (t, _), v in zip(reversed(pts), reversed(values)):
        if abs(v) > limit:
            break
        settled = t
    return settled


def clock_filter(samples: Sequence[tuple[float, float, float]], n: int = 8) -> list[Point]:
    """RFC 5905 section 10's clock filter: at each sample, the offset of the one
    with the lowest round-trip delay among it and the N-1 before it (the least
    room for an asymmetric path).  SAMPLES: (t, offset, delay), in time order."""
    out = []
    for i in range(n - 1, len(samples)):
        window = samples[i - n + 1:i + 1]
        best = min(window, key=lambda s: s[2])
        out.append((samples[i][0], best[1]))
    return out


def sawtooth_heights(points: Sequence[Point], step_times: Sequence[float], *,
                     guard_s: float = 1.0) -> list[tuple[float, float]]:
    """The height of each tooth between two consecutive steps: the slope of the
    POINTS between them (GUARD_S away from each step) times the time between the
    steps, so the drift over one period, read from many samples rather than from
    the two noisy ones at its ends.  Returns (period_s, height)."""
    out = []
    for a, b in zip(step_times, step_times[1:]):
        seg = [p for p in points if a + guard_s <= p[0] <= b - guard_s]
        if len(seg) >= 4:
            out.append((b - a, linear_fit(seg)[0] * (b - a)))
    return out


def teeth(steps: Sequence[Point]) -> list[Point]:
    """The sawtooth's teeth: the offset each step corrected, all but the first
    (the step at the start, which corrects the boot offset, not a period's drift)."""
    return sorted(steps)[1:]


def percentile(values: Sequence[float], q: float) -> float:
    """The Q-th percentile (0..100), nearest rank."""
    if not values:
        raise ValueError("no values")
    s = sorted(values)
    k = max(0, min(len(s) - 1, round(q / 100 * (len(s) - 1))))
    return s[k]


def recovery(points: Sequence[Point], t_resume: float, limit: float) -> dict:
    """After a pause that ended at T_RESUME: the first offset seen, how long until
    the points stay within +-LIMIT, and (if they never do) the last offset and how
    fast it was closing."""
    after = sorted(p for p in points if p[0] >= t_resume)
    out: dict = {"points": len(after)}
    if not after:
        return out
    out["first_offset_s"] = after[0][1]
    settled = settle_time(after, limit)
    if settled is not None:
        out["recovered_s"] = settled - t_resume
        return out
    out["recovered_s"] = None
    out["last_offset_s"] = after[-1][1]
    out["observed_s"] = after[-1][0] - t_resume
    tail = [p for p in after if p[0] >= after[-1][0] - 30.0]
    if len(tail) >= 2 and tail[-1][0] > tail[0][0]:
        rate = linear_fit(tail)[0]  # offset change per second
        out["closing_rate_ppm"] = rate * 1e6
        if rate != 0 and (after[-1][1] > 0) != (rate > 0):
            remaining = abs(after[-1][1]) - limit
            out["extrapolated_recovery_s"] = out["observed_s"] + remaining / abs(rate)
    return out


def nearest_differences(a: Sequence[Point], b: Sequence[Point], within: float) -> list[float]:
    """For each point of A, its offset minus that of B's nearest point in time
    (if one is within WITHIN s)."""
    bs = sorted(b)
    if not bs:
        return []
    out, j = [], 0
    for t, o in sorted(a):
        while j + 1 < len(bs) and abs(bs[j + 1][0] - t) <= abs(bs[j][0] - t):
            j += 1
        if abs(bs[j][0] - t) <= within:
            out.append(o - bs[j][1])
    return out
