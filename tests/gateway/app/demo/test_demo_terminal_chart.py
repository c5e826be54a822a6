"""The live view's chart: readings placed by time and offset around a zero line."""

from gateway.app.demo.terminal_chart import chart_lines


def _grid(lines):
    return [line.split("┤", 1)[1] for line in lines]


def test_a_reading_above_zero_is_above_the_zero_line_and_the_newest_at_the_right():
    lines = chart_lines([(1.0, -0.004), (10.0, 0.004)], now_s=10.0, width=40, height=9)
    grid = _grid(lines)
    assert len(lines) == 9 and all(len(row) == 40 for row in grid)
    assert set(grid[4]) <= {"─", "•"}  # the zero line in the middle row
    # scale ±5 ms over 4 rows each side: +4 ms is 3.2 rows up (row 1), at the right edge; -4 ms at row 7
    assert grid[1][-1] == "•" and grid[1].count("•") == 1
    assert grid[7].index("•") < 5
    assert lines[0].lstrip().startswith("+5.00 ms") and lines[4].strip().startswith("0")


def test_only_the_last_span_is_shown():
    grid = _grid(chart_lines([(0.0, 0.001), (300.0, 0.0)], now_s=300.0, width=20, height=5, span_s=60))
    assert sum(row.count("•") for row in grid) == 1


def test_no_points_is_an_empty_chart_with_its_zero_line():
    grid = _grid(chart_lines([], now_s=0.0, width=20, height=5))
    assert grid[2] == "─" * 20 and not any("•" in row for row in grid)


def test_the_scale_fits_the_current_phase_and_what_is_beyond_sits_on_the_edge():
    # a boot 3 s off, then a drift of milliseconds: the scale is the drift's, the boot marked ▼
    points = [(1.0, -3.0), (2.0, -3.0)] + [(t, -0.0007 * (t - 3)) for t in range(3, 30)]
    lines = chart_lines(points, now_s=30.0, width=40, height=9, scale_from_s=3.0)
    grid = _grid(lines)
    assert lines[0].lstrip().startswith("+20.00 ms")
    assert grid[8][:3].count("▼") == 2 and grid[8].count("▼") == 2  # the two boot readings, on the edge
    assert sum(row.count("•") for row in grid) > 20
