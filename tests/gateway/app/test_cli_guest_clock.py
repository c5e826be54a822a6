"""The command line's guest clock flags: --watch-guest-clock[=SECONDS], --guest-clock-threshold,
--guest-clock-log, and the [guest_clock] table; bad values end with one line."""

import pytest
from gateway_process import run_cli

from gateway.app.cli import _build_parser, _config_from_args


def config_of(*args):
    return _config_from_args(_build_parser().parse_args(["run", "--tap", "x", *args])).guest_clock


def test_off_unless_asked_10_s_when_asked_bare():
    assert not config_of().enabled
    assert config_of("--watch-guest-clock").interval == 10.0
    assert config_of("--watch-guest-clock=2.5").interval == 2.5
    assert config_of("--watch-guest-clock", "5").interval == 5.0
    assert config_of("--guest-clock-log", "f.csv").interval == 10.0  # a log of readings asks for readings
    assert config_of("--watch-guest-clock=0").interval == 0.0
    assert config_of("--guest-clock-threshold", "0.5").threshold == 0.5


def test_the_toml_table_and_flags_over_it(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text("[guest_clock]\ninterval = 3\nthreshold = 0.02\n")
    assert (config_of("--config", str(path)).interval, config_of("--config", str(path)).threshold) == (3, 0.02)
    assert config_of("--config", str(path), "--watch-guest-clock=7").interval == 7.0
    assert config_of("--config", str(path), "--guest-clock-log", "f.csv").interval == 3  # the file's interval kept


def one_line_error(result, status, *words):
    assert result.returncode == status, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("hostclock: error: "), result.stderr
    for word in words:
        assert word in lines[0], lines[0]


@pytest.mark.parametrize("args, words", [
    (["--watch-guest-clock=0.1"], ["guest_clock interval 0.1", "0.5 to 86400"]),
    (["--guest-clock-threshold", "0"], ["guest_clock threshold 0"]),
    (["--watch-guest-clock=0", "--guest-clock-log", "f.csv"], ["needs guest clocks watched", "--watch-guest-clock"]),
])
def test_bad_values_stop_at_start_up(args, words, tmp_path):
    one_line_error(run_cli("run", "--qemu-stream", str(tmp_path / "s.sock"), *args), 2, *words)


@pytest.mark.parametrize("log, words", [
    ("/nonexistent/dir/clocks.csv", ["cannot start /nonexistent/dir/clocks.csv", "No such file or directory"]),
    ("/dev/full", ["cannot start /dev/full", "No space left on device"]),  # the header cannot be written
])
def test_a_log_that_cannot_be_started_is_one_line(log, words, tmp_path):
    one_line_error(run_cli("run", "--qemu-stream", str(tmp_path / "s.sock"), "--guest-clock-log", log), 1, *words)
