"""Frames as datagrams on a Unix SOCK_DGRAM socket hostclock binds: one datagram, one frame.

Shared by QEMU `-netdev dgram` (`qemu_dgram`) and vfkit (`vfkit`). There is no
connection: a guest is the socket address its datagrams come from, and our
replies go back to that address (QEMU binds `local.path` and sends to
`remote.path`; gvisor-tap-vsock's vfkit mode replies to the address its first
datagram came from). Each distinct sender is a guest with its own link, so
several VMs may share the socket; one that restarts on the same path is the
same guest again.

Bad input is dropped and counted, never fatal: a datagram larger than the
receive buffer (QEMU's NET_BUFSIZE, 4096 + 65536 bytes) arrives truncated
(MSG_TRUNC) and is dropped; a datagram from an unbound socket (no address)
cannot be answered and is dropped. Each kind of problem is logged the first
time per sender. A sender whose socket has gone away (ECONNREFUSED/ENOENT on
send) is forgotten, its link closed, until it sends again.
"""

from __future__ import annotations

import errno
import logging
import socket
from collections import Counter, OrderedDict

import trio

from gateway.edges.transports.base import FrameHandler
from gateway.edges.transports.framing import QEMU_MAX_FRAME
from gateway.edges.transports.unix_socket import bind_unix, remove_socket_file

__all__ = ["UnixDatagramTransport", "DatagramPeerLink", "MAX_PEERS"]

log = logging.getLogger("hostclock.transport")

#: guests remembered at once; past this the least recently heard one is forgotten
MAX_PEERS = 64
_RECEIVE_BUFFER = QEMU_MAX_FRAME
_RECEIVES_PER_WAKEUP = 64
#: gvisor-tap-vsock's unixgram socket buffers: 1 MiB send, 4 MiB receive
_SNDBUF = 1 << 20
_RCVBUF = 4 << 20
_PEER_GONE = (errno.ECONNREFUSED, errno.ENOENT, errno.ENOTCONN)

PeerAddress = str | bytes


class DatagramPeerLink:
    """One guest: the socket address its datagrams come from."""

    def __init__(self, description: str, sock: socket.socket, address: PeerAddress,
                 drops: Counter[str] | None = None) -> None:
        self.description = description
        self.address = address
        self._sock = sock
        self._open = True
        #: frames to the guest dropped, by reason (the transport's counter, shared by its links)
        self.drops: Counter[str] = drops if drops is not None else Counter()

    @property
    def is_open(self) -> bool:
        return self._open

    def close(self) -> None:
        self._open = False

    def send_frame(self, frame: bytes) -> None:
        if not self._open:
            self.drops["dgram: guest gone"] += 1
            return
        try:
            self._sock.sendto(frame, self.address)
        except BlockingIOError:  # the peer's receive queue is full
            self.drops["dgram: peer not reading, queue full"] += 1
        except OSError as e:
            if e.errno in _PEER_GONE:
                self.drops["dgram: peer socket gone"] += 1
                if self._open:
                    log.info("guest detached: %s (its socket is gone: %s)", self.description, e.strerror)
                self._open = False
            else:
                self.drops[f"dgram: send failed ({e.strerror})"] += 1


class UnixDatagramTransport:
    """Serve guests on a bound SOCK_DGRAM socket. Subclasses name the `kind` and an optional `greeting`."""

    #: for logs and the ready line
    kind = "unix-dgram"
    #: a datagram that announces a peer and is not a frame (vfkit's b"VFKT"), or None
    greeting: bytes | None = None

    def __init__(self, path: str, *, max_peers: int = MAX_PEERS) -> None:
        self.path = path
        self.description = f"{self.kind} {path}"
        self.max_peers = max_peers
        self._peers: OrderedDict[PeerAddress, DatagramPeerLink] = OrderedDict()
        self._logged: set[tuple[PeerAddress | None, str]] = set()
        #: datagrams dropped before reaching the stack, and frames its links could not send, by reason
        self.drops: Counter[str] = Counter()

    @property
    def links(self) -> list[DatagramPeerLink]:
        return list(self._peers.values())

    async def run(self, on_frame: FrameHandler, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        sock = bind_unix(self.path, socket.SOCK_DGRAM)
        try:
            for option, size in ((socket.SO_SNDBUF, _SNDBUF), (socket.SO_RCVBUF, _RCVBUF)):
                try:
                    sock.setsockopt(socket.SOL_SOCKET, option, size)
                except OSError:
                    pass  # capped by net.core.*mem_max: the default still works
            task_status.started()
            while True:
                await trio.lowlevel.wait_readable(sock)
                for _ in range(_RECEIVES_PER_WAKEUP):
                    try:
                        data, _, flags, address = sock.recvmsg(_RECEIVE_BUFFER)
                    except BlockingIOError:
                        break
                    except OSError as e:  # nothing a peer sends causes this; keep serving
                        self._note(None, f"receive failed: {e.strerror}")
                        break
                    self._receive(sock, data, flags, address, on_frame)
                await trio.lowlevel.checkpoint()
        finally:
            for link in self._peers.values():
                link.close()
            trio.lowlevel.notify_closing(sock)
            sock.close()
            remove_socket_file(self.path)

    def _receive(self, sock: socket.socket, data: bytes, flags: int, address: PeerAddress | None,
                 on_frame: FrameHandler) -> None:
        if not address:
            self._note(None, "datagram from an unbound socket, which cannot be answered: bind the peer's socket "
                             "(QEMU: local.type=unix,local.path=...)")
            return
        if flags & socket.MSG_TRUNC:
            self._note(address, f"datagram larger than {_RECEIVE_BUFFER} bytes dropped")
            return
        link = self._link_for(sock, address)
        if self.greeting is not None and data == self.greeting:
            return  # announces the peer (now known); not a frame
        on_frame(data, link)

    def _link_for(self, sock: socket.socket, address: PeerAddress) -> DatagramPeerLink:
        link = self._peers.get(address)
        if link is not None and link.is_open:
            self._peers.move_to_end(address)
            return link
        if link is None and len(self._peers) >= self.max_peers:
            _, oldest = self._peers.popitem(last=False)
            oldest.close()
            log.info("guest forgotten: %s (more than %d senders)", oldest.description, self.max_peers)
        link = DatagramPeerLink(f"{self.description} <- {_format_address(address)}", sock, address, self.drops)
        self._peers[address] = link
        self._peers.move_to_end(address)
        log.info("guest attached: %s", link.description)
        return link

    def _note(self, address: PeerAddress | None, problem: str) -> None:
        """Count a dropped datagram; log each kind of problem once per sender."""
        reason = problem.partition(",")[0]
        self.drops[f"{self.kind}: {reason}"] += 1
        if (address, reason) not in self._logged and len(self._logged) < 1024:
            self._logged.add((address, reason))
            who = f" from {_format_address(address)}" if address else ""
            log.warning("%s: %s%s (logged once; counted in drops)", self.description, problem, who)


def _format_address(address: PeerAddress) -> str:
    if isinstance(address, bytes):  # the abstract namespace: a leading NUL
        return "@" + address[1:].decode("utf-8", "replace")
    return address
