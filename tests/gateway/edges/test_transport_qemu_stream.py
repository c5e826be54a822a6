"""QEMU -netdev stream framing through a real Unix socket to an in-process gateway with its embedded responder."""

import logging
import struct
import time

import pytest
import trio
from guest_frames import GATEWAY_IP, GATEWAY_MAC, arp_request, ntp_request, ping, udp_to_gateway
from scapy.layers.inet import ICMP, IP, UDP
from scapy.layers.l2 import ARP, Ether

from gateway.app.config import Config
from gateway.app.runtime import Gateway
from gateway.edges.transports.qemu_stream import QemuStreamTransport
from qemu_framed_peer import QemuFramedPeer

NTP_UNIX_OFFSET = 2208988800


@pytest.fixture
async def gateway_socket(nursery, tmp_path):
    path = str(tmp_path / "qemu.sock")
    gateway = Gateway(Config(), QemuStreamTransport(path))
    ready = await nursery.start(gateway.run)
    assert "qemu-stream" in ready
    yield path, gateway
    nursery.cancel_scope.cancel()


async def test_arp_ping_and_ntp_through_the_stream(gateway_socket):
    path, gateway = gateway_socket
    with trio.fail_after(10):
        peer = await QemuFramedPeer.connect_unix(path)
        await peer.send(arp_request())
        assert Ether(await peer.receive())[ARP].op == 2
        await peer.send(ping(b"stream"))
        assert Ether(await peer.receive())[ICMP].load == b"stream"
        t1 = time.time()
        await peer.send(udp_to_gateway(ntp_request(transmit=b"\xAA" * 8), sport=40123))
        reply = Ether(await peer.receive())
        t4 = time.time()
    ntp = bytes(reply[UDP].payload)
    assert reply[UDP].sport == 123 and reply[UDP].dport == 40123
    assert ntp[0] & 7 == 4 and ntp[24:32] == b"\xAA" * 8  # mode 4; originate = our transmit, byte for byte
    receive = struct.unpack_from("!Q", ntp, 32)[0] / 2**32 - NTP_UNIX_OFFSET
    transmit = struct.unpack_from("!Q", ntp, 40)[0] / 2**32 - NTP_UNIX_OFFSET
    assert t1 - 0.001 <= receive <= transmit <= t4 + 0.001
    assert gateway.counters()["ntp_answered"] == 1


async def test_a_vm_that_disconnects_is_followed_by_the_next(gateway_socket):
    path, _ = gateway_socket
    with trio.fail_after(10):
        first = await QemuFramedPeer.connect_unix(path)
        await first.send(arp_request())
        await first.receive()
        await first.stream.aclose()
        second = await QemuFramedPeer.connect_unix(path)
        await second.send(ping())
        assert Ether(await second.receive())[ICMP].type == 0


async def test_two_guests_at_once_each_get_their_answers(gateway_socket):
    path, _ = gateway_socket
    with trio.fail_after(10):
        a = await QemuFramedPeer.connect_unix(path)
        b = await QemuFramedPeer.connect_unix(path)
        b_mac, b_ip = "52:54:00:00:00:0b", "192.168.65.11"
        await b.send(bytes(Ether(dst=GATEWAY_MAC, src=b_mac) / IP(src=b_ip, dst=GATEWAY_IP)
                           / UDP(sport=2000, dport=123) / ntp_request()))
        await a.send(ping(b"from-a"))  # guest a's frames must not steer b's answer to a
        assert Ether(await a.receive())[ICMP].load == b"from-a"
        reply = Ether(await b.receive())
        assert (reply.dst, reply[IP].dst, reply[UDP].dport) == (b_mac, b_ip, 2000)


async def test_oversized_frame_closes_only_that_connection(gateway_socket, caplog):
    caplog.set_level(logging.INFO)
    path, _ = gateway_socket
    with trio.fail_after(10):
        bad = await QemuFramedPeer.connect_unix(path)
        good = await QemuFramedPeer.connect_unix(path)
        await bad.stream.send_all(struct.pack("!I", 4096 + 65536 + 1))
        with pytest.raises((EOFError, trio.BrokenResourceError)):
            await bad.receive()
        await good.send(ping())
        assert Ether(await good.receive())[ICMP].type == 0
    assert any("protocol error" in r.getMessage() for r in caplog.records)


async def test_peer_leaving_mid_frame_is_logged(gateway_socket, caplog):
    caplog.set_level(logging.INFO)
    path, _ = gateway_socket
    with trio.fail_after(10):
        peer = await QemuFramedPeer.connect_unix(path)
        await peer.stream.send_all(struct.pack("!I", 100) + b"partial")
        await peer.stream.aclose()
        while not any("mid-frame" in r.getMessage() for r in caplog.records):
            await trio.sleep(0.01)
        again = await QemuFramedPeer.connect_unix(path)
        await again.send(arp_request())
        assert Ether(await again.receive())[ARP].op == 2


async def test_socket_file_removed_on_shutdown(tmp_path):
    path = tmp_path / "qemu.sock"
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            await nursery.start(Gateway(Config(), QemuStreamTransport(str(path))).run)
            assert path.exists()
            nursery.cancel_scope.cancel()
    assert not path.exists()
