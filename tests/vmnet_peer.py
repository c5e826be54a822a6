"""A vmnet client for the tests whose every byte follows hyperkit's own client and vpnkit's codec.

Not written from this project's notes (gateway/edges/transports/vmnet_handshake.py was): each
message below is laid out as the anchors' published source lays it out, and cites where.

hyperkit, the VM's side (moby/hyperkit at 3cb0d5475244761c61e6fd4a562702c26b46f846,
src/lib/pci_virtio_net_vpnkit.c):

* https://github.com/moby/hyperkit/blob/3cb0d5475244761c61e6fd4a562702c26b46f846/src/lib/pci_virtio_net_vpnkit.c#L88-L137
  the packed wire structs: msg_init {u8 magic[5]; u32 version; u8 commit[40]} (49 bytes);
  msg_command {u8 command; union {char uuid[36]; {char uuid[36]; in_addr_t ip}}} (41 bytes);
  msg_response {u8 response_type; union {{u8 len; char msg[256]}; {u16 mtu; u16 max_packet_size;
  u8 mac[6]}}} (258 bytes); CMD_ETHERNET 1, CMD_PREFERRED_IPV4 8, RESP_VIF 1, RESP_DISCONNECT 2.
  On macOS (little-endian) the u16/u32 fields are little-endian.
* ...#L316-L398 `vpnkit_connect`: write Init (magic "VMN3T", version 22, the 40 characters of the
  build's VERSION_SHA1), read the server's 49-byte Init (the magic must match; another version is
  only warned about), write the command from a zeroed struct (`memset(&cmd, 0, sizeof(cmd))`, so
  an Ethernet command ends in 4 zero bytes), the preferred IPv4 as `OSSwapInt32(s_addr)`; read 258
  bytes; RESP_VIF gives mtu, max_packet_size and mac, RESP_DISCONNECT a length and a reason.
* ...#L599-L665 `vmn_read`/`vmn_write`: each frame is a 2-byte little-endian length
  (`header[0] = length & 0xff; header[1] = length >> 8`) written with one write, then the frame
  with a second (`writev`); a frame longer than max_packet_size is never sent (`assert`).
* ...#L728-L748 `pci_vtnet_tap_tx`: a frame shorter than 60 bytes is padded with zeros to 60.

vpnkit, the server's codec (moby/vpnkit at dcfd7913e2768c01e32b41982f2f588ab136f048,
src/hostnet/vmnet.ml):

* https://github.com/moby/vpnkit/blob/dcfd7913e2768c01e32b41982f2f588ab136f048/src/hostnet/vmnet.ml#L12-L44
  Init: sizeof 5 + 4 + 40, version 22, commit "0123456789012345678901234567890123456789",
  version as LE u32 at offset 5.
* ...#L46-L117 Command: sizeof 1 + 36 + 4; a UUID of 36 NUL bytes makes the server generate one;
  Preferred_ipv4 as `Cstruct.LE.set_uint32 (Ipaddr.V4.to_int32 ip)`.
* ...#L119-L153 Vif: `max_packet_size = mtu + 50`; LE u16 mtu, LE u16 max_packet_size, 6-byte MAC.
* ...#L155-L192 Response: sizeof 1 + 1 + 256, in a zero-filled buffer (`Cstruct.create`, L276-L285).
* ...#L195-L204 Packet: a u16 little-endian length before each frame.
* ...#L271-L320 `server_negotiate`: a client of another version gets the server's Init, then the
  connection ends.
"""

from __future__ import annotations

import hashlib
import os
import socket
import struct

import trio

from gateway.core.addresses import format_mac

UUID_A = "11111111-2222-4333-8444-555555555555"
UUID_B = "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee"
#: the server's Init as vpnkit writes it (vmnet.ml L24-L36): "VMN3T", LE u32 22, its placeholder commit
OUR_INIT = b"VMN3T" + struct.pack("<I", 22) + b"0123456789012345678901234567890123456789"

# hyperkit's packed structs (pci_virtio_net_vpnkit.c L88-L137), little-endian as on macOS
MSG_INIT = struct.Struct("<5sI40s")  # 49
MSG_COMMAND = struct.Struct("<B36s4s")  # 41: command, uuid, (in_addr_t ip | the union's 4 zeroed bytes)
MSG_RESPONSE_SIZE = 1 + 1 + 256  # 258: the union's larger member is disconnect_reason
VIF_INFO = struct.Struct("<HH6s")
CMD_ETHERNET, CMD_PREFERRED_IPV4 = 1, 8
RESP_VIF, RESP_DISCONNECT = 1, 2
#: hyperkit's VERSION_SHA1: a build's 40-character commit id (any will do: the server ignores it)
HYPERKIT_COMMIT = b"3cb0d5475244761c61e6fd4a562702c26b46f846"
#: vpnkit's own client sends Init.default, whose commit is a placeholder (vmnet.ml L26-L30)
VPNKIT_COMMIT = b"0123456789012345678901234567890123456789"
#: pci_vtnet_tap_tx pads shorter frames to this (L732-L745)
MIN_FRAME = 60


