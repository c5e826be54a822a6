"""tests/host/without_service_starts: a command runs under a deny-all policy-rc.d, and what was
there before is put back exactly, whatever happens to the command.

The script runs for real, on a policy-rc.d path of the test's own (HOSTCLOCK_POLICY_RC_D);
the command it runs reports what it saw there.
"""

import os
import signal
import stat
import subprocess
import time
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent / "host" / "without_service_starts"

#: the command run under the policy: what the policy file is, and what it answers invoke-rc.d
PROBE = 'ls -l "$HOSTCLOCK_POLICY_RC_D" > "$OUT/listing"; "$HOSTCLOCK_POLICY_RC_D" chrony start; echo $? > "$OUT/answer"'


def run(tmp_path, command=PROBE, **kwargs):
    env = dict(os.environ, HOSTCLOCK_POLICY_RC_D=str(tmp_path / "policy-rc.d"), OUT=str(tmp_path))
    return subprocess.run([str(SCRIPT), "sh", "-c", command], env=env, timeout=30, **kwargs)


def seen_answer(tmp_path) -> int:
    return int((tmp_path / "answer").read_text())


def test_without_a_policy_one_denies_every_start_meanwhile_and_is_gone_after(tmp_path):
    assert run(tmp_path).returncode == 0
    assert seen_answer(tmp_path) == 101   # invoke-rc.d: "action forbidden by policy"
    assert not (tmp_path / "policy-rc.d").exists() and not (tmp_path / "policy-rc.d").is_symlink()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["answer", "listing"]


def test_an_allowing_policy_is_replaced_meanwhile_and_put_back_byte_for_byte_with_its_mode(tmp_path):
    policy = tmp_path / "policy-rc.d"
    policy.write_text("#!/bin/sh\n# this machine allows service starts\nexit 0\n")
    policy.chmod(0o710)
    os.utime(policy, ns=(1_600_000_000_000_000_000, 1_600_000_000_000_000_000))
    before = policy.stat()
    assert run(tmp_path).returncode == 0
    assert seen_answer(tmp_path) == 101
    after = policy.stat()
    assert policy.read_text() == "#!/bin/sh\n# this machine allows service starts\nexit 0\n"
    assert stat.S_IMODE(after.st_mode) == 0o710 and after.st_mtime_ns == before.st_mtime_ns


def test_a_symlinked_policy_stays_a_symlink_and_its_target_is_never_written(tmp_path):
    target = tmp_path / "site-policy"
    target.write_text("#!/bin/sh\nexit 0\n")
    target.chmod(0o755)
    (tmp_path / "policy-rc.d").symlink_to(target)
    assert run(tmp_path).returncode == 0
    assert seen_answer(tmp_path) == 101
    assert os.readlink(tmp_path / "policy-rc.d") == str(target)
    assert target.read_text() == "#!/bin/sh\nexit 0\n"


def test_a_failing_command_gives_its_status_and_the_policy_is_still_put_back(tmp_path):
    policy = tmp_path / "policy-rc.d"
    policy.write_text("#!/bin/sh\nexit 0\n")
    assert run(tmp_path, PROBE + "; exit 100").returncode == 100
    assert seen_answer(tmp_path) == 101
    assert policy.read_text() == "#!/bin/sh\nexit 0\n"


@pytest.mark.parametrize("signum, status", [(signal.SIGTERM, 143), (signal.SIGINT, 130), (signal.SIGHUP, 129)])
def test_an_interrupted_install_puts_the_policy_back_and_stops_the_command(tmp_path, signum, status):
    policy = tmp_path / "policy-rc.d"
    policy.write_text("#!/bin/sh\nexit 0\n")
    env = dict(os.environ, HOSTCLOCK_POLICY_RC_D=str(policy), OUT=str(tmp_path))
    command = PROBE + '; echo $$ > "$OUT/pid"; exec sleep 60'
    with subprocess.Popen([str(SCRIPT), "sh", "-c", command], env=env) as proc:
        deadline = time.monotonic() + 10
        while not (tmp_path / "pid").exists() or not (tmp_path / "pid").read_text().strip():
            assert time.monotonic() < deadline and proc.poll() is None
            time.sleep(0.02)
        command_pid = int((tmp_path / "pid").read_text())
        proc.send_signal(signum)
        assert proc.wait(timeout=10) == status
    assert seen_answer(tmp_path) == 101
    assert policy.read_text() == "#!/bin/sh\nexit 0\n"
    with pytest.raises(ProcessLookupError):  # the command (sleep 60) was stopped too
        os.kill(command_pid, 0)


def test_tests_run_installs_packages_only_through_it():
    run_script = (Path(__file__).resolve().parent / "run").read_text()
    install_lines = [line for line in run_script.splitlines() if "apt-get install" in line]
    assert install_lines and "policy-rc.d" not in run_script.replace("# ", "")  # no policy of its own
    start = run_script.index("tests/host/without_service_starts")
    assert all(run_script.index(line) > start for line in install_lines)
