"""The VM guest: a real Linux VM under QEMU on the gateway's QEMU stream socket, its clock
drifting until its chronyd starts with the server it learned from DHCP option 42.

    image (gateway.vm.image, cached)  ->  gateway in-process on PRIVATE_DIR/gateway.sock
    QEMU: -netdev stream to that socket,
          kernel command line = gateway.vm.scenario.Scenario(tick, chronyd-tuned, delay=--sync-after,
          start_offset_s=START_OFFSET_S)
    the guest: DHCP (option 42 = the gateway), its clock set START_OFFSET_S off (3 s behind),
          `adjtimex -t TICK` (its own clock: -700 ppm at 9993; clock-safe: inside the VM),
          no sync for --sync-after s, then chronyd with the server from option 42
    the offset: the gateway's guest-clock watcher (ICMP timestamps; no agent in the guest)
    --pause-at: QEMU's monitor stops the VM for --pause-for s (under TCG its clock stands still,
          as a VM's does while its host sleeps), then lets it go on

Everything that sets a clock runs inside the VM (gateway/vm/guest/init); the host
only reads.
"""

from __future__ import annotations

import argparse
import logging
import os
import subprocess
import time
from pathlib import Path
from typing import Any

import trio

from gateway.app.config import Config
from gateway.app.demo.errors import DemoFailed
from gateway.app.demo.image_build import ImageUnavailable, prepare_image
from gateway.app.demo.observed import ObservedGateway
from gateway.app.demo.preflight import check_kernel_package, check_vm_demo
from gateway.app.demo.readings import Reading
from gateway.app.demo.resources import DemoNames, Resources, end_with_this_process
from gateway.app.demo.state import DemoState
from gateway.core.addresses import parse_mac
from gateway.edges.transports import make_transport

__all__ = ["check_vm_machine", "VmGuest", "START_OFFSET_S"]

log = logging.getLogger("hostclock.demo")

#: the guest's /init, once it has set its clock from the gateway, sets it this far off before the
#: drift begins (the scenario's start offset, gateway/vm/guest/init): a VM that comes up behind
START_OFFSET_S = -3
#: under KVM, the guest's /init must print its first line within this long, or the demo falls back to TCG
#: (a /dev/kvm can be one that boots nothing: a nested hypervisor's)
KVM_FIRST_LINE_S = 10.0
#: the guest must have started its scenario this long after QEMU started (TCG on a busy machine)
BOOT_TIMEOUT_S = 120.0
PHASE_BOOT = "booting"
PHASE_FREE = "no time sync: the guest clock drifts"
PHASE_SYNC = "chronyd, server from DHCP option 42"
PHASE_PAUSED = "VM stopped (QEMU monitor)"
PHASE_RECOVERY = "chronyd after the pause"


def check_vm_machine(*, rebuild: bool) -> dict[str, str]:
    """What the VM demo needs: root, QEMU, and (unless the image is cached) the kernel package."""
    qemu = check_vm_demo()
    from gateway.vm.image import find_image

    if rebuild or find_image() is None:
        check_kernel_package()
    return {"qemu": qemu}


def _guest_mac(names: DemoNames) -> str:
    """52:54:00 (QEMU's prefix) and three bytes of the demo's token: two demos, two MACs."""
    token = bytes.fromhex(names.token.rjust(6, "0")[-6:])
    return "52:54:00:" + ":".join(f"{b:02x}" for b in token)


