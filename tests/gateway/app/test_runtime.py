"""The runtime's wiring: routing replies across links, drop reporting, exception isolation, descriptor
limits, pcap write failures, vmnet guests' DHCP reservations held while attached."""

import logging
import resource
import socket
from collections import Counter
from contextlib import asynccontextmanager

import pytest
import trio
from scapy.layers.dhcp import BOOTP, DHCP
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import ARP, Ether
from transport_harness import (GATEWAY_IP, GATEWAY_MAC, arp_request, guest_ip, guest_mac, log_messages,
                                    ntp_request, running_gateway, wait_for_log)
from vmnet_peer import UUID_A, UUID_B, VmnetPeer, expected_mac
from fd_limits import open_file_limit_with_room_for

from gateway.app.config import Config
from gateway.core.drops import Drop
from gateway.core.flows import Flow
from gateway.core.service import GuestAddress
from gateway.app.runtime import FD_RESERVE, INTERNAL_ERROR, Gateway, make_room_for_flows
from gateway.core.service import Forward
from gateway.edges.transports.vmnet import VmnetTransport

TIMEOUT = 10
MAC_A, IP_A = guest_mac(1), guest_ip(1)
MAC_B, IP_B = guest_mac(2), guest_ip(2)


@pytest.fixture(autouse=True)
def _info_logs(caplog):
    caplog.set_level(logging.INFO, logger="hostclock")


# -- a transport whose guests are the test ------------------------------------------------------

class MemoryLink:
    def __init__(self, transport: "MemoryTransport", name: str) -> None:
        self.description = f"memory {name}"
        self.drops = transport.drops
        self.sent: list[bytes] = []
        self._open = True

    @property
    def is_open(self) -> bool:
        return self._open

    def close(self) -> None:
        self._open = False

    def send_frame(self, frame: bytes) -> None:
        if not self._open:
            self.drops["memory: link closed"] += 1
            return
        self.sent.append(frame)

    def udp(self) -> list[Ether]:
        return [Ether(f) for f in self.sent if UDP in Ether(f)]


class MemoryTransport:
    """Frames the test injects reach the gateway in order, from the transport's own task (as a real one's)."""

    description = "memory"

    def __init__(self) -> None:
        self.drops: Counter[str] = Counter()
        self._send, self._receive = trio.open_memory_channel(float("inf"))

    def link(self, name: str) -> MemoryLink:
        return MemoryLink(self, name)

    def inject(self, frame: bytes, link: MemoryLink) -> None:
        self._send.send_nowait((frame, link))

    async def run(self, on_frame, *, task_status=trio.TASK_STATUS_IGNORED):
        task_status.started()
        async for frame, link in self._receive:
            on_frame(frame, link)


@asynccontextmanager
async def serving(transport, config=None, **kwargs):
    config = config or Config()
    async with trio.open_nursery() as nursery:
        gateway = Gateway(config, transport, **kwargs)
        await nursery.start(gateway.run)
        yield gateway
        nursery.cancel_scope.cancel()


async def until(condition):
    while not condition():
        await trio.sleep(0.001)


@asynccontextmanager
async def held_upstream():
    """A loopback 'SNTP server' the test answers by hand, and a config that forwards to it."""
    sock = trio.socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    with sock:
        await sock.bind(("127.0.0.1", 0))
        yield sock, Config().replace(ntp={"upstream": f"127.0.0.1:{sock.getsockname()[1]}"})


def server_reply(request: bytes) -> bytes:
    """Mode 4, the request's length, originate = the request's transmit timestamp."""
    return bytes([0x24, 2, 6, 0xEC]) + bytes(20) + request[40:48] + bytes(16)


# -- routing replies ------------------------------------------------------------------------------

async def test_an_upstream_reply_goes_to_the_link_its_request_came_in_on_not_to_a_mac_thief():
    transport = MemoryTransport()
    link_a, link_b = transport.link("a"), transport.link("b")
    with trio.fail_after(TIMEOUT):
        async with held_upstream() as (upstream, config), serving(transport, config) as gateway:
            transport.inject(ntp_request(MAC_B, IP_B, 40000, b"B" * 8), link_b)
            request, flow_address = await upstream.recvfrom(100)
            # guest A speaks once with B's MAC (an answered ARP request) while B's request is upstream
            transport.inject(arp_request(MAC_B, IP_B), link_a)
            await until(lambda: link_a.sent)
            await upstream.sendto(server_reply(request), flow_address)
            await until(lambda: link_b.sent)
    (reply,) = [Ether(f) for f in link_b.sent]
    assert reply[UDP].sport == 123 and reply[UDP].dport == 40000 and bytes(reply[UDP].payload)[24:32] == b"B" * 8
    assert [ARP in Ether(f) for f in link_a.sent] == [True]  # A got its ARP answer, nothing of B's
    assert gateway.counters()["ntp_answered"] == 1


