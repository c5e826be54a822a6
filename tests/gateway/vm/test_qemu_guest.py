"""gateway/vm/qemu.py's Guest: a real boot under QEMU/TCG with its NIC on a
socket we listen on (no gateway: the guest only gets as far as asking DHCP),
its console lines stamped with the host clock, the QMP monitor's stop/cont,
and a teardown that leaves no process and no socket directory."""

from __future__ import annotations

import os
import shutil
import socket
import time

import pytest

from gateway.vm import qemu

try:
    from tests.vm import support
except ImportError:  # pytest put tests/ rather than the repo root on sys.path
    import sys
    from pathlib import Path
    sys.path.insert(0, str(Path(__file__).resolve().parents[3]))
    from tests.vm import support

pytestmark = [pytest.mark.qemu, pytest.mark.slow]


def test_guest_console_monitor_and_teardown():
    support.require_qemu()
    image = support.require_image()
    tmp = support.short_tmpdir()
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(str(tmp / "peer.sock"))
    srv.listen(1)
    try:
        t_start = time.time()
        guest = qemu.Guest.start(image, qemu.stream_netdev(tmp / "peer.sock"),
                                 append="hostclock.mode=step")
        with guest:
            line = guest.wait_for(r"HOSTCLOCK-STAGE dhcp", timeout=120)
            assert t_start <= line.t <= time.time()
            assert guest.monitor.status() == "running"
            guest.stop()
            assert guest.monitor.status() == "paused"
            guest.cont()
            assert guest.monitor.status() == "running"
            assert any("HOSTCLOCK-STAGE init" in l.text for l in guest.console())
            workdir = guest._workdir
            assert (workdir / "qmp.sock").exists()
        assert guest.proc.poll() is not None, "QEMU still running after close()"
        with pytest.raises(ProcessLookupError):
            os.killpg(guest.proc.pid, 0)  # nothing left in its process group
        assert not workdir.exists()
        t0 = time.monotonic()
        list(guest.lines(timeout=60))  # what was left; then the console's end, not the timeout
        assert time.monotonic() - t0 < 30
    finally:
        srv.close()
        shutil.rmtree(tmp, ignore_errors=True)
