"""pytest helpers shared by the VM tests (tests/test_vm_guest_image.py,
tests/test_real_vm.py, tests/test_drift_bench.py): skip only when QEMU or the
guest packages truly cannot be had. The tests are marked qemu, so under CI=true such a skip - an
apt or download failure while building the guest image included - is a failure
(tests/realpeers/required.py)."""

from __future__ import annotations

import functools
import os
import shutil
import tempfile
from pathlib import Path

import pytest

from gateway.vm import image as guest_image
from gateway.vm import qemu


def cannot_run(reason: str):
    """Skip, or under CI fail: there the real peers must be installed."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI=true and a real-peer test cannot run: {reason}")
    pytest.skip(reason)


def require_qemu() -> str:
    binary = qemu.qemu_binary()
    if binary is None:
        cannot_run(f"{qemu.QEMU} not installed (apt-get install --no-install-recommends "
                    "qemu-system-x86)")
    return binary


@functools.cache
def _build() -> guest_image.GuestImage | str:
    try:
        return guest_image.build(log=lambda m: print(f"[guest-image] {m}"))
    except guest_image.PackagesUnavailable as e:
        return str(e)


def require_image() -> guest_image.GuestImage:
    """The guest image (built once per test session).  Skips if apt cannot give
    the kernel/busybox/chrony packages; any other build problem fails."""
    for tool in ("apt-get", "apt-cache", "dpkg-deb", "ldd"):
        if shutil.which(tool) is None:
            cannot_run(f"{tool} not found: cannot get the guest kernel")
    image = _build()
    if isinstance(image, str):
        cannot_run(f"guest kernel/packages cannot be had from apt: {image}")
    return image


def short_tmpdir() -> Path:
    """A short directory for Unix socket paths (sun_path is 108 bytes)."""
    return Path(tempfile.mkdtemp(prefix="hcvm-", dir="/tmp"))
