"""A stderr nobody reads never stops the gateway: log lines go through a bounded queue and a thread."""

import io
import logging
import queue
import socket
import struct
import threading
import time

from gateway.app.log_output import LogOutput, _Enqueue
from gateway_process import GatewayProcess
from guest_frames import ntp_request, udp_to_gateway


def connect_through_a_full_backlog(sock: socket.socket, path: str) -> None:
    """Connect; a full listen backlog is EAGAIN on a Unix socket: a moment, then again (for 1 s)."""
    for _ in range(500):
        try:
            sock.connect(path)
            return
        except BlockingIOError:
            time.sleep(0.002)
    raise AssertionError("the listener took no connection in 1 s: the gateway has stopped")


def query_over_qemu_stream(path: str, transmit: bytes) -> bytes:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(5)
        connect_through_a_full_backlog(sock, path)  # the churn's last connections may still fill it
        frame = udp_to_gateway(ntp_request(transmit=transmit))
        sock.sendall(struct.pack("!I", len(frame)) + frame)
        buffer = b""
        while True:
            data = sock.recv(65536)
            assert data, "the gateway closed the connection"
            buffer += data
            while len(buffer) >= 4 and len(buffer) >= 4 + struct.unpack_from("!I", buffer)[0]:
                (n,) = struct.unpack_from("!I", buffer)
                reply, buffer = buffer[4:4 + n], buffer[4 + n:]
                if len(reply) >= 90 and reply[23] == 17 and reply[66:74] == transmit:
                    return reply


def test_a_gateway_whose_stderr_is_never_read_goes_on_serving(tmp_path):
    """2,000 guests attach and leave (two log lines each, ~400 KB: six times a pipe's 64 KiB) while
    nobody reads the gateway's stderr; then a guest is still answered. Logging from the trio task
    straight to the pipe, the gateway stopped at the pipe's 64 KiB until its stderr was read."""
    path = str(tmp_path / "qemu.sock")
    with GatewayProcess("run", "--qemu-stream", path, "--no-dhcp") as gateway:  # stderr: read at stop only
        for _ in range(2000):
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as churn:
                churn.settimeout(5)
                connect_through_a_full_backlog(churn, path)
        reply = query_over_qemu_stream(path, b"\x11" * 8)
        assert reply[66:74] == b"\x11" * 8
        assert gateway.stop() == 0
    assert "guest attached" in gateway.stderr


def test_a_full_queue_drops_and_counts_and_the_next_line_says_how_many():
    records = queue.Queue(2)
    handler = _Enqueue(records)
    log = logging.getLogger("hostclock.test.log_output")
    log.propagate = False
    log.addHandler(handler)
    try:
        for n in range(5):
            log.warning("line %d", n)
        assert handler.dropped == 3 and [records.get_nowait().getMessage() for _ in range(2)] == ["line 0", "line 1"]
        log.warning("line 5")
        assert records.get_nowait().getMessage() == "3 log line(s) dropped: stderr was not being read"
        assert records.get_nowait().getMessage() == "line 5" and handler.dropped == 0
    finally:
        log.removeHandler(handler)


def test_lines_are_written_in_order_with_tracebacks_and_flushed_at_stop():
    stream = io.StringIO()
    output = LogOutput(stream, "hostclock: %(message)s", logging.INFO)
    output.start()
    log = logging.getLogger("hostclock.test.log_output.order")
    log.setLevel(logging.DEBUG)  # the handler's level decides
    log.propagate = False
    log.addHandler(output.handler)
    try:
        for n in range(100):
            log.info("line %d", n)
        try:
            raise ValueError("boom")
        except ValueError:
            log.exception("failed")
        log.debug("below the level")
    finally:
        log.removeHandler(output.handler)
        output.stop()
    lines = stream.getvalue().splitlines()
    assert lines[:100] == [f"hostclock: line {n}" for n in range(100)]
    assert lines[100] == "hostclock: failed" and "ValueError: boom" in stream.getvalue()
    assert "below the level" not in stream.getvalue()
    assert not any(t.name == "hostclock log output" and t.is_alive() for t in threading.enumerate())
