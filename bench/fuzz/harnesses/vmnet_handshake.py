"""The vmnet handshake (hyperkit/vpnkit): Init, Command, then our Response.

Input: byte 0 picks how the bytes are cut into reads (1..16 bytes each, or all at once),
byte 1 whether we accept or refuse, the rest is what the client sends. Properties: no
exception escapes; whatever the cuts, the events are the same; we send our 49-byte Init
only after a valid Init, a 258-byte Response only after a valid Command; a Rejected
ends the handshake (nothing more happens); the leftover is exactly what followed the Command.
"""

from __future__ import annotations

from bench.fuzz.frame_checks import require
from gateway.edges.transports.vmnet_handshake import (COMMAND_SIZE, INIT, INIT_SIZE, RESPONSE_SIZE, GuestRequest,
                                                      Rejected, SendBytes, VmnetHandshake)

NAME = "vmnet_handshake"
MAC = bytes.fromhex("f2d1a2000001")


def seeds() -> list[bytes]:
    uuid = b"4a3a5b2c-1111-2222-3333-444455556666"
    return [b"\x00\x00" + INIT + b"\x01" + uuid + bytes(4) + b"\x10\x00frame",
            b"\x03\x01" + INIT + b"\x08" + uuid + bytes([3, 65, 168, 192]),
            b"\x07\x00" + INIT + b"\x01" + bytes(40)]


def _run(chunks: list[bytes], accept: bool) -> tuple[list[tuple], bytes, str]:
    handshake = VmnetHandshake(mtu=1500, new_uuid=lambda: "00000000-0000-4000-8000-000000000001")
    log: list[tuple] = []
    for chunk in chunks:
        for event in handshake.receive(chunk):
            if type(event) is SendBytes:
                require(event.data == INIT and len(event.data) == INIT_SIZE, "we sent something else than our Init")
                log.append(("init",))
            elif type(event) is GuestRequest:
                response = handshake.accept(MAC) if accept else handshake.refuse("refused by the fuzzer")
                require(len(response) == RESPONSE_SIZE, f"a Response of {len(response)} bytes")
                log.append(("request", event.uuid, event.preferred_ip, response))
            elif type(event) is Rejected:
                require(len(event.data) in (INIT_SIZE, RESPONSE_SIZE), "a rejection of the wrong size")
                log.append(("rejected", event.data))
            else:
                raise AssertionError(f"unknown event {event!r}")
    return log, handshake.leftover, handshake.state


def check(data: bytes) -> None:
    if len(data) < 2:
        return
    cut, accept, stream = data[0] % 17, data[1] & 1, data[2:]
    whole = _run([stream], bool(accept))
    pieces = [stream[i:i + cut] for i in range(0, len(stream), cut)] if cut else [stream]
    require(_run(pieces, bool(accept)) == whole, "the events depend on how the bytes were cut")
    log, leftover, state = whole
    kinds = [entry[0] for entry in log]
    require(kinds in ([], ["init"], ["init", "request"], ["rejected"], ["init", "rejected"]), f"events {kinds}")
    if state == "attached":
        require(accept and leftover == stream[INIT_SIZE + COMMAND_SIZE:], "leftover is not what followed the Command")
    else:
        require(leftover == b"", "leftover before attaching")
