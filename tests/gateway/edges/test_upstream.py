"""The upstream driver: per-flow sockets to a real loopback UDP server, replies handed back with the
link of the flow's latest request, idle expiry, descriptor exhaustion counted."""

import socket

import trio

from gateway.core.flows import FlowTable
from gateway.core.service import GuestAddress
from gateway.edges.upstream import UpstreamDriver, monotonic_arrival_ns
from plugins.ntp.time_service import TimeService
from fd_limits import open_file_limit_with_room_for

GUEST = GuestAddress(bytes.fromhex("525400123456"), bytes([192, 168, 65, 3]), 40000)
GW = bytes([192, 168, 65, 1])
REQUEST = bytes([0x23]) + bytes(47)  # NTPv4 mode 3
REPLY = bytes([0x24]) + bytes(47)  # NTPv4 mode 4


LINK_A, LINK_B = object(), object()  # the driver keeps a request's link and hands it back, untouched


class Sink:
    """The runtime's side (`UpstreamSink`): screens with the service, as `Stack.receive_upstream` does."""

    def __init__(self, service):
        self.service = service
        self.sent = []

    def upstream_reply(self, port, flow_id, payload, link, now, arrival_ns=None, request_residence_ns=None):
        reply = self.service.handle_upstream(flow_id, payload, now)
        if reply is not None:
            self.sent.append((self.service.flows.get(flow_id).guest, port, reply, link))


class TaskSteps(trio.abc.Instrument):
    """Counts the steps of every task but the one that installed it."""

    def __init__(self):
        self.me = trio.lowlevel.current_task()
        self.others = 0

    def before_task_step(self, task):
        if task is not self.me:
            self.others += 1


def upstream_server():
    server = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    server.bind(("127.0.0.1", 0))
    server.setblocking(False)
    return server


async def test_request_goes_up_on_the_flows_socket_and_the_reply_comes_back(nursery):
    server = upstream_server()
    service = TimeService(FlowTable(idle_timeout=60, max_flows=8))
    sink = Sink(service)
    driver = UpstreamDriver(service, server.getsockname(), sink)
    await nursery.start(driver.run)
    (forward,) = service.handle_datagram(GUEST, GW, REQUEST, now=trio.current_time())
    driver.submit(forward, LINK_A)
    with trio.fail_after(5):
        await trio.lowlevel.wait_readable(server)
        data, flow_address = server.recvfrom(100)
        assert data == REQUEST
        server.sendto(REPLY, flow_address)
        while not sink.sent:
            await trio.sleep(0.001)
    assert sink.sent == [(GUEST, 123, REPLY, LINK_A)]
    assert driver.open_sockets == 1


async def test_a_reply_goes_with_the_link_of_the_flows_latest_request(nursery):
    server = upstream_server()
    service = TimeService(FlowTable(idle_timeout=60, max_flows=8))
    sink = Sink(service)
    driver = UpstreamDriver(service, server.getsockname(), sink)
    await nursery.start(driver.run)
    for link in (LINK_A, LINK_B):  # the guest came back on another connection
        (forward,) = service.handle_datagram(GUEST, GW, REQUEST, now=trio.current_time())
        driver.submit(forward, link)
    with trio.fail_after(5):
        for _ in range(2):
            await trio.lowlevel.wait_readable(server)
            _, flow_address = server.recvfrom(100)
        server.sendto(REPLY, flow_address)
        while not sink.sent:
            await trio.sleep(0.001)
    assert sink.sent == [(GUEST, 123, REPLY, LINK_B)] and driver.open_sockets == 1


async def test_a_datagram_to_the_idle_spare_socket_is_read_and_counted_not_spun_on(nursery):
    server = upstream_server()
    service = TimeService(FlowTable(idle_timeout=60, max_flows=8))
    driver = UpstreamDriver(service, server.getsockname(), Sink(service))
    await nursery.start(driver.run)
    sink = driver.sink
    (forward,) = service.handle_datagram(GUEST, GW, REQUEST, now=trio.current_time())
    driver.submit(forward, LINK_A)
    with trio.fail_after(5):
        await trio.lowlevel.wait_readable(server)
        _, flow_address = server.recvfrom(100)
        server.sendto(REPLY, flow_address)
        while not sink.sent:  # a whole exchange; the next flow's spare socket is ready
            await trio.sleep(0.001)
    spare_address = driver._spare.getsockname()
    server.sendto(REPLY, spare_address)
    with trio.fail_after(5):
        while not driver.drops:
            await trio.sleep(0.001)
    assert driver.drops == {"upstream: datagram on a socket no flow uses yet": 1}
    # Counted in task steps, not CPU time (which a busy machine would blur): a driver that spins
    # on the ready socket is scheduled over and over (thousands of steps in 0.2 s); an idle one
    # not at all.
    steps = TaskSteps()
    trio.lowlevel.add_instrument(steps)
    try:
        await trio.sleep(0.2)
    finally:
        trio.lowlevel.remove_instrument(steps)
    assert steps.others <= 2, f"the driver spins on a ready socket: {steps.others} task steps in 0.2 s"


