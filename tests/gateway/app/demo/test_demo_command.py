"""`hostclock demo` as a command: plain output off a terminal, SIGTERM, two at once, and the
one-line errors of a machine that cannot run it (leaving nothing behind)."""

from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest

from demo_leftovers import demo_names, hostclock_cli, leftovers, private_dirs, require_netns_demo
from gateway.app.demo.readings import read_csv


def _start(out, *args: str, env: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen([hostclock_cli(), "demo", "--out", str(out), *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL, env=env)


@pytest.mark.root
@pytest.mark.clients
@pytest.mark.slow
def test_off_a_terminal_it_prints_a_line_a_second_and_sigterm_stops_it_cleanly(tmp_path):
    require_netns_demo()
    before = private_dirs()
    proc = _start(tmp_path / "out", "--guest", "netns")
    time.sleep(4)
    proc.send_signal(signal.SIGTERM)
    stdout, stderr = proc.communicate(timeout=20)
    assert proc.returncode == 0, stderr
    lines = stdout.splitlines()
    assert "stopped (SIGTERM received)" in stdout
    ticks = [line for line in lines if " s · " in line or line.lstrip().startswith(("0.0 s", "1.0 s"))]
    assert len(ticks) >= 3, stdout  # about one a second
    assert "\x1b[" not in stdout, "plain output has no terminal escapes"
    assert any("NTP answered: " in line and "NTP answered: 0 " not in line for line in lines), stdout
    _, token, _ = demo_names(stdout)
    assert leftovers(token) == []
    assert private_dirs() - before == set()
    assert len(read_csv(str(tmp_path / "out" / "demo.csv"))) >= 4


@pytest.mark.root
@pytest.mark.clients
@pytest.mark.slow
def test_two_demos_at_once_do_not_collide(tmp_path):
    require_netns_demo()
    first = _start(tmp_path / "a", "--guest", "netns", "--duration", "5")
    second = _start(tmp_path / "b", "--guest", "netns", "--duration", "5")
    outputs = [proc.communicate(timeout=30) for proc in (first, second)]
    assert first.returncode == 0 and second.returncode == 0, outputs
    names = [demo_names(stdout) for stdout, _ in outputs]
    assert names[0][0] != names[1][0] and names[0][2] != names[1][2]
    a, b = read_csv(str(tmp_path / "a" / "demo.csv")), read_csv(str(tmp_path / "b" / "demo.csv"))
    assert len(a) >= 4 and len(b) >= 4
    assert {r.guest_mac for r in a}.isdisjoint({r.guest_mac for r in b})
    for _, token, _ in names:
        assert leftovers(token) == []


def _one_line_error(proc_args: list[str], cwd, env=None, preexec=None) -> str:
    done = subprocess.run(proc_args, capture_output=True, text=True, timeout=60, cwd=cwd, env=env,
                          preexec_fn=preexec)
    assert done.returncode == 1, (done.returncode, done.stdout, done.stderr)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("hostclock: error: "), done.stderr
    assert "Traceback" not in done.stderr
    assert os.listdir(cwd) == [], "nothing left behind (no output directory)"
    return lines[0]


@pytest.mark.parametrize("guest", ["netns", "vm"])
def test_not_root_is_one_line_naming_the_fix(tmp_path, guest):
    if os.geteuid() != 0:
        line = _one_line_error([hostclock_cli(), "demo", "--guest", guest], tmp_path)
    else:
        os.chmod(tmp_path, 0o777)
        line = _one_line_error(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                                hostclock_cli(), "demo", "--guest", guest], tmp_path)
    assert "needs root" in line and "sudo" in line


def test_no_qemu_is_one_line_naming_the_package_and_the_netns_demo(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("the root check comes first")
    env = dict(os.environ, PATH="/nonexistent")  # QEMU is in /usr/bin, which is not searched then
    line = _one_line_error([hostclock_cli(), "demo"], tmp_path, env=env)
    assert "apt-get install qemu-system-x86" in line and "--guest netns" in line


def test_a_bad_duration_is_a_usage_error():
    done = subprocess.run([hostclock_cli(), "demo", "--duration", "-3"], capture_output=True, text=True, timeout=30)
    assert done.returncode == 2 and "positive number of seconds" in done.stderr


def test_pause_at_with_the_netns_guest_is_a_misconfiguration(tmp_path):
    done = subprocess.run([hostclock_cli(), "demo", "--guest", "netns", "--pause-at", "5"], capture_output=True,
                          text=True, timeout=30, cwd=tmp_path)
    assert done.returncode == 2 and done.stderr.strip().endswith("needs the VM guest (leave out --guest netns)")
    assert os.listdir(tmp_path) == []


def test_no_kernel_package_reachable_is_one_line_naming_the_fix(tmp_path):
    """apt knows no guest kernel (no package lists): the VM demo stops before making anything."""
    if os.geteuid() != 0:
        pytest.skip("the root check comes first")
    from gateway.app.demo.preflight import find_tool

    if find_tool("qemu-system-x86_64") is None:
        pytest.skip("the QEMU check comes first")
    fake = tmp_path / "bin"
    fake.mkdir()
    # an apt-cache whose lists are empty, as before the first apt-get update
    (fake / "apt-cache").write_text("#!/bin/sh\necho 'W: No packages found' >&2\nexit 0\n")
    (fake / "apt-cache").chmod(0o755)
    work = tmp_path / "work"
    work.mkdir()
    env = dict(os.environ, PATH=f"{fake}:{os.environ['PATH']}", HOSTCLOCK_VM_CACHE=str(tmp_path / "empty-cache"))
    line = _one_line_error([hostclock_cli(), "demo"], work, env=env)
    assert "no guest kernel package reachable" in line and "apt-get update" in line and "--guest netns" in line
