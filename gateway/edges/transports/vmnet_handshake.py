"""The server side of the hyperkit/vpnkit "vmnet" handshake, sans-IO.

The wire format is vpnkit's (src/hostnet/vmnet.ml, modules Init, Command, Vif,
Response; hyperkit's client is src/lib/pci_virtio_net_vpnkit.c), all integers
little-endian:

1. The client sends Init, 49 bytes: ASCII ``VMN3T`` + u32 version + a 40-byte
   commit string. We answer with our own Init (version 22). A client with
   another version gets our Init and then the connection is closed (vpnkit:
   "write our version before disconnecting"); no Response is sent.
2. The client sends a Command, 41 bytes: ``0x01`` + 36-byte ASCII UUID
   (Ethernet), or ``0x08`` + UUID + u32 preferred IPv4 (Preferred_ipv4; the
   u32 is the address read as a little-endian integer, so the wire bytes are
   the address's bytes reversed). A UUID of 36 NUL bytes asks the server to
   generate one (vpnkit: "generate random uuid on behalf of client").
3. We answer with a Response, 258 bytes zero-padded: ``0x01`` + u16 MTU + u16
   max packet size (vpnkit: MTU + 50) + the guest's 6-byte MAC; or ``0x02`` +
   u8 length + reason, a disconnect (vpnkit sends it for an unsupported command
   or when it cannot assign the guest; we also send it for an invalid UUID or
   unknown command, where vpnkit just closes).
4. Then frames, each preceded by a u16 length (`framing.VMNET_PREFIX`).

Use: feed whatever bytes arrived to `VmnetHandshake.receive`; it returns events.
`SendBytes` must be written to the client; `GuestRequest` asks the caller to
`accept(mac)` or `refuse(reason)` (both return the Response to write);
`Rejected` means: write its bytes (if any), then close. After `accept`,
`leftover` holds frame bytes the client sent early.
"""

from __future__ import annotations

import hashlib
import re
import struct
import uuid as uuid_module
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["VmnetHandshake", "SendBytes", "GuestRequest", "Rejected", "mac_for_uuid",
           "INIT", "INIT_SIZE", "COMMAND_SIZE", "RESPONSE_SIZE", "VMNET_VERSION", "MAX_PACKET_EXTRA",
           "encode_init", "encode_disconnect", "COMMAND_ETHERNET", "COMMAND_PREFERRED_IPV4"]

