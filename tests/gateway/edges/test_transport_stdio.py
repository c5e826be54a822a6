"""`--stdio`: u16 little-endian length + frame on stdin/stdout, no handshake.

In-process over real pipes, and as the real CLI spawned by a parent (this test)
that owns its stdin and stdout: stdout must carry frames only.
"""

import logging
import os
import struct
import subprocess
import sys
from pathlib import Path

import pytest
import trio

from gateway.edges.transports.base import TransportError
from gateway.edges.transports.stdio import StdioTransport

from transport_harness import (EMBEDDED_RESPONDER, TIMEOUT, assert_guest_served, guest_ip, guest_mac,
                                    running_gateway, tiny_ntp_responder, wait_for_log)

REPO = Path(__file__).resolve().parents[3]


class StreamPeer:
    """The parent's side: writes frames to the child's stdin, reads them from its stdout."""

    def __init__(self, to_gateway: trio.abc.SendStream, from_gateway: trio.abc.ReceiveStream) -> None:
        self.to_gateway = to_gateway
        self.from_gateway = from_gateway
        self.buffer = b""

    async def send(self, frame: bytes) -> None:
        await self.to_gateway.send_all(struct.pack("<H", len(frame)) + frame)

    async def recv_exactly(self, n: int) -> bytes:
        while len(self.buffer) < n:
            data = await self.from_gateway.receive_some(65536)
            if not data:
                raise EOFError(f"EOF after {len(self.buffer)} of {n} bytes: {self.buffer[:80]!r}")
            self.buffer += data
        data, self.buffer = self.buffer[:n], self.buffer[n:]
        return data

    async def receive(self) -> bytes:
        (length,) = struct.unpack("<H", await self.recv_exactly(2))
        return await self.recv_exactly(length)


@pytest.fixture(autouse=True)
def _info_logs(caplog):
    caplog.set_level(logging.INFO, logger="hostclock")


@pytest.fixture
def pipes():
    """(transport, peer): a StdioTransport on two fresh pipes, and the parent's ends of them."""
    guest_to_gw_r, guest_to_gw_w = os.pipe()
    gw_to_guest_r, gw_to_guest_w = os.pipe()
    transport = StdioTransport(read_fd=guest_to_gw_r, write_fd=gw_to_guest_w)
    peer = StreamPeer(trio.lowlevel.FdStream(guest_to_gw_w), trio.lowlevel.FdStream(gw_to_guest_r))
    yield transport, peer
    for fd in (guest_to_gw_r, gw_to_guest_w):
        os.close(fd)


async def test_arp_ping_and_ntp_over_pipes(pipes):
    transport, peer = pipes
    with trio.fail_after(TIMEOUT):
        async with running_gateway(transport):
            await assert_guest_served(peer, guest_mac(1), guest_ip(1))
            await peer.to_gateway.aclose()
            await transport.finished.wait()


async def test_the_parent_closing_stdin_ends_the_session_with_a_log_line(pipes, caplog):
    transport, peer = pipes
    with trio.fail_after(TIMEOUT):
        async with running_gateway(transport):
            await peer.to_gateway.aclose()
            await transport.finished.wait()
            await wait_for_log(caplog, "guest detached: stdio fds")


async def test_a_parent_leaving_mid_frame_is_logged(pipes, caplog):
    transport, peer = pipes
    with trio.fail_after(TIMEOUT):
        async with running_gateway(transport):
            await peer.to_gateway.send_all(struct.pack("<H", 100) + bytes(10))
            await peer.to_gateway.aclose()
            await transport.finished.wait()
            await wait_for_log(caplog, "peer disconnected mid-frame (12 bytes of a frame lost)")


async def test_a_terminal_or_a_regular_file_is_refused_with_the_fix(tmp_path):
    controller, terminal = os.openpty()
    regular = os.open(tmp_path / "file", os.O_RDWR | os.O_CREAT)
    try:
        with pytest.raises(TransportError, match="stdin is a terminal"):
            await StdioTransport(read_fd=terminal, write_fd=terminal).run(lambda frame, link: None)
        with pytest.raises(TransportError, match="stdout is neither a pipe nor a socket"):
            read_end, write_end = os.pipe()
            try:
                await StdioTransport(read_fd=read_end, write_fd=regular).run(lambda frame, link: None)
            finally:
                os.close(read_end)
                os.close(write_end)
    finally:
        for fd in (controller, terminal, regular):
            os.close(fd)


# -- the real CLI, spawned as a VM helper would spawn it ----------------------------------------------

def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "gateway", "run", "--stdio", *args]


async def test_the_cli_keeps_stdout_for_frames_and_exits_when_stdin_closes():
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            args = []
            if not EMBEDDED_RESPONDER:
                port = await nursery.start(tiny_ntp_responder)
                args = ["--upstream", f"127.0.0.1:{port}"]
            process = await trio.lowlevel.open_process(_cli(*args), cwd=REPO, stdin=subprocess.PIPE,
                                                       stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            stderr = b""

            async def collect_stderr():
                nonlocal stderr
                while chunk := await process.stderr.receive_some(65536):
                    stderr += chunk

            nursery.start_soon(collect_stderr)
            try:
                while b"hostclock: gateway" not in stderr:  # the ready line, on stderr in --stdio mode
                    assert process.returncode is None, stderr.decode()
                    await trio.sleep(0.02)
                # every byte on stdout must parse as frames: a stray line would break the ARP check
                peer = StreamPeer(process.stdin, process.stdout)
                await assert_guest_served(peer, guest_mac(1), guest_ip(1))
                await process.stdin.aclose()  # the parent is done with the guest
                assert await process.wait() == 0, stderr.decode()
                assert await process.stdout.receive_some(65536) == b""
            finally:
                if process.returncode is None:
                    process.kill()
                    await process.wait()
            nursery.cancel_scope.cancel()
    text = stderr.decode()
    assert "the session is over" in text and "shutting down" in text, text


def test_the_stdio_flag_takes_no_argument():
    from gateway.app.cli import _build_parser

    assert _build_parser().parse_args(["run", "--stdio"]).transport == ("--stdio", "")
    with pytest.raises(SystemExit):
        _build_parser().parse_args(["run", "--stdio", "--vmnet", "/tmp/x.sock"])  # one transport only


def test_the_cli_refuses_stdin_that_is_not_a_pipe_in_one_line():
    result = subprocess.run(_cli(), cwd=REPO, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=30)
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.strip().splitlines()[-1] == (
        "hostclock: error: --stdio: stdin is neither a pipe nor a socket; the parent process must connect "
        "it to the guest's frame stream")
