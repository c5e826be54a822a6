"""What the machine must have for the demo, checked before anything is made.

Each missing piece is one line naming the fix (`DemoUnavailable`), so that a
demo that cannot run leaves nothing behind.
"""

from __future__ import annotations

import os
import shutil

__all__ = ["DemoUnavailable", "check_netns_demo", "check_vm_demo", "check_kernel_package", "find_tool", "QEMU"]

QEMU = "qemu-system-x86_64"
#: the query-mode clients the netns guest runs, and the Debian package of each
NETNS_CLIENTS = {"ntpdig": "ntpsec-ntpdig", "chronyd": "chrony"}


class DemoUnavailable(Exception):
    """The demo cannot run on this machine; the message is one line naming the fix."""


def find_tool(name: str) -> str | None:
    """`name` on PATH, or in the sbin directories (not on a plain user's PATH)."""
    return shutil.which(name, path=os.environ.get("PATH", "") + ":/usr/local/sbin:/usr/sbin:/sbin")


def _check_root(needs: str) -> None:
    if os.geteuid() != 0:
        raise DemoUnavailable(f"hostclock demo needs root ({needs}): run it with sudo")


def check_netns_demo() -> dict[str, str]:
    """The tools of the netns demo (name -> path); raises DemoUnavailable naming the fix."""
    _check_root("a network namespace and a TAP device")
    if find_tool("ip") is None:
        raise DemoUnavailable("ip is missing: apt-get install iproute2")
    if not os.path.exists("/dev/net/tun"):
        raise DemoUnavailable("/dev/net/tun is missing: modprobe tun")
    tools = {name: path for name in NETNS_CLIENTS if (path := find_tool(name)) is not None}
    if not tools:
        raise DemoUnavailable("no NTP client to run in the guest namespace: apt-get install ntpsec-ntpdig chrony")
    return tools


def check_vm_demo() -> str:
    """The QEMU binary of the VM demo; raises DemoUnavailable naming the fix."""
    _check_root("the guest image's packages and the VM's socket")
    qemu = find_tool(QEMU)
    if qemu is None:
        raise DemoUnavailable(f"{QEMU} not found: apt-get install qemu-system-x86, or try --guest netns")
    return qemu


KERNEL_META_PACKAGE = "linux-image-amd64"


def check_kernel_package() -> None:
    """The guest's kernel package can be had from apt (needed only to build the guest image)."""
    import subprocess

    if find_tool("apt-cache") is None or find_tool("apt-get") is None:
        raise DemoUnavailable("no apt on this machine to get the guest's Debian kernel package: try --guest netns")
    try:
        done = subprocess.run(["apt-cache", "depends", KERNEL_META_PACKAGE], capture_output=True, text=True,
                              timeout=60)
    except subprocess.TimeoutExpired:
        raise DemoUnavailable("apt-cache did not answer within 60 s: try again, or try --guest netns") from None
    if done.returncode != 0 or "Depends: linux-image-" not in done.stdout:
        raise DemoUnavailable(f"no guest kernel package reachable ({KERNEL_META_PACKAGE} is unknown to apt): "
                              "run apt-get update, or try --guest netns")
