"""`--vmnet`: hyperkit/vpnkit clients over a real Unix stream socket, driving a real Gateway.

The peer (tests/vmnet_peer.py) is derived from the anchors' published source, not from this
project's notes: hyperkit's client (moby/hyperkit src/lib/pci_virtio_net_vpnkit.c: the packed
msg_init/msg_command/msg_response structs, L88-L137; `vpnkit_connect`, L316-L398; `vmn_read` and
`vmn_write`, L599-L665: a 2-byte little-endian header and the frame in two writes; frames padded to
60 bytes, L728-L748) and vpnkit's codec (moby/vpnkit src/hostnet/vmnet.ml: Init L12-L44, Command
L46-L117, Vif `max_packet_size = mtu + 50` L119-L153, Response L155-L192 in a zero-filled 258-byte
buffer, Packet L195-L204). vmnet_peer.py's docstring gives the commits and the URLs.
"""

import logging
import socket
import struct

import pytest
import trio

from gateway.core.addresses import format_mac
from gateway.app.config import GatewayConfig
from gateway.edges.transports import make_transport
from gateway.edges.transports.vmnet import VmnetTransport

from vmnet_peer import OUR_INIT, UUID_A, UUID_B, VPNKIT_COMMIT, VmnetPeer, expected_mac
from transport_harness import (TIMEOUT, arp_request, assert_guest_served, guest_ip, log_messages,
                                    running_gateway, wait_for_log)


@pytest.fixture
def vmnet_path(tmp_path):
    return str(tmp_path / "vmnet.sock")


@pytest.fixture(autouse=True)
def _info_logs(caplog):
    caplog.set_level(logging.INFO, logger="hostclock")


async def test_handshake_byte_for_byte_then_arp_ping_and_ntp_padded_to_60(vmnet_path):
    with trio.fail_after(TIMEOUT):
        async with running_gateway(VmnetTransport(vmnet_path)):
            peer = await VmnetPeer.connect(vmnet_path)
            response = await peer.handshake(UUID_A)
            assert response == (b"\x01" + struct.pack("<HH", 1500, 1550) + expected_mac(UUID_A)).ljust(258, b"\0")
            await assert_guest_served(peer, peer.mac, guest_ip(1), min_frame=60)
            peer.close()


async def test_vpnkits_own_client_with_its_placeholder_commit_is_served_alike(vmnet_path):
    with trio.fail_after(TIMEOUT):
        async with running_gateway(VmnetTransport(vmnet_path)):
            peer = await VmnetPeer.connect(vmnet_path)
            response = await peer.handshake(UUID_A, commit=VPNKIT_COMMIT)
            assert response == (b"\x01" + struct.pack("<HH", 1500, 1550) + expected_mac(UUID_A)).ljust(258, b"\0")
            await assert_guest_served(peer, peer.mac, guest_ip(1), min_frame=60)
            peer.close()


async def test_frames_shorter_than_60_bytes_are_padded_as_hyperkit_does(vmnet_path):
    transport = VmnetTransport(vmnet_path)
    with trio.fail_after(TIMEOUT):
        async with running_gateway(transport):
            peer = await VmnetPeer.connect(vmnet_path)
            await peer.handshake(UUID_A)
            transport.attached[expected_mac(UUID_A)].send_frame(b"\x01" * 20)
            assert await peer.receive() == b"\x01" * 20 + bytes(40)
            peer.close()


def test_the_cli_registry_builds_it_with_the_configured_mtu(vmnet_path):
    transport = make_transport("--vmnet", vmnet_path, GatewayConfig(mtu=9000))
    assert isinstance(transport, VmnetTransport) and transport.mtu == 9000


async def test_the_mtu_comes_from_the_transport(vmnet_path):
    with trio.fail_after(TIMEOUT):
        async with running_gateway(VmnetTransport(vmnet_path, mtu=9000)):
            peer = await VmnetPeer.connect(vmnet_path)
            response = await peer.handshake(UUID_A)
            assert response[1:5] == struct.pack("<HH", 9000, 9050)
            peer.close()


async def test_reconnecting_with_the_same_uuid_gives_the_same_mac(vmnet_path, caplog):
    with trio.fail_after(TIMEOUT):
        async with running_gateway(VmnetTransport(vmnet_path)):
            first = await VmnetPeer.connect(vmnet_path)
            await first.handshake(UUID_A)
            first.close()
            await wait_for_log(caplog, "guest detached")
            again = await VmnetPeer.connect(vmnet_path)
            await again.handshake(UUID_A.upper())
            other = await VmnetPeer.connect(vmnet_path)
            await other.handshake(UUID_B)
            assert again.mac == first.mac == format_mac(expected_mac(UUID_A))
            assert other.mac == format_mac(expected_mac(UUID_B)) != first.mac
            await assert_guest_served(again, again.mac, guest_ip(1), min_frame=60)
            again.close()
            other.close()


