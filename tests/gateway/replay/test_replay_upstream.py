"""`hostclock replay --upstream HOST:PORT`: requests really go to a server on loopback, bounded in time."""

import json
import os
import socket
import threading
import time
from pathlib import Path

import pytest

from gateway.app.cli import main
from gateway.app.config import Config
from gateway.edges.pcap_reader import open_capture
from gateway.replay.engine import RecordedClock, replay
from gateway.replay.upstream import DEFAULT_TIMEOUT, UdpUpstream
from gateway_process import free_port_candidate, serving_on_a_free_port
from realpeers import requires_clients

REPO = Path(__file__).resolve().parents[3]
NTPDIG = str(REPO / "pcaps" / "clients" / "ntpdig.pcap")
FLOOD = str(REPO / "pcaps" / "hostile" / "port_flood.pcap")


@pytest.fixture
def hostclock_serve():
    """`hostclock serve` (the real SNTP responder, host clock) on a free loopback port."""
    with serving_on_a_free_port() as (_, port):
        yield port


class FakeServer:
    """A loopback UDP server answering each datagram with `answer(request)` (None: stay silent)."""

    def __init__(self, answer):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.answer = answer
        self.thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self):
        while True:
            try:
                data, peer = self.sock.recvfrom(2048)
            except OSError:
                return
            reply = self.answer(data)
            if reply is not None:
                self.sock.sendto(reply, peer)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.sock.close()


def _as_server_reply(request: bytes, extra: int = 0) -> bytes:
    return bytes([request[0] & 0xF8 | 4]) + request[1:24] + request[40:48] + bytes(16 + extra)


def test_the_real_responder_answers_with_the_host_clock(hostclock_serve, capsys):
    before = time.time_ns()
    assert main(["replay", NTPDIG, "--upstream", f"127.0.0.1:{hostclock_serve}", "--json"]) == 0
    after = time.time_ns()
    report = json.loads(capsys.readouterr().out)
    assert report["upstream"] == f"127.0.0.1:{hostclock_serve}"
    assert report["ntp"] == {"forwarded": 1, "answered": 1, "exchanges": 1} and report["drops"] == {}
    (exchange,) = report["exchanges"]
    # the server's clock, read during the replay (the capture is from 2024): to the nanosecond,
    # the kernel's receive time and the transmit time lie inside the replay's run
    assert before <= exchange["t2_ns"] <= exchange["t3_ns"] <= after


def test_nobody_listening_is_a_counted_drop(capsys):
    # a port free a moment ago; if another process binds it meanwhile, the answer (or the wait
    # for one) differs: try another port (bounded)
    for _ in range(5):
        started = time.monotonic()
        assert main(["replay", NTPDIG, "--upstream", f"127.0.0.1:{free_port_candidate()}", "--json"]) == 0
        took = time.monotonic() - started
        report = json.loads(capsys.readouterr().out)
        if report["drops"] != {f"upstream: no answer within {DEFAULT_TIMEOUT:g} s": 1}:
            break
    # ICMP port unreachable ends the wait at once, under the DEFAULT_TIMEOUT a silent port costs
    # (a waited-out timeout is the bug this would show)
    assert took < DEFAULT_TIMEOUT, took
    assert report["drops"] == {"upstream: port unreachable (no server listening)": 1}
    assert report["frames_sent"] == 1  # the ARP reply only


def test_a_silent_server_is_waited_for_a_bounded_time():
    with FakeServer(lambda request: None) as server:
        upstream = UdpUpstream("127.0.0.1", server.port, timeout=0.2)
        started = time.monotonic()
        result = replay(open_capture(NTPDIG).records(), Config(), RecordedClock(), upstream)
    # waited for the timeout, and not much more: 3 s is 15 x the timeout, room for a busy
    # machine, and far under the minutes an unbounded wait would take (the test's timeout)
    assert 0.2 <= time.monotonic() - started < 3
    assert dict(result.drops) == {"upstream: no answer within 0.2 s": 1}


@pytest.mark.parametrize("answer, reason", [
    (lambda request: request, "ntp: upstream reply is not an NTP server reply (mode 4)"),
    (lambda request: _as_server_reply(request, extra=4), "ntp: upstream reply longer than the request (anti-amplification)"),
])
def test_what_the_upstream_says_is_screened_as_in_the_runtime(answer, reason):
    with FakeServer(answer) as server:
        result = replay(open_capture(NTPDIG).records(), Config(), RecordedClock(), UdpUpstream("127.0.0.1", server.port))
    assert dict(result.drops) == {reason: 1}


def test_one_socket_per_flow_and_none_left_open():
    fds_before = len(os.listdir("/proc/self/fd"))
    with FakeServer(_as_server_reply) as server:
        upstream = UdpUpstream("127.0.0.1", server.port)
        result = replay(open_capture(FLOOD).records(), Config(), RecordedClock(), upstream)
    assert (result.answered, result.flows_opened, result.flows_evicted) == (1100, 1100, 256)
    assert len(os.listdir("/proc/self/fd")) == fds_before


def test_running_out_of_file_descriptors_is_a_counted_drop(monkeypatch):
    import errno

    import gateway.replay.upstream as module

    def no_more(*args):
        raise OSError(errno.EMFILE, os.strerror(errno.EMFILE))

    monkeypatch.setattr(module.socket, "socket", no_more)
    result = replay(open_capture(NTPDIG).records(), Config(), RecordedClock(), UdpUpstream("127.0.0.1", 9))
    assert dict(result.drops) == {"upstream: cannot open a flow socket (Too many open files)": 1}


@requires_clients("chronyd")
def test_a_real_chronyd_server_on_loopback_answers():
    """A third-party server (chronyd -x: it never touches the clock) through --upstream."""
    from realpeers import ChronyServer

    with ChronyServer(stratum=3) as server:
        result = replay(open_capture(NTPDIG).records(), Config(), RecordedClock(),
                        UdpUpstream("127.0.0.1", server.port))
    assert (result.answered, dict(result.drops)) == (1, {})
    reply = result.output[-1][1][42:]
    assert reply[0] & 7 == 4 and reply[1] == 3  # mode 4 from chronyd, its stratum
