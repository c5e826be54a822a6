"""A real VM's time daemon through hostclock, QEMU's own user networking and passt: the jitter of each.

The guest (gateway/vm: a Debian kernel and a busybox + chronyd initramfs, QEMU/TCG)
boots with `hostclock.mode=measure hostclock.duration=SECONDS`: its chronyd runs as the guest's time daemon
(it disciplines the GUEST clock, inside the VM), polls its server 4 times a second
and logs each measurement; the bench reads the log from the serial console. Paths,
one VM each, in turn (each the guest's only NIC):

- hostclock: `hostclock run --qemu-stream` (QEMU `-netdev stream`), the embedded
  responder, and again with `--upstream` to the `chronyd -x` the others reach;
- QEMU user networking (`-netdev user`, libslirp): the guest asks 10.0.2.2, which
  libslirp maps to the host's loopback, where that `chronyd -x` listens;
- passt: QEMU `-netdev stream` to passt's socket; the guest asks its gateway
  192.168.65.1, which passt maps to the host's loopback, that chronyd again.

Per path: the jitter (p99 of |offset - median offset|), the median |offset| and
the median delay of the guest's chronyd, after its first 10 samples (the first
step of a guest clock that starts from a 1 s RTC). Reported, not a target; not
in the quick run (four VM boots under TCG).

Safety: the host runs only `chronyd -x`; the guest's address, route and server are
set on its kernel command line (no DHCP, no DNS, IPv6 off in QEMU's user network),
so its only traffic is its chronyd's queries to the address that reaches the host's
loopback. Every VM is bounded in time (killed after its budget).
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import tempfile
import time

from .common import Child, Figure, hostclock_argv, percentile, realpeers

NAME = "vm_jitter"
#: not in `python -m bench --quick`
QUICK = False
MEASURE_SECONDS = 30
_SETTLE_SAMPLES = 10
_PATHS = ("hostclock", "hostclock_upstream", "qemu_user", "passt")
_LABELS = {"hostclock": "VM chronyd via hostclock --qemu-stream, embedded responder",
           "hostclock_upstream": "VM chronyd via hostclock --qemu-stream --upstream (chronyd -x)",
           "qemu_user": "VM chronyd via QEMU -netdev user (libslirp, 10.0.2.2 -> chronyd -x)",
           "passt": "VM chronyd via passt (-netdev stream, gateway -> chronyd -x)"}


def _vm_tools():
    from gateway.vm import image, qemu
    return image, qemu


def _measurements(console: str) -> list[tuple[float, float]]:
    """(offset, delay) of each HOSTCLOCK-MEASURE line (chrony's measurements log: Offset, Peer del.)."""
    rows = []
    for line in console.splitlines():
        if "HOSTCLOCK-MEASURE " not in line:
            continue
        fields = line.split("HOSTCLOCK-MEASURE ", 1)[1].split()
        try:
            rows.append((float(fields[11]), float(fields[12])))
        except (IndexError, ValueError):
            continue
    return rows


def _boot(qemu, image, netdev: str, append: str) -> str:
    argv = qemu.qemu_command(image, qemu.stream_netdev("/nonexistent"), append=append)
    argv[argv.index("-netdev") + 1] = netdev  # qemu_command allows only stream/dgram: QEMU user net here
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        out, _ = proc.communicate(timeout=MEASURE_SECONDS + 90)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate(timeout=10)
    return (out or b"").decode("utf-8", errors="replace").replace("\r", "")


def _stats(rows: list[tuple[float, float]], console: str) -> dict:
    rows = rows[_SETTLE_SAMPLES:]
    if len(rows) < 10:
        raise RuntimeError(f"the guest logged {len(rows)} measurements after settling; console tail:\n"
                           + "\n".join(console.splitlines()[-30:]))
    offsets = [r[0] for r in rows]
    median = statistics.median(offsets)
    return {"samples": len(rows), "jitter_p99": percentile([abs(o - median) for o in offsets], 99),
            "median_abs_offset": statistics.median(abs(o) for o in offsets), "median_offset": median,
            "median_delay": statistics.median(r[1] for r in rows)}


def run(quick: bool = False) -> list[Figure]:
    guest_image, qemu = _vm_tools()
    if qemu.qemu_binary() is None:
        raise RuntimeError("vm_jitter needs qemu-system-x86_64 (apt-get install qemu-system-x86)")
    if shutil.which("passt") is None:
        raise RuntimeError("vm_jitter needs passt (apt-get install passt)")
    image = guest_image.build()
    rp = realpeers()
    stats: dict[str, dict] = {}
    with rp.ChronyServer(stratum=1) as chrony, tempfile.TemporaryDirectory(prefix="hc-bench-vm-") as tmp:
        hc_append = f"{qemu.static_append()} hostclock.mode=measure hostclock.duration={MEASURE_SECONDS}"
        for key in _PATHS:
            sock = f"{tmp}/{key}.sock"
            if key.startswith("hostclock"):
                extra = ["--upstream", f"127.0.0.1:{chrony.port}"] if key == "hostclock_upstream" else []
                with Child(hostclock_argv("run", "--qemu-stream", sock, "--no-dhcp", *extra),
                           ready_marker="hostclock:"):
                    console = _boot(qemu, image, qemu.stream_netdev(sock), hc_append)
            elif key == "qemu_user":
                append = (f"{qemu.static_append('10.0.2.15/24', '10.0.2.2', '10.0.2.2')} "
                          f"hostclock.ntpport={chrony.port} hostclock.mode=measure hostclock.duration={MEASURE_SECONDS}")
                console = _boot(qemu, image, "user,id=n0,net=10.0.2.0/24,restrict=off,ipv6=off", append)
            else:
                passt = subprocess.Popen(
                    ["passt", "--runas", "0", "-f", "-q", "-4", "--socket", sock, "-a", "192.168.65.3", "-n", "24",
                     "-g", "192.168.65.1", "-t", "none", "-u", "none",
                     "--no-dhcp", "--no-ndp", "--no-dhcpv6", "--no-ra"],
                    stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                try:
                    deadline = time.monotonic() + 10
                    while not os.path.exists(sock):
                        if passt.poll() is not None or time.monotonic() > deadline:
                            raise RuntimeError(f"passt did not create {sock} (exit status {passt.poll()})")
                        time.sleep(0.05)
                    console = _boot(qemu, image, qemu.stream_netdev(sock),
                                    f"{qemu.static_append()} hostclock.ntpport={chrony.port} "
                                    f"hostclock.mode=measure hostclock.duration={MEASURE_SECONDS}")
                finally:
                    passt.terminate()
                    try:
                        passt.wait(timeout=5)
                    except subprocess.TimeoutExpired:
                        passt.kill()
                        passt.wait(timeout=5)
            stats[key] = _stats(_measurements(console), console)
    us = 1e6
    figures = []
    for key in _PATHS:
        s = stats[key]
        figures.append(Figure(NAME, f"{_LABELS[key]}: jitter (p99 |offset - median|)", s["jitter_p99"] * us, "µs",
                              extra=dict(s, label=_LABELS[key])))
    figures[0].extra["paths"] = stats
    return figures
