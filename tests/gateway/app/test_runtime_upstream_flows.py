"""The live upstream driver through the runtime, at the runtime's defaults (Config()): one
socket per guest flow, the oldest quarter closed at 1024 flows, a flow idle for 60 s closed.

A real Gateway runs in-process with a transport whose guest is the test; guest NTP goes to a
loopback socket the test holds (it never answers, so every flow stays open until the
gateway closes it). Sockets are counted where they live: the descriptors in /proc/self/fd.
"""

from __future__ import annotations

import os
import socket
from collections import Counter
from contextlib import asynccontextmanager

import trio
from transport_harness import guest_ip, guest_mac, ntp_request

from gateway.app.config import Config
from gateway.app.runtime import Gateway

MAC, IP = guest_mac(1), guest_ip(1)


def open_descriptors() -> int:
    return len(os.listdir("/proc/self/fd"))


class GuestLink:
    description = "memory guest"

    def __init__(self) -> None:
        self.drops: Counter[str] = Counter()
        self.sent: list[bytes] = []
        self.is_open = True

    def send_frame(self, frame: bytes) -> None:
        self.sent.append(frame)

    def close(self) -> None:
        self.is_open = False


class OneGuestTransport:
    """Frames the test injects reach the gateway in order, from the transport's own task."""

    description = "memory"

    def __init__(self) -> None:
        self.drops: Counter[str] = Counter()
        self.link = GuestLink()
        self._send, self._receive = trio.open_memory_channel(float("inf"))

    def inject(self, frame: bytes) -> None:
        self._send.send_nowait(frame)

    async def run(self, on_frame, *, task_status=trio.TASK_STATUS_IGNORED):
        task_status.started()
        async for frame in self._receive:
            on_frame(frame, self.link)


@asynccontextmanager
async def gateway_with_a_silent_upstream():
    upstream = trio.socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    with upstream:
        await upstream.bind(("127.0.0.1", 0))
        # one guest's 1,024 unanswered queries: the per-guest cap on requests in flight is off here
        # (tests/plugins/ntp/test_in_flight.py), so that each opens its flow
        config = Config().replace(ntp={"upstream": f"127.0.0.1:{upstream.getsockname()[1]}", "max_in_flight": 0})
        assert (config.ntp.max_flows, config.ntp.flow_idle_timeout) == (1024, 60.0)  # the defaults
        transport = OneGuestTransport()
        async with trio.open_nursery() as nursery:
            gateway = Gateway(config, transport)
            await nursery.start(gateway.run)
            yield gateway, transport
            nursery.cancel_scope.cancel()


async def until(condition, what: str) -> None:
    with trio.fail_after(30):
        while not condition():
            await trio.sleep(0.01)


def flows(gateway: Gateway) -> int:
    return len(gateway.stack.forwarders[123].flows)


async def test_at_1024_flows_the_oldest_quarters_sockets_are_closed():
    async with gateway_with_a_silent_upstream() as (gateway, transport):
        baseline = open_descriptors()  # the gateway running, no flow yet
        for n in range(1024):
            transport.inject(ntp_request(MAC, IP, 20000 + n, n.to_bytes(8, "big")))
        await until(lambda: flows(gateway) == 1024 and gateway.stack.frames_received >= 1024, "1024 flows")
        await trio.sleep(0.05)  # the last send's spare socket (the next flow's) is made right after it
        # 1024 flow sockets, and the one spare socket kept ready for the next new flow
        assert open_descriptors() - baseline == 1024 + 1
        transport.inject(ntp_request(MAC, IP, 30000, b"new-flow"))
        await until(lambda: gateway.stack.forwarders[123].flows.evicted == 256, "the eviction")
        await trio.sleep(0.05)
        assert flows(gateway) == 1024 - 256 + 1
        # 256 sockets closed: what is open is the live flows' sockets and one spare, no more
        assert open_descriptors() - baseline == 1024 - 256 + 1 + 1
    assert not transport.drops


async def test_a_flow_idle_for_60_s_is_closed_with_its_socket(autojump_clock):
    async with gateway_with_a_silent_upstream() as (gateway, transport):
        baseline = open_descriptors()
        transport.inject(ntp_request(MAC, IP, 40000, b"idle-flw"))
        await until(lambda: flows(gateway) == 1, "the flow")
        await trio.sleep(0.01)
        assert open_descriptors() - baseline == 1 + 1  # the flow's socket and the spare
        await trio.sleep(59)
        assert flows(gateway) == 1 and open_descriptors() - baseline == 2  # idle 59 s: still open
        await trio.sleep(2)
        assert flows(gateway) == 0 and open_descriptors() - baseline == 1  # idle 61 s: closed
