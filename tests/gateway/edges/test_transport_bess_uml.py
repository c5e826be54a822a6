"""`--bess` with a real guest: Debian's user-mode-linux, whose vector driver speaks bess itself.

The in-process tests (test_transport_bess.py) talk to a peer written from the same notes as the
transport. Here the peer is UML's own `vec0:transport=bess` (Linux arch/um/drivers/vector_*.c:
a SOCK_SEQPACKET connection, one frame per packet), a Linux kernel with its own ARP, ICMP and UDP
stacks, running the host's real clients inside it (tests/realpeers/uml.py): the gateway must
give it a DHCP lease naming the gateway as NTP server (option 42), and answer its ARP, its ping
and its NTP queries to that server. The guest's clients run in query mode only
(`ntpdig -j`, `chronyd -Q`); no clock is set anywhere.
"""

import re

import pytest

from gateway_process import GatewayProcess
from realpeers import uml

MISSING = uml.missing()

pytestmark = [pytest.mark.clients, pytest.mark.slow,
              pytest.mark.skipif(bool(MISSING), reason="missing: " + ", ".join(MISSING))]


def test_a_uml_guest_on_bess_gets_dhcp_arp_ping_and_ntp_answered(tmp_path):
    path = tmp_path / "bess.sock"
    with GatewayProcess("run", "--bess", str(path)) as gateway:
        run = uml.boot_on_bess(path)
    where = f"\n--- UML console ---\n{run.console}\n--- hostclock stderr ---\n{gateway.stderr}"
    assert not run.errors, f"the guest reported {run.errors}{where}"
    assert "done" in run.results, f"the guest did not finish{where}"
    lease = dict(field.split("=", 1) for field in run.results.get("lease", "").split())
    assert lease.get("ntpsrv") == lease.get("router") == "192.168.65.1", f"lease {lease}{where}"  # option 42
    assert lease.get("ip", "").startswith("192.168.65.") and lease.get("mask") == "24", lease
    assert run.count("arp") == 2, f"ARP: {run.results.get('arp')}{where}"  # busybox arping -c 2
    assert run.count("ping") == 2, f"ping: {run.results.get('ping')}{where}"
    reply = run.ntpdig()
    assert reply is not None, f"ntpdig gave no answer{where}"
    assert reply["stratum"] == 10 and reply["leap"] == "no-leap" and reply["adjusted"] is False, reply
    chronyd = run.chronyd_offset()
    assert chronyd is not None, f"chronyd -Q gave no offset{where}"
    # chronyd printing an offset means it accepted the reply: it rejects LI 3, stratum 0 or 16, an
    # originate that is not its transmit, a large root dispersion. UML's clock is its own (set from
    # the host's at boot, then kept by UML's timers): measured 0.3-220 ms off here, and the two
    # clients, a second apart, disagreed by up to 18 ms on a loaded machine, so only a bound that
    # a garbled timestamp would break
    assert abs(reply["offset"]) < 1.0 and abs(chronyd) < 1.0, (reply["offset"], chronyd)
    print(f"\nUML guest on bess: ntpdig offset {reply['offset']:+.6f} s, chronyd -Q {chronyd:+.6f} s")
    # and the gateway saw one bess guest attach and leave
    assert re.search(r"guest attached: bess \S+ #1", gateway.stderr), gateway.stderr
    assert gateway.returncode == 0, gateway.stderr
