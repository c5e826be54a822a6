"""The runtime's wiring: a vmnet guest's preferred address is held for it in DHCP; counters; MAC routing."""

import trio
from scapy.layers.dhcp import BOOTP, DHCP
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether
from test_transport_harness import running_gateway
from test_transport_vmnet import UUID_A, UUID_B, VmnetPeer

from gateway.transports.vmnet import VmnetTransport

TIMEOUT = 10


def discover(mac: str) -> bytes:
    chaddr = bytes.fromhex(mac.replace(":", ""))
    return bytes(Ether(src=mac, dst="ff:ff:ff:ff:ff:ff") / IP(src="0.0.0.0", dst="255.255.255.255")
                 / UDP(sport=68, dport=67) / BOOTP(chaddr=chaddr, xid=0x1234, flags=0x8000)
                 / DHCP(options=[("message-type", "discover"), "end"]))


async def test_a_vmnet_guests_preferred_address_is_offered_to_it_and_refused_to_another(tmp_path):
    path = str(tmp_path / "vmnet.sock")
    with trio.fail_after(TIMEOUT):
        async with running_gateway(VmnetTransport(path)) as gateway:
            a = await VmnetPeer.connect(path)
            assert (await a.handshake(UUID_A, preferred_ip="192.168.65.77"))[0] == 0x01
            await a.send(discover(a.mac))
            offer = Ether(await a.receive())
            assert offer[BOOTP].yiaddr == "192.168.65.77"
            assert ("message-type", 2) in offer[DHCP].options

            b = await VmnetPeer.connect(path)
            response = await b.handshake(UUID_B, preferred_ip="192.168.65.77")
            assert response[0] == 0x02  # disconnect, with the reason
            assert b"192.168.65.77 is not available" in response
            assert gateway.counters()["frames_received"] == 1
            a.close()
            b.close()