def expected_mac(uuid: str) -> bytes:
    """Our documented rule: 02 + the first 5 bytes of SHA-256 of the lower-case UUID."""
    return b"\x02" + hashlib.sha256(uuid.lower().encode()).digest()[:5]


def preferred_ipv4_field(ip: str) -> bytes:
    """The command's 4 address bytes as hyperkit writes them: `OSSwapInt32(s_addr)` stored little-endian.

    `s_addr` is the address in network order read as a native (little-endian) u32; swapping it and
    storing that little-endian gives the address's bytes reversed, which is what vpnkit's
    `LE.get_uint32` then reads back as `Ipaddr.V4.of_int32` (vmnet.ml L108-L110).
    """
    (s_addr,) = struct.unpack("<I", socket.inet_aton(ip))
    swapped = struct.unpack(">I", struct.pack("<I", s_addr))[0]  # OSSwapInt32
    return struct.pack("<I", swapped)


class VmnetPeer:
    """A hyperkit-like client (see the module docstring for where each byte comes from)."""

    def __init__(self, sock: trio.socket.SocketType) -> None:
        self.sock = sock
        self.buffer = b""
        self.mac = ""
        #: RESP_VIF's max_packet_size; hyperkit never sends a longer frame
        self.max_packet_size = 0

    @classmethod
    async def connect(cls, path: str) -> "VmnetPeer":
        sock = trio.socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)  # hyperkit: socket(AF_UNIX, SOCK_STREAM, 0)
        await sock.connect(path)
        return cls(sock)

    async def recv_exactly(self, n: int) -> bytes:
        """hyperkit's `really_read`: exactly `n` bytes, or EOF is an error."""
        while len(self.buffer) < n:
            data = await self.sock.recv(65536)
            if not data:
                raise EOFError(f"EOF after {len(self.buffer)} of {n} bytes")
            self.buffer += data
        data, self.buffer = self.buffer[:n], self.buffer[n:]
        return data

    async def read_to_eof(self) -> bytes:
        data = self.buffer
        self.buffer = b""
        while chunk := await self.sock.recv(65536):
            data += chunk
        return data

    def pending(self) -> bytes:
        """What has arrived and not been read yet, without waiting: b"" when nothing more came."""
        data = self.buffer
        with socket.socket(fileno=os.dup(self.sock.fileno())) as peek:  # a plain, non-blocking view of it
            peek.setblocking(False)
            while True:
                try:
                    chunk = peek.recv(65536)
                except BlockingIOError:
                    return data
                if not chunk:
                    return data
                data += chunk

    async def send_init(self, version: int = 22, commit: bytes = HYPERKIT_COMMIT) -> None:
        await self.sock.send(MSG_INIT.pack(b"VMN3T", version, commit))

    async def handshake(self, uuid: str | bytes, preferred_ip: str | None = None, *,
                        commit: bytes = HYPERKIT_COMMIT) -> bytes:
        """`vpnkit_connect`: Init both ways, the command, the 258-byte response (returned; the MAC kept).

        `commit`: hyperkit sends its build's SHA-1; vpnkit's own client (`client_negotiate`,
        vmnet.ml L322-L356) sends `Init.default`'s placeholder, VPNKIT_COMMIT.
        """
        await self.send_init(commit=commit)
        init_reply = await self.recv_exactly(MSG_INIT.size)
        magic, version, _commit = MSG_INIT.unpack(init_reply)
        assert magic == b"VMN3T", init_reply  # hyperkit gives up on another magic
        assert init_reply == OUR_INIT, init_reply  # vpnkit's own Init, byte for byte
        raw_uuid = uuid.encode() if isinstance(uuid, str) else uuid
        if preferred_ip is None:
            command = MSG_COMMAND.pack(CMD_ETHERNET, raw_uuid, bytes(4))  # the memset's zeros
        else:
            command = MSG_COMMAND.pack(CMD_PREFERRED_IPV4, raw_uuid, preferred_ipv4_field(preferred_ip))
        await self.sock.send(command)
        response = await self.recv_exactly(MSG_RESPONSE_SIZE)
        if response[0] == RESP_VIF:
            _mtu, self.max_packet_size, mac = VIF_INFO.unpack_from(response, 1)
            self.mac = format_mac(mac)
        return response

    async def send(self, frame: bytes) -> None:
        """`pci_vtnet_tap_tx` + `vmn_write`: pad to 60, then the 2-byte header and the frame in two writes."""
        frame = frame.ljust(MIN_FRAME, b"\0")
        assert not self.max_packet_size or len(frame) <= self.max_packet_size, "hyperkit asserts this"
        await self.sock.send(bytes([len(frame) & 0xFF, (len(frame) >> 8) & 0xFF]))
        await trio.sleep(0)  # two writes, as hyperkit's: let the server read the header on its own
        await self.sock.send(frame)

    async def receive(self) -> bytes:
        """`vmn_read`: a 2-byte little-endian length, then that many bytes."""
        header = await self.recv_exactly(2)
        return await self.recv_exactly((header[0] & 0xFF) | ((header[1] & 0xFF) << 8))

    def close(self) -> None:
        self.sock.close()
