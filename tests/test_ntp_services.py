"""tests/host/ntp_services: tests/run names any running process that could discipline the clock.

Against a /proc of the test's own making (HOSTCLOCK_PROC), and against the real /proc with a
real process named ntpd (a copy of sleep: it only sleeps).
"""

import os
import shutil
import subprocess
import time
from pathlib import Path

SCRIPT = Path(__file__).resolve().parent / "host" / "ntp_services"


def fake_process(proc: Path, pid: int, comm: str, *argv: str) -> None:
    (proc / str(pid)).mkdir()
    (proc / str(pid) / "comm").write_text(comm + "\n")
    (proc / str(pid) / "cmdline").write_bytes(b"".join(a.encode() + b"\0" for a in argv))


def listed(proc=None) -> list[str]:
    env = dict(os.environ, **({"HOSTCLOCK_PROC": str(proc)} if proc else {}))
    cp = subprocess.run([str(SCRIPT)], env=env, capture_output=True, text=True, timeout=30)
    assert cp.returncode == 0 and not cp.stderr, cp
    return cp.stdout.splitlines()


def test_time_daemons_are_named_with_their_command_line_and_clock_safe_chronyd_is_not(tmp_path):
    fake_process(tmp_path, 101, "chronyd", "/usr/sbin/chronyd", "-F", "1")            # Debian's chrony.service (clock-safe: a fake process entry, nothing runs)
    fake_process(tmp_path, 102, "systemd-timesyn", "/lib/systemd/systemd-timesyncd")  # comm keeps 15 characters
    fake_process(tmp_path, 103, "ntpd", "/usr/sbin/ntpd", "-p", "/run/ntpd.pid", "-g")
    fake_process(tmp_path, 201, "chronyd", "chronyd", "-x", "-d", "-f", "/tmp/c.conf")  # serves only: a test's
    fake_process(tmp_path, 202, "chronyd", "chronyd", "-Q", "server 192.0.2.1")         # queries only
    fake_process(tmp_path, 203, "bash", "bash", "-c", "ntpd")
    (tmp_path / "self").mkdir()
    assert sorted(listed(tmp_path)) == ["101 /usr/sbin/chronyd -F 1", "102 /lib/systemd/systemd-timesyncd",  # clock-safe: fake entries
                                        "103 /usr/sbin/ntpd -p /run/ntpd.pid -g"]


def test_nothing_is_listed_when_no_time_daemon_runs(tmp_path):
    fake_process(tmp_path, 1, "init", "/sbin/init")
    assert listed(tmp_path) == []


def test_a_real_process_called_ntpd_is_found_in_the_real_proc(tmp_path):
    fake_ntpd = tmp_path / "ntpd"
    shutil.copy(shutil.which("sleep"), fake_ntpd)
    with subprocess.Popen([str(fake_ntpd), "30"]) as proc:
        try:
            deadline = time.monotonic() + 5
            while Path(f"/proc/{proc.pid}/comm").read_text().strip() != "ntpd":  # exec done
                assert time.monotonic() < deadline
                time.sleep(0.01)
            assert f"{proc.pid} {fake_ntpd} 30" in listed()
        finally:
            proc.kill()