async def test_two_guests_at_once_each_get_their_own_answers(vmnet_path):
    with trio.fail_after(TIMEOUT):
        async with running_gateway(VmnetTransport(vmnet_path)):
            a = await VmnetPeer.connect(vmnet_path)
            b = await VmnetPeer.connect(vmnet_path)
            await a.handshake(UUID_A)
            await b.handshake(UUID_B)
            async with trio.open_nursery() as nursery:
                nursery.start_soon(assert_guest_served, a, a.mac, guest_ip(1))
                nursery.start_soon(assert_guest_served, b, b.mac, guest_ip(2))
            # each got exactly its three answers (checked addressed to it above) and nothing more:
            # a reply meant for one guest and copied or misrouted to the other would be waiting here
            await trio.sleep(0.2)  # time for a stray frame to arrive; the gateway answers in microseconds
            assert a.pending() == b.pending() == b""
            a.close()
            b.close()


async def test_a_nil_uuid_gets_a_fresh_uuid_and_so_a_fresh_mac(vmnet_path, caplog):
    with trio.fail_after(TIMEOUT):
        async with running_gateway(VmnetTransport(vmnet_path)):
            a = await VmnetPeer.connect(vmnet_path)
            b = await VmnetPeer.connect(vmnet_path)
            assert (await a.handshake(bytes(36)))[0] == 0x01
            assert (await b.handshake(bytes(36)))[0] == 0x01
            assert a.mac != b.mac
            assert int(a.mac[:2], 16) & 0x03 == 0x02  # locally administered unicast
            assert "generated for it" in log_messages(caplog)
            await assert_guest_served(a, a.mac, guest_ip(1))
            a.close()
            b.close()


async def test_another_version_gets_our_init_then_eof_and_others_are_still_served(vmnet_path, caplog):
    with trio.fail_after(TIMEOUT):
        async with running_gateway(VmnetTransport(vmnet_path)):
            good = await VmnetPeer.connect(vmnet_path)
            await good.handshake(UUID_A)
            old = await VmnetPeer.connect(vmnet_path)
            await old.send_init(version=2)
            assert await old.read_to_eof() == OUR_INIT
            assert "version 2" in log_messages(caplog)
            await assert_guest_served(good, good.mac, guest_ip(1))
            good.close()
            old.close()


async def test_preferred_ipv4_reaches_on_guest_attached(vmnet_path):
    calls = []
    transport = VmnetTransport(vmnet_path, on_guest_attached=lambda mac, ip: calls.append((mac, ip)))
    with trio.fail_after(TIMEOUT):
        async with running_gateway(transport):
            a = await VmnetPeer.connect(vmnet_path)
            await a.handshake(UUID_A, preferred_ip="192.168.65.77")
            b = await VmnetPeer.connect(vmnet_path)
            await b.handshake(UUID_B)
            assert calls == [(expected_mac(UUID_A), bytes([192, 168, 65, 77])), (expected_mac(UUID_B), None)]
            await assert_guest_served(a, a.mac, "192.168.65.77")
            a.close()
            b.close()


async def test_on_guest_attached_can_refuse_with_a_reason(vmnet_path, caplog):
    transport = VmnetTransport(vmnet_path, on_guest_attached=lambda mac, ip: "preferred IP 192.168.65.1 is in use")
    with trio.fail_after(TIMEOUT):
        async with running_gateway(transport):
            peer = await VmnetPeer.connect(vmnet_path)
            response = await peer.handshake(UUID_A, preferred_ip="192.168.65.1")
            reason = b"preferred IP 192.168.65.1 is in use"
            assert response == (b"\x02" + bytes([len(reason)]) + reason).ljust(258, b"\0")
            assert await peer.read_to_eof() == b""
            assert "refused" in log_messages(caplog)
            peer.close()


async def test_an_unsupported_command_gets_a_disconnect_response(vmnet_path):
    with trio.fail_after(TIMEOUT):
        async with running_gateway(VmnetTransport(vmnet_path)):
            peer = await VmnetPeer.connect(vmnet_path)
            await peer.send_init()
            assert await peer.recv_exactly(49) == OUR_INIT
            await peer.sock.send(b"\x06" + bytes(40))  # vpnkit's Bind_ipv4
            response = await peer.read_to_eof()
            assert len(response) == 258 and response[0] == 0x02
            assert b"unsupported command 0x06" in response
            peer.close()


# -- bad input: that connection is closed with a log line, other guests go on -----------------------

