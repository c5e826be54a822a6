"""bench/drift_analysis.py: the drift experiment's arithmetic on made-up points."""

from __future__ import annotations

import pytest

from bench import drift_analysis as da


def test_slope_of_a_700_ppm_line():
    pts = [(t, -700e-6 * t + 0.002) for t in range(0, 40)]
    assert da.slope_ppm(pts) == pytest.approx(-700.0)
    assert da.fit_residual_max(pts) == pytest.approx(0.0, abs=1e-12)
    with pytest.raises(ValueError):
        da.linear_fit([(1.0, 0.0)])


def test_clock_filter_takes_the_lowest_delay_of_eight():
    samples = [(float(i), 0.005 if i % 2 else 0.0001, 0.004 if i % 2 else 0.001) for i in range(16)]
    out = da.clock_filter(samples)
    assert len(out) == 9 and all(o == 0.0001 for _, o in out)
    assert out[0][0] == 7.0


def test_settle_time_and_running_median():
    pts = [(0.0, 0.02), (1.0, 0.004), (2.0, 0.0005), (3.0, -0.0008), (4.0, 0.0002)]
    assert da.settle_time(pts, 0.001) == 2.0
    assert da.settle_time(pts + [(5.0, 0.003)], 0.001) is None
    assert da.running_median([1, 5, 2, 8, 3], 3) == [1, 3, 2, 5, 3]


def test_recovery_after_a_pause():
    pts = [(0.0, 0.0), (10.5, -60.0), (11.0, -60.0), (11.6, -0.002), (12.0, 0.001)]
    rec = da.recovery(pts, 10.0, 0.010)
    assert rec["first_offset_s"] == -60.0
    assert rec["recovered_s"] == pytest.approx(1.6)
    slewing = [(10.0 + t, -60.0 + 0.0833 * t) for t in range(0, 60)]
    rec = da.recovery(slewing, 10.0, 0.010)
    assert rec["recovered_s"] is None
    assert rec["closing_rate_ppm"] == pytest.approx(83300, rel=1e-3)
    assert rec["extrapolated_recovery_s"] == pytest.approx(60 / 0.0833, rel=0.02)


def test_teeth_skip_the_boot_step_and_nearest_differences():
    steps = [(30.0, -0.5), (61.0, -0.021), (92.0, -0.0215)]
    assert da.teeth(steps) == [(61.0, -0.021), (92.0, -0.0215)]
    diffs = da.nearest_differences([(1.0, 0.003), (9.0, 0.0)], [(1.2, 0.001), (5.0, 0.0)], 0.5)
    assert diffs == [pytest.approx(0.002)]
    assert da.percentile([3, 1, 2], 50) == 2


def test_sawtooth_heights_from_the_points_between_steps():
    steps = [0.0, 31.0, 62.0]
    pts = []
    for a, b in zip(steps, steps[1:]):
        pts += [(a + 0.5 + i * 0.25, -700e-6 * (i * 0.25 + 0.5) + (0.003 if i % 2 else -0.003))
                for i in range(int((b - a - 1) / 0.25))]
    heights = da.sawtooth_heights(pts, steps)
    assert [p for p, _ in heights] == [31.0, 31.0]
    assert all(h == pytest.approx(-700e-6 * 31.0, rel=0.05) for _, h in heights)
