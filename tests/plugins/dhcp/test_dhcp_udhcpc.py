"""A real DHCP client against the gateway: busybox udhcpc in a network namespace on hostclock's TAP.

udhcpc only runs its event script, and the script here only prints the lease
(it configures nothing). The tests themselves configure the namespace's own
interface where they need an address; nothing outside the namespace is touched,
and no clock is ever set.
"""

import shutil
import subprocess

import pytest
from gateway_process import GatewayProcess
from realpeers import GuestNamespace, clients, requires_root, unique_name

GATEWAY = "192.168.65.1"
GUEST_MAC = "52:54:00:dc:0c:01"

PRINT_LEASE = """#!/bin/sh
# udhcpc event script: print the lease udhcpc exports, touch nothing
echo "lease event=$1 ip=$ip subnet=$subnet mask=$mask router=$router ntpsrv=$ntpsrv serverid=$serverid lease=$lease dns=$dns"
exit 0
"""


def _busybox_udhcpc_missing() -> str | None:
    busybox = shutil.which("busybox")
    if busybox is None:
        return "busybox is missing (apt-get install busybox-static)"
    applets = subprocess.run([busybox, "--list"], capture_output=True, text=True).stdout.split()
    return None if "udhcpc" in applets else "this busybox has no udhcpc applet"


_MISSING = _busybox_udhcpc_missing()
pytestmark = [pytest.mark.root, pytest.mark.clients,
              pytest.mark.skipif(_MISSING is not None, reason=_MISSING or "")]


@pytest.fixture
def lease_script(tmp_path):
    script = tmp_path / "print-lease.sh"
    script.write_text(PRINT_LEASE)
    script.chmod(0o755)
    return str(script)


def attach(ns: GuestNamespace, tap: str, mac: str) -> None:
    """Move the gateway's TAP into the namespace with a fixed MAC, IPv6 off, no address, up."""
    subprocess.run(["ip", "link", "set", "dev", tap, "netns", ns.name], check=True, timeout=10)
    ns.ip("link", "set", "dev", tap, "address", mac)
    ns.run(["sysctl", "-q", "-w", f"net.ipv6.conf.{tap}.disable_ipv6=1"], timeout=10, check=True)
    ns.ip("link", "set", "dev", tap, "up")


def udhcpc(ns: GuestNamespace, tap: str, script: str, *extra: str) -> dict[str, str]:
    """Run udhcpc once (-n: give up, -q: quit once bound); the bound lease as a dict."""
    cp = ns.run(["busybox", "udhcpc", "-i", tap, "-n", "-q", "-t", "3", "-T", "1", "-O", "ntpsrv",
                 "-s", script, *extra], timeout=30)
    bound = [line for line in cp.stdout.splitlines() if line.startswith("lease event=bound")]
    assert cp.returncode == 0 and bound, f"udhcpc exit {cp.returncode}\n{cp.stdout}\n{cp.stderr}"
    return dict(field.split("=", 1) for field in bound[-1].split()[1:])


@requires_root
def test_udhcpc_gets_an_address_and_the_gateway_as_router_and_ntp_server(lease_script):
    tap = unique_name("hcd")
    # --upstream: this test is about DHCP alone, whatever the state of the embedded responder
    with GatewayProcess("run", "--tap", tap, "--upstream", "127.0.0.1:9") as gateway, GuestNamespace() as ns:
        attach(ns, tap, GUEST_MAC)
        lease = udhcpc(ns, tap, lease_script)
        assert gateway.stop() == 0, gateway.stderr
    host = int(lease["ip"].rsplit(".", 1)[1])
    assert lease["ip"].startswith("192.168.65.") and 3 <= host <= 254, lease
    assert lease["subnet"] == "255.255.255.0" and lease["mask"] == "24"
    assert lease["router"] == GATEWAY and lease["ntpsrv"] == GATEWAY and lease["serverid"] == GATEWAY
    assert lease["lease"] == "7200"
    assert lease["dns"] == ""  # nothing on the gateway answers DNS, so none is offered


@requires_root
def test_the_same_mac_gets_the_same_address_after_a_gateway_restart(lease_script):
    addresses = []
    for attempt in range(2):
        tap = unique_name("hcd")
        with GatewayProcess("run", "--tap", tap, "--upstream", "127.0.0.1:9") as gateway, GuestNamespace() as ns:
            attach(ns, tap, GUEST_MAC)
            # the second time, as a rebooting guest would: ask for the address it had (option 50)
            addresses.append(udhcpc(ns, tap, lease_script, *(["-r", addresses[0]] if addresses else []))["ip"])
            assert gateway.stop() == 0, gateway.stderr
    assert addresses[0] == addresses[1]


@requires_root
def test_configured_dns_servers_reach_the_guest(lease_script):
    tap = unique_name("hcd")
    with GatewayProcess("run", "--tap", tap, "--upstream", "127.0.0.1:9", "--dns", "192.0.2.53") as gateway, \
            GuestNamespace() as ns:
        attach(ns, tap, GUEST_MAC)
        lease = udhcpc(ns, tap, lease_script)
        assert gateway.stop() == 0, gateway.stderr
    assert lease["dns"] == "192.0.2.53"


@requires_root
@pytest.mark.skipif(bool(clients.missing_tools("ntplib")), reason="ntplib is missing")
def test_an_unconfigured_guest_finds_its_time_source_by_dhcp_alone(lease_script):
    """DHCP, then the guest applies the lease to its own interface and asks the NTP server it was given."""
    tap = unique_name("hcd")
    with GatewayProcess("run", "--tap", tap) as gateway, GuestNamespace() as ns:
        attach(ns, tap, GUEST_MAC)
        lease = udhcpc(ns, tap, lease_script)
        ns.ip("addr", "add", f"{lease['ip']}/{lease['mask']}", "dev", tap)
        result = clients.ntplib_query(ns, lease["ntpsrv"], timeout=5)
        assert gateway.stop() == 0, gateway.stderr
    assert result.stratum == 10 and result.within_its_error_bound() and result.delay < 0.1, result.raw