MAGIC = b"VMN3T"
VMNET_VERSION = 22  # vpnkit's Init.default.version (older hyperkit/vpnkit used 2)
#: vpnkit's Init.default.commit: a placeholder its clients ignore
OUR_COMMIT = b"0123456789012345678901234567890123456789"
_INIT = struct.Struct("<5sI40s")
INIT_SIZE = _INIT.size  # 49
COMMAND_SIZE = 1 + 36 + 4  # 41
RESPONSE_SIZE = 1 + 1 + 256  # 258
COMMAND_ETHERNET = 0x01
COMMAND_PREFERRED_IPV4 = 0x08
_RESPONSE_VIF = 0x01
_RESPONSE_DISCONNECT = 0x02
_VIF = struct.Struct("<BHH6s")
#: vpnkit's Vif.create: max_packet_size = mtu + 50
MAX_PACKET_EXTRA = 50
_NIL_UUID = b"\0" * 36
_UUID_TEXT = re.compile(rb"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


def encode_init(version: int = VMNET_VERSION, commit: bytes = OUR_COMMIT) -> bytes:
    return _INIT.pack(MAGIC, version, commit)


INIT = encode_init()


def mac_for_uuid(guest_uuid: str) -> bytes:
    """The guest MAC for a vmnet UUID: stable across reconnects, locally administered unicast.

    02 followed by the first five bytes of SHA-256 of the lower-case UUID text:
    the 0x02 first byte has the locally-administered bit set and the multicast
    bit clear (IEEE 802 address rules), as gvisor-tap-vsock's randomMac does.
    """
    return b"\x02" + hashlib.sha256(guest_uuid.lower().encode("ascii")).digest()[:5]


@dataclass(frozen=True)
class SendBytes:
    """Write these bytes to the client."""

    data: bytes


@dataclass(frozen=True)
class GuestRequest:
    """The client asked to attach a guest: call `accept(mac)` or `refuse(reason)`."""

    uuid: str
    #: the preferred IPv4 address (4 bytes, network order) of a 0x08 command, else None
    preferred_ip: bytes | None
    #: True when the client sent a nil UUID and this one was generated for it
    uuid_generated: bool


@dataclass(frozen=True)
class Rejected:
    """The handshake failed: write `data` (may be empty), then close the connection."""

    reason: str
    data: bytes = b""


Event = SendBytes | GuestRequest | Rejected


class VmnetHandshake:
    """One connection's handshake, from the server's side."""

    def __init__(self, *, mtu: int, new_uuid: Callable[[], str] = lambda: str(uuid_module.uuid4())) -> None:
        self.mtu = mtu
        #: u16 on the wire, so an MTU near 65535 gets the largest size the field can say
        self.max_packet_size = min(mtu + MAX_PACKET_EXTRA, 0xFFFF)
        self._new_uuid = new_uuid
        self._buffer = bytearray()
        self._state = "init"  # init -> command -> decide -> attached | closed
        self.client_version: int | None = None

    @property
    def state(self) -> str:
        return self._state

    @property
    def leftover(self) -> bytes:
        """Bytes received after the Command: the start of the frame stream."""
        return bytes(self._buffer) if self._state == "attached" else b""

    def receive(self, data: bytes) -> list[Event]:
        """Take bytes from the client; return what to do next (nothing while a message is incomplete)."""
        if self._state in ("decide", "attached", "closed"):
            self._buffer += data  # frames sent before our Response arrived; kept for `leftover`
            return []
        self._buffer += data
        events: list[Event] = []
        if self._state == "init":
            if len(self._buffer) < INIT_SIZE:
                return events
            magic, version, _commit = _INIT.unpack_from(self._buffer)
            del self._buffer[:INIT_SIZE]
            self.client_version = version
            if magic != MAGIC:
                # vpnkit only checks the version; a wrong magic is not a vmnet client at all
                self._state = "closed"
                return [Rejected(f"not a vmnet client (Init magic {bytes(magic)!r}, expected {MAGIC!r})", INIT)]
            if version != VMNET_VERSION:
                self._state = "closed"
                return [Rejected(f"client speaks vmnet protocol version {version}, we speak {VMNET_VERSION}", INIT)]
            events.append(SendBytes(INIT))
            self._state = "command"
        if self._state == "command":
            if len(self._buffer) < COMMAND_SIZE:
                return events
            command = bytes(self._buffer[:COMMAND_SIZE])
            del self._buffer[:COMMAND_SIZE]
            events.append(self._parse_command(command))
        return events

    def _parse_command(self, command: bytes) -> GuestRequest | Rejected:
        code = command[0]
        if code not in (COMMAND_ETHERNET, COMMAND_PREFERRED_IPV4):
            # 0x06 is vpnkit's Bind_ipv4, which it refuses too ("Unsupported command")
            return self._reject(f"unsupported command 0x{code:02x}")
        raw_uuid = command[1:37]
        generated = raw_uuid == _NIL_UUID
        if generated:
            guest_uuid = self._new_uuid()
        elif _UUID_TEXT.fullmatch(raw_uuid):
            guest_uuid = raw_uuid.decode("ascii").lower()
        else:
            return self._reject(f"invalid UUID {raw_uuid!r}")
        preferred_ip = None
        if code == COMMAND_PREFERRED_IPV4:
            preferred_ip = command[37:41][::-1]  # little-endian u32 -> network byte order
            if preferred_ip == b"\0\0\0\0":
                preferred_ip = None  # 0.0.0.0: no preference
        self._state = "decide"
        return GuestRequest(guest_uuid, preferred_ip, generated)

    def accept(self, mac: bytes) -> bytes:
        """The Response that attaches the guest with `mac`; frames follow it."""
        if self._state != "decide":
            raise RuntimeError(f"accept() in state {self._state!r}")
        if len(mac) != 6:
            raise ValueError("a MAC is 6 bytes")
        self._state = "attached"
        return _VIF.pack(_RESPONSE_VIF, self.mtu, self.max_packet_size, mac).ljust(RESPONSE_SIZE, b"\0")

    def refuse(self, reason: str) -> bytes:
        """The Response that turns the guest away with `reason`; then close the connection."""
        if self._state != "decide":
            raise RuntimeError(f"refuse() in state {self._state!r}")
        return self._reject(reason).data

    def _reject(self, reason: str) -> Rejected:
        self._state = "closed"
        return Rejected(reason, encode_disconnect(reason))


def encode_disconnect(reason: str) -> bytes:
    """Response 0x02: u8 length + the reason (at most 255 bytes of it), zero-padded to 258 bytes."""
    text = reason.encode("utf-8", "replace")[:255]
    return (bytes((_RESPONSE_DISCONNECT, len(text))) + text).ljust(RESPONSE_SIZE, b"\0")
