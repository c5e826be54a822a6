"""The VM guest: a real Linux VM under QEMU on the gateway's QEMU stream socket, its clock
drifting until its chronyd starts with the server it learned from DHCP option 42."""

from __future__ import annotations

from gateway.app.demo.preflight import check_kernel_package, check_vm_demo

__all__ = ["check_vm_machine"]


def check_vm_machine(*, rebuild: bool) -> dict[str, str]:
    """What the VM demo needs (root, QEMU, the kernel package unless the image is cached)."""
    qemu = check_vm_demo()
    check_kernel_package()
    return {"qemu": qemu}