async def test_another_mac_claiming_a_flows_ip_and_port_gets_a_flow_of_its_own():
    transport = MemoryTransport()
    link_a, link_b = transport.link("a"), transport.link("b")
    with trio.fail_after(TIMEOUT):
        async with held_upstream() as (upstream, config), serving(transport, config) as gateway:
            transport.inject(ntp_request(MAC_B, IP_B, 40000, b"B" * 8), link_b)
            request_b, address_b = await upstream.recvfrom(100)
            transport.inject(ntp_request(MAC_A, IP_B, 40000, b"A" * 8), link_a)  # B's IP and port, A's MAC
            request_a, address_a = await upstream.recvfrom(100)
            assert address_a != address_b and gateway.counters()["flows_open"] == 2
            await upstream.sendto(server_reply(request_b), address_b)
            await upstream.sendto(server_reply(request_a), address_a)
            await until(lambda: link_a.sent and link_b.sent)
    assert [bytes(r[UDP].payload)[24:32] for r in link_b.udp()] == [b"B" * 8]
    assert [bytes(r[UDP].payload)[24:32] for r in link_a.udp()] == [b"A" * 8]
    assert link_b.udp()[0][Ether].dst == MAC_B and link_a.udp()[0][Ether].dst == MAC_A


async def test_a_reply_for_a_link_that_has_closed_is_dropped_and_counted():
    transport = MemoryTransport()
    link = transport.link("a")
    with trio.fail_after(TIMEOUT):
        async with held_upstream() as (upstream, config), serving(transport, config) as gateway:
            transport.inject(ntp_request(MAC_A, IP_A, 40000, b"A" * 8), link)
            request, flow_address = await upstream.recvfrom(100)
            link.close()
            await upstream.sendto(server_reply(request), flow_address)
            reason = "gateway: the guest's link closed before its upstream reply"
            await until(lambda: reason in gateway.counters()["drops"])
    assert link.sent == [] and gateway.counters()["drops"][reason] == 1


# -- drops are reported -----------------------------------------------------------------------------

async def test_drops_of_the_transport_its_links_and_the_embedded_responder_reach_the_counters(caplog):
    transport = MemoryTransport()
    link = transport.link("a")
    with trio.fail_after(TIMEOUT):
        async with serving(transport) as gateway:
            assert 123 in gateway.host_servers
            link.close()
            transport.inject(arp_request(MAC_A, IP_A), link)  # answered on a closed link: the link drops it
            client = trio.socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            with client:
                await client.sendto(b"too short", gateway.upstream_addresses[123])  # straight to the responder
            await until(lambda: len(gateway.counters()["drops"]) == 2)
            drops = gateway.counters()["drops"]
    assert drops == {"memory: link closed": 1, "sntp: shorter than the 48-byte NTP header": 1}
    assert "1 x memory: link closed" in log_messages(caplog)  # the summary at exit
    assert "1 x sntp: shorter than the 48-byte NTP header" in log_messages(caplog)


# -- one frame never ends the gateway --------------------------------------------------------------

class Echo:
    """UDP/7: answers each payload with what the test put in `answers` for it, or raises."""

    port, accepts_broadcast = 7, False

    def __init__(self):
        self.drops = Counter()
        self.answers = {}

    def handle_datagram(self, source, local_ip, payload, now):
        if payload == b"raise":
            raise RuntimeError("a bug in a plugin")
        return self.answers[payload]


def udp_to_port_7(payload: bytes, mac=MAC_A, ip=IP_A) -> bytes:
    return bytes(Ether(src=mac, dst=GATEWAY_MAC) / IP(src=ip, dst=GATEWAY_IP) / UDP(sport=5000, dport=7) / payload)


