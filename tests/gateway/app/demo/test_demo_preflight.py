"""What the machine must have: each missing piece one line naming the fix."""

import pytest

from gateway.app.demo import preflight
from gateway.app.demo.preflight import DemoUnavailable, check_netns_demo, check_vm_demo


def _pretend(monkeypatch, *, root=True, tools=("ip", "ntpdig", "chronyd", "qemu-system-x86_64")):
    monkeypatch.setattr(preflight.os, "geteuid", lambda: 0 if root else 1000)
    monkeypatch.setattr(preflight, "find_tool", lambda name: f"/usr/bin/{name}" if name in tools else None)


def test_not_root(monkeypatch):
    _pretend(monkeypatch, root=False)
    with pytest.raises(DemoUnavailable, match="needs root .* run it with sudo"):
        check_netns_demo()
    with pytest.raises(DemoUnavailable, match="needs root"):
        check_vm_demo()


def test_no_ip(monkeypatch):
    _pretend(monkeypatch, tools=("ntpdig",))
    with pytest.raises(DemoUnavailable, match="ip is missing: apt-get install iproute2"):
        check_netns_demo()


def test_no_client(monkeypatch):
    _pretend(monkeypatch, tools=("ip",))
    with pytest.raises(DemoUnavailable, match="apt-get install ntpsec-ntpdig chrony"):
        check_netns_demo()


def test_one_client_is_enough(monkeypatch):
    _pretend(monkeypatch, tools=("ip", "chronyd"))
    assert check_netns_demo() == {"chronyd": "/usr/bin/chronyd"}


def test_no_qemu(monkeypatch):
    _pretend(monkeypatch, tools=("ip",))
    with pytest.raises(DemoUnavailable, match=r"apt-get install qemu-system-x86, or try --guest netns"):
        check_vm_demo()
