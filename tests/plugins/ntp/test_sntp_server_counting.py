"""SntpServer.answered counts a reply before the client can hold it.

The serving thread once counted a reply only after `sendto` had returned, so a client that got
its answer (and a test that then read the counter) could see `answered == 0`: that flaked
tests/plugins/ntp/test_sntp_clients.py once. Here the serving socket's `sendto` lingers after
the datagram has left, which turns that window from microseconds into 300 ms.
"""

from __future__ import annotations

import socket
import time

import trio

from plugins.ntp.config import NtpConfig
from plugins.ntp.drops import SntpDrop
from plugins.ntp.kernel_state import KernelTimeState, LeapPending
from plugins.ntp.server import SntpServer

SYNCED = KernelTimeState(synchronised=True, leap=LeapPending.NONE, maxerror_us=1000, esterror_us=10)
REQUEST = bytes([0x23, 0, 6, 0xEC]) + bytes(36) + bytes.fromhex("0102030405060708")


class LingeringAfterSend(socket.socket):
    """A socket whose replies (48 bytes and more) leave at once but whose `sendto` returns late."""

    def sendto(self, data, *args):
        sent = super().sendto(data, *args)
        if len(data) >= 48:
            time.sleep(0.3)
        return sent


async def test_a_reply_the_client_holds_is_already_counted(monkeypatch):
    monkeypatch.setattr(socket, "socket", LingeringAfterSend)
    server = SntpServer(NtpConfig(), read_kernel_state=lambda: SYNCED)
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            address = await nursery.start(server.run)
            with trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_DGRAM) as client:
                await client.connect(address)
                for n in range(1, 4):
                    await client.send(REQUEST)
                    reply = await client.recv(2048)
                    assert reply[24:32] == REQUEST[40:48]
                    assert server.answered == n and not server.drops
            nursery.cancel_scope.cancel()


async def test_a_reply_that_cannot_be_sent_is_not_counted(monkeypatch):
    class RefusingSend(socket.socket):
        def sendto(self, data, *args):
            if len(data) >= 48:
                raise BlockingIOError(11, "full send buffer")
            return super().sendto(data, *args)

    monkeypatch.setattr(socket, "socket", RefusingSend)
    server = SntpServer(NtpConfig(), read_kernel_state=lambda: SYNCED)
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            address = await nursery.start(server.run)
            with trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_DGRAM) as client:
                await client.connect(address)
                await client.send(REQUEST)
                while not server.drops:
                    await trio.sleep(0.01)
            assert server.answered == 0 and dict(server.drops) == {SntpDrop.SEND_WOULD_BLOCK: 1}
            nursery.cancel_scope.cancel()
