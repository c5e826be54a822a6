"""A stream link: frames handed on in turns, and a peer that stops mid-frame disconnected."""

import socket
import struct

import trio

from gateway.edges.transports.stream_link import StreamLink

PREFIX = struct.Struct("!I")  # QEMU's


def link_over(sock: socket.socket, **kwargs) -> StreamLink:
    return StreamLink("test", sock.fileno(), sock.fileno(), PREFIX, 65535, **kwargs)


async def test_a_peer_that_stops_mid_frame_is_disconnected_after_the_timeout(autojump_clock):
    ours, peer = socket.socketpair()
    with ours, peer:
        ours.setblocking(False)
        peer.sendall(PREFIX.pack(60) + b"\0" * 10)  # a prefix and 10 of 60 bytes, then nothing
        with trio.fail_after(60):
            reason = await link_over(ours, partial_frame_timeout=10.0).serve(lambda *a: None)
        assert reason.startswith("peer stalled mid-frame (14 bytes of a frame")
        assert 10.0 <= trio.current_time() < 11.0


async def test_half_a_length_prefix_counts_as_mid_frame(autojump_clock):
    ours, peer = socket.socketpair()
    with ours, peer:
        ours.setblocking(False)
        peer.sendall(b"\0\0")
        with trio.fail_after(60):
            reason = await link_over(ours, partial_frame_timeout=5.0).serve(lambda *a: None)
        assert "stalled mid-frame" in reason


async def test_a_peer_silent_between_frames_is_an_idle_guest_and_stays(autojump_clock):
    ours, peer = socket.socketpair()
    frames = []
    with ours, peer:
        ours.setblocking(False)
        peer.sendall(PREFIX.pack(3) + b"abc")
        with trio.move_on_after(3600):  # an hour of silence after a whole frame
            await link_over(ours, partial_frame_timeout=10.0).serve(lambda frame, *a: frames.append(frame))
        assert trio.current_time() >= 3600 and frames == [b"abc"]


async def test_a_read_of_many_frames_is_handed_on_in_turns():
    """Another task runs between each 64 frames of one read: a flooding peer cannot hold the loop."""
    ours, peer = socket.socketpair()
    turns = []
    seen = []

    def on_frame(frame, link, read_ns=None):
        seen.append(frame)

    async def other_task():
        while len(seen) < 640:
            turns.append(len(seen))
            await trio.lowlevel.checkpoint()

    with ours, peer:
        ours.setblocking(False)
        peer.sendall(b"".join(PREFIX.pack(4) + n.to_bytes(4, "big") for n in range(640)))
        with trio.fail_after(10):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(link_over(ours).serve, on_frame)
                nursery.start_soon(other_task)
                while len(seen) < 640:
                    await trio.sleep(0.01)
                nursery.cancel_scope.cancel()
    # between two of the other task's turns, at most 128 frames were handed on: 64 per turn of the
    # link's task, which may run last in one of trio's batches and first in the next
    steps = [b - a for a, b in zip(turns, turns[1:])]
    assert steps and max(steps) <= 128, steps
