"""The gateway watches a real VM's clock across a pause: QEMU (TCG) stopped through its monitor, as a VM
is when its host sleeps, then resumed; the guest's clock stood still meanwhile.

The VM is the test image (tests/vm): it takes a DHCP lease, asks the gateway with ``chronyd -Q``,
steps its clock with ``chronyd -q`` (inside the VM; clock-safe) and asks again. The gateway reads it with ICMP
timestamps (its kernel answers them) every second, into ``--guest-clock-log``. The VM is stopped
for 20 s once the first reading is in: the watcher gives it up (three silent rounds), and must read
it again as soon as it speaks after ``cont``, as far behind as the guest's chronyd says it is.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time

import pytest
from gateway_process import GatewayProcess

from gateway.vm import qemu
from tests.vm import support

pytestmark = [pytest.mark.qemu, pytest.mark.slow]

PAUSE_S = 20.0
#: how far the gateway's first reading after cont and the guest's own chronyd may differ (not simultaneous)
RESUME_SPREAD = 0.05
VM_TIMEOUT = 150.0


def readings(path) -> list[tuple[float, float, float]]:
    """(time_unix_s, offset_s, error_s) of each ICMP row."""
    lines = path.read_text().splitlines()
    assert lines[0] == "time_unix_s,guest_ip,guest_mac,offset_s,error_s,source"
    return [(float(r[0]), float(r[3]), float(r[4])) for r in (line.split(",") for line in lines[1:])
            if r[5] == "icmp"]


def qmp(sock_file, command: str) -> dict:
    sock_file.write(json.dumps({"execute": command}) + "\n")
    sock_file.flush()
    while True:  # skip asynchronous events until the command's answer
        answer = json.loads(sock_file.readline())
        if "return" in answer or "error" in answer:
            return answer


@pytest.fixture
def tmp():
    directory = support.short_tmpdir()  # socket paths must be short
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


def test_a_paused_vm_is_read_again_as_soon_as_it_resumes(tmp):
    support.require_qemu()
    image = support.require_image()
    path, monitor, log = tmp / "hc.sock", tmp / "qmp.sock", tmp / "clocks.csv"
    command = qemu.qemu_command(image, qemu.stream_netdev(path)) + ["-qmp", f"unix:{monitor},server=on,wait=off"]
    with GatewayProcess("run", "--qemu-stream", str(path), "--watch-guest-clock=1",
                        "--guest-clock-log", str(log), ready_timeout=20) as gateway:
        vm = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, start_new_session=True)
        try:
            deadline = time.monotonic() + VM_TIMEOUT
            while not readings(log):
                assert vm.poll() is None and time.monotonic() < deadline, "no reading of the running VM"
                time.sleep(0.1)
            with socket.socket(socket.AF_UNIX) as s:
                s.connect(str(monitor))
                monitor_file = s.makefile("rw")
                monitor_file.readline()  # the greeting
                assert "return" in qmp(monitor_file, "qmp_capabilities")
                assert "return" in qmp(monitor_file, "stop")
                time.sleep(PAUSE_S)
                resumed_at = time.time()
                assert "return" in qmp(monitor_file, "cont")
            console, _ = vm.communicate(timeout=VM_TIMEOUT)
        finally:
            if vm.poll() is None:
                vm.kill()
                vm.wait()
        gateway.stop()
    result = qemu.parse_results(console.decode(errors="replace"))
    where = f"\n{log.read_text()}\n--- hostclock ---\n{gateway.stderr}"
    assert "first" in result and "second" in result, f"{result}{where}"
    after = [r for r in readings(log) if r[0] >= resumed_at]
    assert after, f"no reading after the VM resumed{where}"
    t, offset, error = after[0]
    assert t - resumed_at < 3.0, f"first reading {t - resumed_at:.1f} s after cont{where}"
    # guest minus host: the opposite of chronyd's offset (server minus local), before its step or after. Not
    # at the same moment: right after cont the guest's clock still moves against the host's by some ms
    # (seen: the gateway -19.727054 s at 0.5 s, chronyd +19.718775 s a little later), hence 50 ms
    assert min(abs(offset + result["first"]), abs(offset + result["second"])) <= error + RESUME_SPREAD, (after, result)
    print(f"\nchronyd in the VM after the pause: {result['first']:+.6f} s; the gateway, {t - resumed_at:.2f} s "
          f"after cont: {offset:+.6f} s (error {error:.6f} s)")
