"""pytest helpers shared by the VM tests (tests/test_vm_guest_image.py,
tests/test_real_vm.py): skip only when QEMU or the guest packages truly
cannot be had. The tests are marked qemu, so under CI=true such a skip - an apt or download
failure while building the guest image included - is a failure (tests/realpeers/required.py)."""

from __future__ import annotations

import functools
import shutil
import tempfile
from pathlib import Path

import pytest

from . import guest_image, qemu


def require_qemu() -> str:
    binary = qemu.qemu_binary()
    if binary is None:
        pytest.skip(f"{qemu.QEMU} not installed (apt-get install --no-install-recommends "
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
            pytest.skip(f"{tool} not found: cannot get the guest kernel")
    image = _build()
    if isinstance(image, str):
        pytest.skip(f"guest kernel/packages cannot be had from apt: {image}")
    return image


def short_tmpdir() -> Path:
    """A short directory for Unix socket paths (sun_path is 108 bytes)."""
    return Path(tempfile.mkdtemp(prefix="hcvm-", dir="/tmp"))
