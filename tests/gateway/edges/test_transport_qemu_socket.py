"""`--qemu-socket 127.0.0.1:PORT`: QEMU's `-netdev socket` over loopback TCP, u32 big-endian length + frame.

The peer here is written from QEMU's framing (net/socket.c: `uint32_t len = htonl(size)` before each
frame); tests/test_real_vm.py boots a real QEMU guest on it.
"""

import logging
import socket
import struct

import pytest
import trio

from gateway.core.config import ConfigError
from gateway.edges.transports import make_transport
from gateway.edges.transports.qemu_socket import QemuSocketTransport, parse_loopback_address

from gateway_process import GatewayProcess, run_cli
from transport_harness import TIMEOUT, assert_guest_served, guest_ip, guest_mac, running_gateway, wait_for_log
from qemu_framed_peer import QemuFramedPeer


@pytest.fixture(autouse=True)
def _info_logs(caplog):
    caplog.set_level(logging.INFO, logger="hostclock")


async def test_arp_ping_and_ntp_over_loopback_tcp():
    transport = QemuSocketTransport("127.0.0.1:0")
    with trio.fail_after(TIMEOUT):
        async with running_gateway(transport):
            assert transport.port != 0 and transport.description == f"qemu-socket 127.0.0.1:{transport.port}"
            peer = await QemuFramedPeer.connect_tcp(transport.port)
            await assert_guest_served(peer, guest_mac(1), guest_ip(1))
            await peer.stream.aclose()


async def test_two_guests_at_once_and_the_next_after_one_leaves(caplog):
    transport = QemuSocketTransport("127.0.0.1:0")
    with trio.fail_after(TIMEOUT):
        async with running_gateway(transport):
            a = await QemuFramedPeer.connect_tcp(transport.port)
            b = await QemuFramedPeer.connect_tcp(transport.port)
            async with trio.open_nursery() as nursery:
                nursery.start_soon(assert_guest_served, a, guest_mac(1), guest_ip(1))
                nursery.start_soon(assert_guest_served, b, guest_mac(2), guest_ip(2))
            await a.stream.aclose()
            await wait_for_log(caplog, "guest detached")
            c = await QemuFramedPeer.connect_tcp(transport.port)
            await assert_guest_served(c, guest_mac(3), guest_ip(3))
            await b.stream.aclose()
            await c.stream.aclose()


async def test_an_oversized_frame_closes_only_that_connection(caplog):
    transport = QemuSocketTransport("127.0.0.1:0")
    with trio.fail_after(TIMEOUT):
        async with running_gateway(transport):
            bad = await QemuFramedPeer.connect_tcp(transport.port)
            good = await QemuFramedPeer.connect_tcp(transport.port)
            await bad.stream.send_all(struct.pack("!I", 4096 + 65536 + 1))
            with pytest.raises((EOFError, trio.BrokenResourceError)):
                await bad.receive()
            await wait_for_log(caplog, "protocol error")
            await assert_guest_served(good, guest_mac(1), guest_ip(1))
            await good.stream.aclose()


@pytest.mark.parametrize("address", ["0.0.0.0:5555", "192.0.2.7:5555", "198.51.100.1:0"])
def test_a_non_loopback_address_is_refused_naming_the_fix(address):
    with pytest.raises(ConfigError) as refused:
        parse_loopback_address(address)
    message = str(refused.value)
    assert "not a loopback address" in message and "use 127.0.0.1:" in message and "\n" not in message


@pytest.mark.parametrize("address", ["127.0.0.1:5555", "127.1.2.3:0"])
def test_any_loopback_address_is_accepted(address):
    host, port = parse_loopback_address(address)
    assert f"{host}:{port}" == address


def test_the_cli_refuses_a_non_loopback_address_with_one_line_and_exit_2():
    done = run_cli("run", "--qemu-socket", "192.0.2.7:5555")
    assert done.returncode == 2, done
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "not a loopback address" in lines[0] and "use 127.0.0.1:5555" in lines[0], lines


def test_the_cli_says_when_the_port_is_taken_with_one_line_and_exit_1():
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        done = run_cli("run", "--qemu-socket", f"127.0.0.1:{port}")
    assert done.returncode == 1, done
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and f"127.0.0.1:{port} is in use" in lines[0], lines


def test_the_cli_serves_it_and_prints_the_port_it_listens_on():
    with GatewayProcess("run", "--qemu-socket", "127.0.0.1:0") as gateway:
        assert "on qemu-socket 127.0.0.1:" in gateway.ready_line
        port = int(gateway.ready_line.split("qemu-socket 127.0.0.1:")[1].split(";")[0])
        assert port > 0
        with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT):
            pass
    assert gateway.returncode == 0, gateway.stderr


def test_the_registry_builds_it():
    transport = make_transport("--qemu-socket", "127.0.0.1:0")
    assert isinstance(transport, QemuSocketTransport) and (transport.host, transport.port) == ("127.0.0.1", 0)