class VmGuest:
    def __init__(self, args: argparse.Namespace, config: Config, names: DemoNames, resources: Resources,
                 workdir: str, tools: dict[str, str], state: DemoState, on_reading: Any, view: Any) -> None:
        self.args = args
        self.config = config
        self.names = names
        self.resources = resources
        self.workdir = workdir
        self.state = state
        self.on_reading = on_reading
        self.view = view
        self.mac = _guest_mac(names)
        self.mac_bytes = parse_mac(self.mac)
        self.socket_path = os.path.join(workdir, "gateway.sock")
        self.guest: Any = None
        self.accel = ""

    async def run(self, *, task_status: trio.TaskStatus[Any] = trio.TASK_STATUS_IGNORED) -> None:
        from gateway.vm.image import default_cache_dir

        self.state.guest = "a VM under QEMU (preparing its image)"
        self.state.status = "preparing the guest image"
        self.state.event(f"guest image cache: {default_cache_dir()} (--rebuild rebuilds it)")
        try:
            image = await prepare_image(rebuild=self.args.rebuild, on_progress=self._progress)
        except ImageUnavailable as e:
            if e.packages_unavailable:
                raise DemoFailed(f"no guest kernel package reachable ({e}): run apt-get update, "
                                 "or try --guest netns") from None
            raise DemoFailed(f"cannot build the guest image: {e}") from None
        self.state.build_done = True
        gateway = ObservedGateway(self.config, make_transport("--qemu-stream", self.socket_path, self.config.gateway),
                                  on_guest_clock=self._reading)
        async with trio.open_nursery() as nursery:
            self.state.event((await nursery.start(gateway.run)).removeprefix("hostclock: "))
            await self._boot(image)
            task_status.started(gateway)
            if self.args.pause_at is not None:
                nursery.start_soon(self._pause)
            await self._follow_console()

    # -- the pieces ------------------------------------------------------------------------

    def _progress(self, step: int, total: int, message: str) -> None:
        self.state.build_steps.append((step, total, message))
        self.state.event(f"guest image [{step}/{total}] {message}")

    def _scenario_words(self) -> str:
        from gateway.vm.scenario import Scenario

        # no in-guest probe, no observer chronyd: the demo's offset is the gateway's reading alone
        return Scenario(tick=self.args.tick, policy="chronyd-tuned", delay_s=round(self.args.sync_after),
                        probe_s=0, observe_poll=None, start_offset_s=START_OFFSET_S).cmdline()

    async def _boot(self, image: Any) -> None:
        accel = self.args.accel
        if accel == "auto":
            accel = "kvm" if _kvm_usable() else "tcg"
        while True:
            self.accel = accel
            self.state.guest = f"a VM under QEMU ({accel.upper()}), tick {self.args.tick} " \
                               f"(≈ {(self.args.tick - 10000) * 100:+d} ppm)"
            self.state.status = f"booting the VM under {accel.upper()}"
            self.guest = self._start_qemu(image, accel)  # in the main thread: see end_with_this_process
            await trio.to_thread.run_sync(self.guest.monitor.connect, time.monotonic() + 20)
            _restart_timeline(self.state)
            self.state.phases.begin(PHASE_BOOT, 0.0)
            if accel != "kvm" or self.args.accel == "kvm":
                return
            first = await trio.to_thread.run_sync(self._first_line, KVM_FIRST_LINE_S, abandon_on_cancel=True)
            if first:
                return
            self.state.event(f"KVM showed nothing in {KVM_FIRST_LINE_S:g} s (a /dev/kvm that cannot boot this "
                             "kernel): booting under TCG instead")
            await trio.to_thread.run_sync(self.guest.close)
            self.state.phases.all.clear()
            accel = "tcg"

    def _first_line(self, timeout: float) -> bool:
        """Whether the guest's /init says something within `timeout` (QEMU's own warnings do not count)."""
        return any("HOSTCLOCK-" in line.text for line in self.guest.lines(timeout))

    def _start_qemu(self, image: Any, accel: str) -> Any:
        """QEMU through gateway.vm.qemu; its monitor is connected by the caller.

        The demo builds the command with `qemu_command` and wraps the process in `Guest` itself, so
        that the process ends with the demo's (`end_with_this_process`) even if the demo is killed.
        """
        from gateway.vm import qemu

        qemu_dir = Path(self.workdir) / f"qemu-{accel}"
        qemu_dir.mkdir()
        qmp = qemu_dir / "qmp.sock"
        argv = qemu.qemu_command(image, qemu.stream_netdev(self.socket_path), mac=self.mac,
                                 append=self._scenario_words(), accel=accel, qmp_path=qmp)
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                start_new_session=True, preexec_fn=end_with_this_process)
        guest = qemu.Guest(proc, qemu_dir, qemu.Monitor(qmp))
        self.resources.add(f"QEMU (pid {proc.pid})", guest.close)
        return guest

    async def _follow_console(self) -> None:
        """The guest's console: its milestones become phases and events."""
        booted_by = trio.current_time() + BOOT_TIMEOUT_S
        started = False
        while True:
            line = await trio.to_thread.run_sync(self._next_line, abandon_on_cancel=True)
            if line is None:
                if not self.guest.running:
                            raise DemoFailed("the VM stopped by itself; its console ends: "
                                     + " | ".join(l.text for l in self.guest.console()[-3:]))
                if not started and trio.current_time() > booted_by:
                            raise DemoFailed(f"the VM did not start its scenario within {BOOT_TIMEOUT_S:g} s")
                continue
            text = line.text
            if "HOSTCLOCK-RESULT lease" in text:
                self.state.event("guest: DHCP " + text.split("lease", 1)[1].strip())
            elif "HOSTCLOCK-OBS first wrong_by=" in text:
                wrong_by = text.split("wrong_by=", 1)[1].strip()
                self.state.event(f"guest: its /init set its clock once from the gateway ({wrong_by} s), "
                                 "so that the drift starts from the host's time")
            elif "HOSTCLOCK-RESULT drift" in text:
                started = True
                self.state.status = ""
                self.state.phases.begin(PHASE_FREE, self.state.elapsed_s())
                self.state.event(f"guest: adjtimex -t {self.args.tick} set its tick; no time sync for "  # clock-safe: a message
                                 f"{self.args.sync_after:g} s")
            elif "HOSTCLOCK-OBS policy name=" in text and "none" not in text:
                self.state.phases.begin(PHASE_SYNC, self.state.elapsed_s())
                self.state.event("guest: chronyd started, server from DHCP option 42")
            elif "HOSTCLOCK-RESULT error" in text:
                self.state.event("guest: " + text.split("HOSTCLOCK-RESULT", 1)[1].strip())
            elif "guest-chronyd:" in text and ("stepped" in text or "wrong by" in text or "Selected" in text):
                self.state.event("guest " + text.split("guest-", 1)[1].strip())

    def _next_line(self) -> Any:
        return next(iter(self.guest.lines(0.5)), None)

    async def _pause(self) -> None:
        await trio.sleep_until(trio.current_time() + self.args.pause_at - self.state.elapsed_s())
        await trio.to_thread.run_sync(self.guest.stop)
        self.state.phases.begin(PHASE_PAUSED, self.state.elapsed_s())
        self.state.event(f"VM stopped through the QEMU monitor for {self.args.pause_for:g} s (as a host sleep)")
        await trio.sleep(self.args.pause_for)
        await trio.to_thread.run_sync(self.guest.cont)
        self.state.phases.begin(PHASE_RECOVERY, self.state.elapsed_s())
        self.state.event("VM running again")

    def _reading(self, offset: Any) -> None:
        """A reading of the gateway's watcher (a GuestClockOffset), into the demo's state and CSV."""
        self.on_reading(Reading.of_watcher(offset))


def _restart_timeline(state: DemoState) -> None:
    state.started_unix, state.started_monotonic = time.time(), time.monotonic()


def _kvm_usable() -> bool:
    """/dev/kvm opens and the processor says it virtualises (Intel VT-x: vmx, AMD-V: svm).

    A /dev/kvm without either flag (a sandbox's, or a VM's without nested virtualisation)
    can create a VM that never runs; the flags spare the demo the wait before falling back.
    """
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            flags = {word for line in f if line.startswith("flags") for word in line.split()}
    except OSError:
        flags = set()
    if not flags & {"vmx", "svm"}:
        return False
    try:
        os.close(os.open("/dev/kvm", os.O_RDWR | os.O_CLOEXEC))
        return True
    except OSError:
        return False