async def _assert_closed_and_other_guest_served(vmnet_path, caplog, misbehave, expected_log):
    with trio.fail_after(TIMEOUT):
        async with running_gateway(VmnetTransport(vmnet_path, handshake_timeout=0.5)):
            good = await VmnetPeer.connect(vmnet_path)
            await good.handshake(UUID_A)
            bad = await VmnetPeer.connect(vmnet_path)
            await misbehave(bad)
            await wait_for_log(caplog, expected_log)
            await assert_guest_served(good, good.mac, guest_ip(1))
            good.close()
            bad.close()


async def test_a_frame_over_the_announced_max_packet_size_closes_the_connection(vmnet_path, caplog):
    async def misbehave(peer):
        await peer.handshake(UUID_B)
        await peer.sock.send(struct.pack("<H", 1551) + bytes(1551))  # max packet size is 1550
        assert await peer.read_to_eof() == b""

    await _assert_closed_and_other_guest_served(vmnet_path, caplog, misbehave,
                                                "protocol error: frame length 1551 exceeds the limit of 1550 bytes")


async def test_a_frame_of_exactly_the_max_packet_size_is_accepted(vmnet_path):
    with trio.fail_after(TIMEOUT):
        async with running_gateway(VmnetTransport(vmnet_path)) as gateway:
            peer = await VmnetPeer.connect(vmnet_path)
            await peer.handshake(UUID_A)
            await peer.send(arp_request(peer.mac, guest_ip(1)).ljust(1550, b"\0"))
            assert len(await peer.receive()) == 60
            assert gateway.stack.frames_received == 1
            peer.close()


async def test_a_truncated_length_prefix_is_logged(vmnet_path, caplog):
    async def misbehave(peer):
        await peer.handshake(UUID_B)
        await peer.sock.send(b"\x2a")  # half of a u16 length, then gone
        peer.sock.shutdown(socket.SHUT_WR)

    await _assert_closed_and_other_guest_served(vmnet_path, caplog, misbehave,
                                                "peer disconnected mid-frame (1 bytes of a frame lost)")


async def test_a_disconnect_mid_frame_is_logged(vmnet_path, caplog):
    async def misbehave(peer):
        await peer.handshake(UUID_B)
        await peer.sock.send(struct.pack("<H", 100) + bytes(10))
        peer.sock.shutdown(socket.SHUT_WR)

    await _assert_closed_and_other_guest_served(vmnet_path, caplog, misbehave,
                                                "peer disconnected mid-frame (12 bytes of a frame lost)")


async def test_a_disconnect_during_the_handshake_is_logged(vmnet_path, caplog):
    async def misbehave(peer):
        await peer.sock.send(b"VMN3T\x16\0")  # 7 of the 49 bytes of Init
        peer.sock.shutdown(socket.SHUT_WR)

    await _assert_closed_and_other_guest_served(vmnet_path, caplog, misbehave,
                                                "peer disconnected during the handshake")


async def test_a_client_that_never_finishes_the_handshake_is_disconnected(vmnet_path, caplog):
    async def misbehave(peer):
        await peer.send_init()
        assert await peer.recv_exactly(49) == OUR_INIT
        assert await peer.read_to_eof() == b""  # no command: we hang up after handshake_timeout

    await _assert_closed_and_other_guest_served(vmnet_path, caplog, misbehave,
                                                "handshake not finished within 0.5 s (in state command)")


# -- guest hooks: what the runtime holds for a guest is released when it goes ---------------------

async def test_the_detach_hook_runs_once_the_guests_last_connection_has_closed(vmnet_path, caplog):
    detached = []
    transport = VmnetTransport(vmnet_path, on_guest_detached=detached.append)
    with trio.fail_after(TIMEOUT):
        async with running_gateway(transport):
            first = await VmnetPeer.connect(vmnet_path)
            await first.handshake(UUID_A)
            second = await VmnetPeer.connect(vmnet_path)
            await second.handshake(UUID_A)  # the same UUID twice: one guest, two links
            first.close()
            await wait_for_log(caplog, "guest detached")
            assert detached == []
            second.close()
            while not detached:
                await trio.sleep(0.01)
    assert detached == [expected_mac(UUID_A)]


async def test_a_hook_that_refuses_a_guest_releases_what_earlier_hooks_took(vmnet_path):
    events = []
    transport = VmnetTransport(vmnet_path)
    transport.add_guest_hooks(lambda mac, ip: events.append(("reserved", mac)),
                              lambda mac: events.append(("released", mac)))
    transport.add_guest_hooks(lambda mac, ip: "no room for this guest", lambda mac: events.append(("never", mac)))
    with trio.fail_after(TIMEOUT):
        async with running_gateway(transport):
            peer = await VmnetPeer.connect(vmnet_path)
            response = await peer.handshake(UUID_A)
            assert response[0] == 0x02 and b"no room for this guest" in response
            peer.close()
    assert events == [("reserved", expected_mac(UUID_A)), ("released", expected_mac(UUID_A))]
