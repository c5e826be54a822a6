"""Ctrl-C at any moment of the VM demo tears everything down: during the image's preparation
and during the boot, no QEMU, no image build, no private directory or socket is left."""

from __future__ import annotations

import os
import shlex
import subprocess
import time
import uuid

import pytest

from demo_leftovers import cannot_run, hostclock_cli, private_dirs

pytestmark = [pytest.mark.qemu, pytest.mark.slow, pytest.mark.root]


def _require_vm_demo() -> None:
    from gateway.app.demo.preflight import DemoUnavailable
    from gateway.app.demo.vm_guest import check_vm_machine

    try:
        check_vm_machine(rebuild=False)
    except DemoUnavailable as e:
        cannot_run(str(e))


def _processes(pattern: str) -> list[str]:
    out = subprocess.run(["pgrep", "-a", "-f", pattern], capture_output=True, text=True).stdout
    return [line for line in out.splitlines() if "pgrep" not in line]


@pytest.mark.parametrize("when", ["preparing the guest image", "booting the VM"])
def test_ctrl_c_tears_everything_down(tmp_path, when):
    _require_vm_demo()
    before = private_dirs()
    status = tmp_path / "status"
    session = f"hcdemo-test-{uuid.uuid4().hex[:8]}"
    command = " ".join(shlex.quote(a) for a in [hostclock_cli(), "demo", "--accel", "tcg", "--out", str(tmp_path / "out")])
    subprocess.run(["tmux", "-L", session, "-f", "/dev/null", "new-session", "-d", "-s", session, "-x", "120", "-y", "45", "env", "LANG=C.UTF-8",
                    "sh", "-c", f"trap 'true' INT; {command}; echo $? > {status}; sleep 60"], check=True, timeout=10)
    socket_path = subprocess.run(["tmux", "-L", session, "display-message", "-p", "#{socket_path}"],
                                 capture_output=True, text=True, timeout=10).stdout.strip()
    try:
        deadline = time.monotonic() + 120
        screen = ""
        while when not in screen:
            assert time.monotonic() < deadline, f"never saw {when!r}:\n{screen}"
            time.sleep(0.2)
            screen = subprocess.run(["tmux", "-L", session, "capture-pane", "-p", "-t", session], capture_output=True,
                                    text=True).stdout
        socket_dirs = private_dirs() - before
        subprocess.run(["tmux", "-L", session, "send-keys", "-t", session, "C-c"], check=True, timeout=10)
        deadline = time.monotonic() + 30
        while not (status.exists() and status.read_text().strip()):
            assert time.monotonic() < deadline, "the demo did not stop within 30 s of Ctrl-C"
            time.sleep(0.2)
        assert status.read_text().strip() == "0"
        final = subprocess.run(["tmux", "-L", session, "capture-pane", "-p", "-S", "-200", "-t", session], capture_output=True,
                               text=True).stdout
        assert "stopped (SIGINT received)" in final, final
    finally:
        subprocess.run(["tmux", "-L", session, "kill-server"], capture_output=True, timeout=10)
        if socket_path.endswith("/" + session) and os.path.exists(socket_path):
            os.unlink(socket_path)  # kill-server leaves the server's socket file
    assert private_dirs() - before == set(), "the private directory (the gateway's socket) is left"
    for name in socket_dirs:
        assert _processes(name) == [], f"something still uses /tmp/{name}"
    assert _processes("gateway.app.demo.image_build") == []


def test_sigterm_while_the_vm_runs_tears_everything_down(tmp_path):
    import signal
    import threading

    _require_vm_demo()
    before = private_dirs()
    proc = subprocess.Popen([hostclock_cli(), "demo", "--no-live", "--accel", "tcg", "--out", str(tmp_path / "out")],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, stdin=subprocess.DEVNULL)
    seen: list[str] = []
    drifting = threading.Event()

    def read() -> None:
        for line in proc.stdout:
            seen.append(line)
            if "no time sync for" in line:
                drifting.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        assert drifting.wait(timeout=150), "the VM never reached its drift phase:\n" + "".join(seen[-30:])
        sockets = private_dirs() - before
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    reader.join(timeout=10)
    assert "stopped (SIGTERM received)" in "".join(seen)
    assert private_dirs() - before == set()
    for name in sockets:
        assert _processes(name) == [], f"something still uses /tmp/{name}"
