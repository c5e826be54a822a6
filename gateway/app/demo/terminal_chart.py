"""The guest's offset over time as rows of characters, for the live view.

Plain text in a fixed grid (the view puts it in a rich panel): each column is a
slice of time, each row a band of offset, a dot where a reading fell, the zero
line drawn across. The scale is symmetric around zero and fits the readings since `scale_from_s` (the
current phase, say), so that a drift of milliseconds is not flattened by a boot
seconds off; readings beyond it are drawn on the edge row as ▲ or ▼.
"""

from __future__ import annotations

from collections.abc import Sequence

from gateway.app.demo.formatting import signed_seconds

__all__ = ["chart_lines"]


def chart_lines(points: Sequence[tuple[float, float]], *, now_s: float, width: int = 60, height: int = 9,
                span_s: float = 180.0, scale_from_s: float | None = None) -> list[str]:
    """`points`: (seconds since start, offset in seconds). Lines of text covering the last `span_s`
    seconds up to `now_s` (all of them while the demo is younger), the newest at the right; the
    scale fits the points from `scale_from_s` on (all shown points if fewer than two are)."""
    width, height = max(10, width), max(3, height | 1)  # odd: a middle row for zero
    end = max(now_s, 1.0)
    start = max(0.0, end - span_s)
    shown = [(t, y) for t, y in points if start <= t <= end]
    scaled = [y for t, y in shown if scale_from_s is None or t >= scale_from_s]
    if len(scaled) < 2:
        scaled = [y for _, y in shown]
    top = max((abs(y) for y in scaled), default=0.0) or 1e-6
    top = _nice(top)
    grid = [[" "] * width for _ in range(height)]
    middle = height // 2
    for column in range(width):
        grid[middle][column] = "─"
    duration = max(end - start, 1e-9)
    for t, y in shown:
        column = min(width - 1, int((t - start) / duration * (width - 1)))
        row = middle - round(y / top * middle)
        if row < 0:
            grid[0][column] = "▲"
        elif row > height - 1:
            grid[height - 1][column] = "▼"
        else:
            grid[row][column] = "•"
    labels = {0: signed_seconds(top), middle: "0", height - 1: signed_seconds(-top)}
    pad = max(len(label) for label in labels.values())
    return [f"{labels.get(row, ''):>{pad}} ┤{''.join(grid[row])}" for row in range(height)]


def _nice(value: float) -> float:
    """The first of 1, 2, 5 x 10^n at or above `value`."""
    scale = 1e-9
    while True:
        for step in (1, 2, 5):
            if step * scale >= value:
                return step * scale
        scale *= 10