async def test_idle_flows_are_closed_with_their_sockets(nursery, autojump_clock):
    server = upstream_server()
    service = TimeService(FlowTable(idle_timeout=60, max_flows=8))
    driver = UpstreamDriver(service, server.getsockname(), Sink(service))
    await nursery.start(driver.run)
    (forward,) = service.handle_datagram(GUEST, GW, REQUEST, now=trio.current_time())
    driver.submit(forward, LINK_A)
    assert driver.open_sockets == 1
    await trio.sleep(61)
    assert driver.open_sockets == 0 and len(service.flows) == 0


async def test_running_out_of_descriptors_drops_and_counts_requests_and_the_driver_goes_on(nursery):
    server = upstream_server()
    service = TimeService(FlowTable(idle_timeout=60, max_flows=1024))
    driver = UpstreamDriver(service, server.getsockname(), Sink(service))
    await nursery.start(driver.run)
    with open_file_limit_with_room_for(8):
        for port in range(40000, 40100):  # as ntpdig and chronyd do: a new source port per query
            guest = GuestAddress(GUEST.mac, GUEST.ip, port)
            (forward,) = service.handle_datagram(guest, GW, REQUEST, now=trio.current_time())
            driver.submit(forward, LINK_A)
    failed = driver.drops["upstream: cannot open a flow socket (Too many open files)"]
    assert failed >= 90 and driver.open_sockets == 100 - failed
    with trio.fail_after(5):  # the flows that have a socket are still served
        await trio.lowlevel.wait_readable(server)
        _, flow_address = server.recvfrom(100)
        server.sendto(REPLY, flow_address)
        while not driver.sink.sent:
            await trio.sleep(0.001)


class StallingClocks:
    """A realtime and a monotonic clock over one true time (realtime = true + 1e18 ns), where
    each read takes `stalls` ns of true time first, in turn (a thread that lost the GIL)."""

    REALTIME_AHEAD = 10**18

    def __init__(self, true_ns, stalls):
        self.true_ns = true_ns
        self.stalls = list(stalls)
        self.reads = 0

    def _advance(self):
        self.true_ns += self.stalls.pop(0) if self.stalls else 0
        self.reads += 1

    def realtime(self):
        self._advance()
        return self.true_ns + self.REALTIME_AHEAD

    def monotonic(self):
        self._advance()
        return self.true_ns


STAMPED_AT = 5_000_000  # true ns when the kernel stamped the reply's arrival


def arrival_with(stalls):
    clocks = StallingClocks(STAMPED_AT + 40_000, stalls)  # read 40 us after the stamp
    return monotonic_arrival_ns(STAMPED_AT + StallingClocks.REALTIME_AHEAD, clocks.realtime, clocks.monotonic), clocks


def test_a_kernel_stamp_converts_to_the_monotonic_clock_exactly_when_nothing_pauses():
    arrival, clocks = arrival_with([])
    assert arrival == STAMPED_AT and clocks.reads == 3


def test_a_pause_between_the_two_clock_reads_makes_the_arrival_later_never_earlier():
    """A 130 us stall between the reads: the arrival comes out late (a residence under-corrected);
    were it early, more would be taken out of the reply than the gateway held it (a real client's
    offset then leaves its own error bound), as chronyd saw once under load."""
    for stall in (130_000, 5_000_000):
        arrival, _ = arrival_with([0, stall] * 10)
        assert STAMPED_AT <= arrival <= STAMPED_AT + stall


def test_a_pair_read_far_apart_is_read_again_and_comes_out_exact():
    arrival, clocks = arrival_with([0, 130_000, 0])  # only the first pair is spread
    assert arrival == STAMPED_AT and clocks.reads == 6
    _, clocks = arrival_with([0, 130_000] * 10)  # always spread: a bounded number of tries
    assert clocks.reads == 9
