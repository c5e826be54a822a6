"""The whole path with real clients: a guest namespace on a TAP queries the gateway.

The guest's clock is the host's clock (a namespace does not isolate time), so
the true offset is 0 and every client must see |offset| < 1 ms.
"""

import subprocess

import pytest
from gateway_process import GatewayProcess
from realpeers import ChronyServer, GuestNamespace, clients, requires_clients, requires_root, unique_name

GATEWAY = "192.168.65.1"

pytestmark = [pytest.mark.root, pytest.mark.clients]


@pytest.fixture
def guest_on_gateway():
    """A running `hostclock run --tap` with its TAP adopted by a fresh guest namespace."""
    tap = unique_name("hct")
    with GatewayProcess("run", "--tap", tap) as gateway, GuestNamespace() as ns:
        ns.adopt_tap(tap)
        assert clients.ping(ns, GATEWAY, count=1, timeout=5) == 1  # resolves ARP, as a booted guest has
        yield ns, gateway
        assert gateway.stop() == 0, gateway.stderr
    # closing the TAP's descriptor on exit removed the device
    assert subprocess.run(["ip", "link", "show", tap], capture_output=True).returncode != 0


@requires_root
@requires_clients("ping")
def test_ping_is_answered(guest_on_gateway):
    ns, gateway = guest_on_gateway
    assert f"gateway {GATEWAY}" in gateway.ready_line and "tap" in gateway.ready_line
    assert clients.ping(ns, GATEWAY, count=3, timeout=5) == 3


@requires_root
@requires_clients("ntpdig")
def test_ntpdig_accepts_the_answer(guest_on_gateway):
    ns, _ = guest_on_gateway
    result = clients.ntpdig(ns, GATEWAY, timeout=10)
    assert abs(result.offset) < 0.001, result.raw
    assert result.stratum == 10


@requires_root
@requires_clients("chronyd")
def test_chronyd_accepts_the_answer(guest_on_gateway):
    ns, _ = guest_on_gateway
    result = clients.chronyd_query(ns, GATEWAY, timeout=20)
    assert abs(result.offset) < 0.001, result.raw


@requires_root
def test_ntplib_answers_are_exact(guest_on_gateway):
    ns, gateway = guest_on_gateway
    offsets = sorted(abs(clients.ntplib_query(ns, GATEWAY, timeout=5).offset) for _ in range(5))
    assert offsets[len(offsets) // 2] < 0.001, offsets


@requires_root
@requires_clients("chronyd")
def test_forwarding_to_an_existing_host_server():
    """`--upstream` sends guest NTP to a real chronyd on loopback; its answers reach the guest."""
    tap = unique_name("hct")
    with ChronyServer(stratum=3) as server, \
            GatewayProcess("run", "--tap", tap, "--upstream", f"127.0.0.1:{server.port}") as gateway, \
            GuestNamespace() as ns:
        ns.adopt_tap(tap)
        assert f"SNTP server 127.0.0.1:{server.port}" in gateway.ready_line
        result = clients.chronyd_query(ns, GATEWAY, timeout=20)
        assert abs(result.offset) < 0.001 and result.stratum == 3
        assert gateway.stop() == 0