async def test_an_exception_handling_a_frame_is_logged_once_counted_and_the_frame_dropped(caplog):
    transport = MemoryTransport()
    link = transport.link("a")
    with trio.fail_after(TIMEOUT):
        async with serving(transport, services=[Echo()]) as gateway:
            for _ in range(3):
                transport.inject(udp_to_port_7(b"raise"), link)
            transport.inject(arp_request(MAC_A, IP_A), link)
            await until(lambda: link.sent)  # still serving
            assert gateway.counters()["drops"] == {INTERNAL_ERROR: 3}
    tracebacks = [r for r in caplog.records if r.exc_info]
    assert len(tracebacks) == 1 and "a bug in a plugin" in caplog.text
    assert "internal error while handling a frame from memory a" in tracebacks[0].getMessage()


async def test_what_a_service_returns_besides_bytes_and_udpreply_is_counted_not_raised():
    transport = MemoryTransport()
    link = transport.link("a")
    echo = Echo()
    with trio.fail_after(TIMEOUT):
        async with serving(transport, services=[echo]) as gateway:
            flow = Flow(1, GuestAddress(bytes.fromhex(MAC_A.replace(":", "")), bytes(4), 1), b"", 0.0)
            echo.answers = {b"1": [object()],
                            b"2": [Forward(7, flow, b"up")],  # a plugin's own Forward: nothing carries it
                            b"3": [b"pong"]}
            for payload in echo.answers:
                transport.inject(udp_to_port_7(payload), link)
            await until(lambda: link.sent)
            drops = gateway.counters()["drops"]
    # the stack counts both: a plain object, and a Forward from a service that does not forward
    assert drops == {Drop.SERVICE_BAD_OUTPUT: 2}
    assert bytes(Ether(link.sent[0])[UDP].payload).startswith(b"pong") and Ether(link.sent[0])[UDP].len == 8 + 4


# -- descriptors -----------------------------------------------------------------------------------

async def test_running_out_of_descriptors_drops_and_counts_ntp_requests_and_the_gateway_goes_on():
    transport = MemoryTransport()
    link = transport.link("a")
    with trio.fail_after(TIMEOUT):
        # 100 queries of one guest at once: the per-guest cap on requests in flight is off here
        # (tests/plugins/ntp/test_in_flight.py), so that each one needs a flow socket
        async with serving(transport, Config().replace(ntp={"max_in_flight": 0})) as gateway:
            with open_file_limit_with_room_for(8):
                for port in range(40000, 40100):  # a new source port per query, as ntpdig and chronyd use
                    transport.inject(ntp_request(MAC_A, IP_A, port, port.to_bytes(8, "big")), link)
                await until(lambda: gateway.counters()["frames_received"] == 100)
            transport.inject(arp_request(MAC_A, IP_A), link)
            await until(lambda: any(ARP in Ether(f) for f in link.sent))
            await until(lambda: gateway.counters()["ntp_answered"] >= 1)
            drops = gateway.counters()["drops"]
    assert drops["upstream: cannot open a flow socket (Too many open files)"] >= 90


async def test_start_up_raises_the_soft_open_file_limit_so_the_flows_fit():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    assert hard == resource.RLIM_INFINITY or hard >= 1024 + FD_RESERVE, "this machine's hard limit is too low"
    resource.setrlimit(resource.RLIMIT_NOFILE, (512, hard))
    try:
        with trio.fail_after(TIMEOUT):
            async with serving(MemoryTransport()):
                assert resource.getrlimit(resource.RLIMIT_NOFILE) == (1024 + FD_RESERVE, hard)
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_a_hard_limit_too_low_for_the_flows_is_one_warning_line(caplog):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        pytest.skip("no hard open-file limit here")
    resource.setrlimit(resource.RLIMIT_NOFILE, (300, hard))
    try:
        assert make_room_for_flows(hard) is False  # hard + FD_RESERVE descriptors cannot fit
        assert resource.getrlimit(resource.RLIMIT_NOFILE) == (hard, hard)  # as far as it goes
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    (record,) = caplog.records
    assert record.levelno == logging.WARNING and "\n" not in record.getMessage()
    assert "raise the limit (ulimit -n) or lower time.max_flows" in record.getMessage()


# -- --pcap ------------------------------------------------------------------------------------------

