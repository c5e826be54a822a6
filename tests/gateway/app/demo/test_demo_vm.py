"""`hostclock demo` with its default guest, a real VM under QEMU: the drift, then the correction.

`hostclock demo --no-live --duration 90`: the guest's clock starts a few seconds
off with its tick at 9993 (about -700 ppm, set inside the VM), runs 30 s with no
time sync, then its chronyd syncs to the server from DHCP option 42. The CSV (the
gateway's watcher: ICMP timestamps, no agent in the guest) must show the drift in
the first phase (a negative slope near -700 ppm) and |offset| <= 5 ms at the end;
(the guest's /init sets its clock from the gateway, then 3 s behind, and the drift starts there);
afterwards no QEMU process, no private directory, no socket file is left.
"""

from __future__ import annotations

import os
import re
import statistics
import subprocess

import pytest

from demo_leftovers import cannot_run, hostclock_cli, private_dirs
from gateway.app.demo.drift import slope_ppm
from gateway.app.demo.readings import read_csv

pytestmark = [pytest.mark.qemu, pytest.mark.slow, pytest.mark.root]


def _require_vm_demo() -> None:
    from gateway.app.demo.preflight import DemoUnavailable
    from gateway.app.demo.vm_guest import check_vm_machine

    try:
        check_vm_machine(rebuild=False)
    except DemoUnavailable as e:
        cannot_run(str(e))


def test_the_vm_drifts_then_is_kept_in_step(tmp_path):
    _require_vm_demo()
    before = private_dirs()
    done = subprocess.run([hostclock_cli(), "demo", "--no-live", "--duration", "90", "--out", str(tmp_path / "out")],
                          capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL)
    where = f"\n--- stdout ---\n{done.stdout[-6000:]}\n--- stderr ---\n{done.stderr[-3000:]}"
    assert done.returncode == 0, where
    assert "stopped (the duration elapsed)" in done.stdout, where
    rows = read_csv(str(tmp_path / "out" / "demo.csv"))
    assert len(rows) >= 30, f"{len(rows)} readings{where}"
    # the guest's /init sets its clock 3 s behind the host's (after setting it from the gateway):
    # the first phase is every reading from there until chronyd's correction, a few seconds behind
    behind = [i for i, r in enumerate(rows) if -5.0 < r.offset_s < -2.0]
    assert behind, f"the guest should start a few seconds behind{where}"
    first = behind[0]
    corrected = next((i for i in range(first, len(rows)) if abs(rows[i].offset_s) < 0.5), len(rows))
    free = rows[first:corrected]
    assert len(free) >= 15, f"a first phase of {len(free)} readings{where}"
    assert all(-5.0 < r.offset_s < -2.0 for r in free), f"the first phase left 'a few seconds behind'{where}"
    slope = slope_ppm(free, start_unix=free[0].time_unix_s)
    assert slope is not None and -1000 < slope < -400, f"drift {slope} ppm over {len(free)} readings{where}"
    assert free[-1].offset_s < free[0].offset_s - 0.010, f"after 30 s at -700 ppm the guest is >10 ms further behind{where}"
    tail = [abs(r.offset_s) for r in rows[-5:]]
    assert statistics.median(tail) <= 0.005, f"the last offsets {tail}{where}"
    socket_path = re.search(r"on qemu-stream (\S+gateway\.sock)", done.stdout)
    assert socket_path, where
    assert not os.path.exists(os.path.dirname(socket_path.group(1))), "the socket's directory is left"
    assert private_dirs() - before == set(), "the demo left its private directory (and socket) in /tmp"
    qemu = subprocess.run(["pgrep", "-a", "-f", socket_path.group(1)], capture_output=True, text=True)
    assert qemu.stdout == "", f"QEMU is left: {qemu.stdout}"
    png = pytest.importorskip("matplotlib.image").imread(str(tmp_path / "out" / "demo.png"))
    assert png.shape[0] > 400
