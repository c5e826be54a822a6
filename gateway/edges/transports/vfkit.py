"""vfkit's `virtio-net,unixSocketPath=PATH`: one frame per datagram on a Unix SOCK_DGRAM socket.

hostclock binds PATH, as gvisor-tap-vsock's `--listen-vfkit unixgram://PATH`
does. vfkit may first send the 4-byte datagram ``VFKT`` to announce its
address; gvisor-tap-vsock consumes it ("If it's the old vfkit handshake,
consume it", pkg/transport/unixgram_unix.go) and so do we: it is never a
frame (an Ethernet header alone is 14 bytes). Replies go to the address the
datagrams come from; gvisor-tap-vsock likewise rejects a sender without one.
"""

from __future__ import annotations

from gateway.edges.transports.unix_dgram import UnixDatagramTransport

__all__ = ["VfkitTransport", "VFKIT_MAGIC"]

VFKIT_MAGIC = b"VFKT"


class VfkitTransport(UnixDatagramTransport):
    kind = "vfkit"
    greeting = VFKIT_MAGIC