async def test_a_pcap_that_cannot_be_written_stops_recording_with_one_line_and_serving_goes_on(caplog):
    transport = MemoryTransport()
    link = transport.link("a")
    frame = arp_request(MAC_A, IP_A)
    with trio.fail_after(TIMEOUT):
        async with serving(transport, pcap="/dev/full") as gateway:
            for _ in range(10_000):  # past the writer's 1 MiB buffer: the disk is "full"
                transport.inject(frame, link)
            await until(lambda: len(link.sent) == 10_000)
            assert gateway._recorder is None
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and "--pcap /dev/full: cannot write (No space left on device)" in warnings[0]


# -- vmnet guests: identity and DHCP reservations ------------------------------------------------------

def discover(mac: str) -> bytes:
    chaddr = bytes.fromhex(mac.replace(":", ""))
    return bytes(Ether(src=mac, dst="ff:ff:ff:ff:ff:ff") / IP(src="0.0.0.0", dst="255.255.255.255")
                 / UDP(sport=68, dport=67) / BOOTP(chaddr=chaddr, xid=0x1234, flags=0x8000)
                 / DHCP(options=[("message-type", "discover"), "end"]))


async def test_a_vmnet_guests_preferred_address_is_offered_to_it_and_refused_to_another(tmp_path):
    path = str(tmp_path / "vmnet.sock")
    with trio.fail_after(TIMEOUT):
        async with running_gateway(VmnetTransport(path)) as gateway:
            a = await VmnetPeer.connect(path)
            assert (await a.handshake(UUID_A, preferred_ip="192.168.65.77"))[0] == 0x01
            await a.send(discover(a.mac))
            offer = Ether(await a.receive())
            assert offer[BOOTP].yiaddr == "192.168.65.77"
            assert ("message-type", 2) in offer[DHCP].options

            b = await VmnetPeer.connect(path)
            response = await b.handshake(UUID_B, preferred_ip="192.168.65.77")
            assert response[0] == 0x02  # disconnect, with the reason
            assert b"192.168.65.77 is not available" in response
            assert gateway.counters()["frames_received"] == 1
            a.close()
            b.close()


async def test_a_vmnet_guests_reservation_is_released_when_it_detaches(tmp_path, caplog):
    path = str(tmp_path / "vmnet.sock")
    with trio.fail_after(TIMEOUT):
        async with running_gateway(VmnetTransport(path)) as gateway:
            a = await VmnetPeer.connect(path)
            assert (await a.handshake(UUID_A, preferred_ip="192.168.65.77"))[0] == 0x01
            a.close()
            await wait_for_log(caplog, "guest detached")
            b = await VmnetPeer.connect(path)
            assert (await b.handshake(UUID_B, preferred_ip="192.168.65.77"))[0] == 0x01
            assert gateway.stack.services[67].leases.unreserve(expected_mac(UUID_A)) is False  # released already
            b.close()


async def test_a_vmnet_guest_cannot_speak_with_another_mac(tmp_path):
    path = str(tmp_path / "vmnet.sock")
    with trio.fail_after(TIMEOUT):
        async with running_gateway(VmnetTransport(path)) as gateway:
            a = await VmnetPeer.connect(path)
            await a.handshake(UUID_A)
            await a.send(arp_request(MAC_B, IP_B))  # not the MAC the handshake assigned it: dropped
            await a.send(arp_request(a.mac, IP_A))
            reply = Ether(await a.receive())
            assert reply[ARP].hwdst == a.mac
            drops = gateway.counters()["drops"]
            assert drops == {"vmnet: source MAC is not the guest's (assigned at the handshake)": 1}
            assert gateway.counters()["frames_received"] == 1
            a.close()


async def test_a_request_the_gateway_cannot_forward_gives_back_its_place_under_max_in_flight():
    """A request taken before its upstream is there (no driver yet: a frame in the moment before the
    upstreams start) is dropped and counted, and its place under max_in_flight goes at once, instead
    of holding it until the timeout (1 s, which a guest asking again at once spent waiting)."""
    gateway = Gateway(Config.from_mapping({"ntp": {"max_in_flight": 1}}), MemoryTransport())
    link = gateway.transport.link("a")
    for i in range(3):
        gateway._on_frame(ntp_request(MAC_A, IP_A, 40000 + i, bytes([i + 1]) * 8), link, None)
    service = gateway.stack.forwarders[123]
    assert service.in_flight.outstanding(bytes.fromhex(MAC_A.replace(":", "")) + bytes(map(int, IP_A.split(".")))) == 0
    assert service.in_flight.refused == 0
    assert gateway._drops == {"gateway: starting, upstream not ready yet": 3}
