"""The guest clock's drift over a phase: the least-squares slope of its offset, in ppm."""

from __future__ import annotations

from collections.abc import Iterable

from gateway.app.demo.readings import Reading

__all__ = ["slope_ppm"]


def slope_ppm(readings: Iterable[Reading], *, start_unix: float, end_unix: float | None = None) -> float | None:
    """The slope of offset over time of the readings in [start, end), in ppm (µs per s); None
    with fewer than 3 readings or less than 2 s between the first and the last."""
    points = [(r.time_unix_s, r.offset_s) for r in readings
              if r.time_unix_s >= start_unix and (end_unix is None or r.time_unix_s < end_unix)]
    if len(points) < 3 or points[-1][0] - points[0][0] < 2.0:
        return None
    n = len(points)
    mean_t = sum(t for t, _ in points) / n
    mean_y = sum(y for _, y in points) / n
    stt = sum((t - mean_t) ** 2 for t, _ in points)
    if stt == 0:
        return None
    sty = sum((t - mean_t) * (y - mean_y) for t, y in points)
    return sty / stt * 1e6
