"""The upstream driver: per-flow sockets to a real loopback UDP server, replies routed back, idle expiry."""

import socket
import time

import trio

from gateway.flows import FlowTable
from gateway.service import GuestAddress
from gateway.upstream import UpstreamDriver
from plugins.time_service import TimeService

GUEST = GuestAddress(bytes.fromhex("525400123456"), bytes([192, 168, 65, 3]), 40000)
GW = bytes([192, 168, 65, 1])
REQUEST = bytes([0x23]) + bytes(47)  # NTPv4 mode 3
REPLY = bytes([0x24]) + bytes(47)  # NTPv4 mode 4


class Sink:
    def __init__(self):
        self.sent = []

    def send_to_guest(self, guest, local_ip, port, payload):
        self.sent.append((guest, local_ip, port, payload))


def upstream_server():
    server = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    server.bind(("127.0.0.1", 0))
    server.setblocking(False)
    return server


async def test_request_goes_up_on_the_flows_socket_and_the_reply_comes_back(nursery):
    server = upstream_server()
    service, sink = TimeService(FlowTable(idle_timeout=60, max_flows=8)), Sink()
    driver = UpstreamDriver(service, server.getsockname(), sink)
    await nursery.start(driver.run)
    (forward,) = service.handle_datagram(GUEST, GW, REQUEST, now=trio.current_time())
    driver.submit(forward)
    with trio.fail_after(5):
        await trio.lowlevel.wait_readable(server)
        data, flow_address = server.recvfrom(100)
        assert data == REQUEST
        server.sendto(REPLY, flow_address)
        while not sink.sent:
            await trio.sleep(0.001)
    assert sink.sent == [(GUEST, GW, 123, REPLY)]
    assert driver.open_sockets == 1


async def test_a_datagram_to_the_idle_spare_socket_is_read_and_counted_not_spun_on(nursery):
    server = upstream_server()
    service = TimeService(FlowTable(idle_timeout=60, max_flows=8))
    driver = UpstreamDriver(service, server.getsockname(), Sink())
    await nursery.start(driver.run)
    sink = driver.sink
    (forward,) = service.handle_datagram(GUEST, GW, REQUEST, now=trio.current_time())
    driver.submit(forward)
    with trio.fail_after(5):
        await trio.lowlevel.wait_readable(server)
        _, flow_address = server.recvfrom(100)
        server.sendto(REPLY, flow_address)
        while not sink.sent:  # the reply reached the guest; the next flow's spare socket is made now
            await trio.sleep(0.001)
    spare_address = driver._spare.getsockname()
    server.sendto(REPLY, spare_address)
    with trio.fail_after(5):
        while not driver.drops:
            await trio.sleep(0.001)
    assert driver.drops == {"upstream: datagram on a socket no flow uses yet": 1}
    cpu_before = time.process_time()
    await trio.sleep(0.2)
    assert time.process_time() - cpu_before < 0.1, "the driver spins on a ready socket"


async def test_idle_flows_are_closed_with_their_sockets(nursery, autojump_clock):
    server = upstream_server()
    service = TimeService(FlowTable(idle_timeout=60, max_flows=8))
    driver = UpstreamDriver(service, server.getsockname(), Sink())
    await nursery.start(driver.run)
    (forward,) = service.handle_datagram(GUEST, GW, REQUEST, now=trio.current_time())
    driver.submit(forward)
    assert driver.open_sockets == 1
    await trio.sleep(61)
    assert driver.open_sockets == 0 and len(service.flows) == 0
