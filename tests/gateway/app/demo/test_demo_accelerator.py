"""The demo takes KVM only where the processor virtualises: a bare /dev/kvm is not enough."""

import builtins
import io

import pytest

from gateway.app.demo import vm_guest


@pytest.fixture
def cpu_flags(monkeypatch):
    real_open, real_os_open = builtins.open, vm_guest.os.open
    state = {"flags": ""}

    def fake_open(path, *args, **kwargs):
        if path == "/proc/cpuinfo":
            return io.StringIO(f"processor\t: 0\nflags\t\t: fpu sse2 {state['flags']}\n")
        return real_open(path, *args, **kwargs)

    def fake_os_open(path, *args, **kwargs):
        if path == "/dev/kvm":
            return real_os_open("/dev/null", *args, **kwargs)  # a /dev/kvm that opens
        return real_os_open(path, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", fake_open)
    monkeypatch.setattr(vm_guest.os, "open", fake_os_open)
    return state


@pytest.mark.parametrize("flags, usable", [("", False), ("vmx", True), ("svm", True), ("avx512f", False)])
def test_kvm_is_taken_only_with_vmx_or_svm(cpu_flags, flags, usable):
    cpu_flags["flags"] = flags
    assert vm_guest._kvm_usable() is usable
