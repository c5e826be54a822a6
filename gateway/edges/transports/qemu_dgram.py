"""QEMU `-netdev dgram` over Unix sockets: one frame per datagram, no length prefix.

hostclock binds PATH; QEMU binds its own path A and sends to PATH:

    -netdev dgram,id=n0,local.type=unix,local.path=A,remote.type=unix,remote.path=PATH

Replies go to the address the guest's datagrams come from (A), as QEMU's
net/dgram.c expects them on its local socket. The mechanics (one link per
sender, truncated or unanswerable datagrams dropped and counted) are
`unix_dgram.UnixDatagramTransport`'s.
"""

from __future__ import annotations

from gateway.edges.transports.unix_dgram import UnixDatagramTransport

__all__ = ["QemuDgramTransport"]


class QemuDgramTransport(UnixDatagramTransport):
    kind = "qemu-dgram"
