"""`--bess` with a real guest: Debian's user-mode-linux, whose vector driver speaks bess itself.

The in-process tests (test_transport_bess.py) talk to a peer written from the same notes as the
transport. Here the peer is UML's own `vec0:transport=bess` (Linux arch/um/drivers/vector_*.c:
a SOCK_SEQPACKET connection, one frame per packet), a Linux kernel with its own ARP, ICMP and UDP
stacks, running the host's real clients inside it (tests/realpeers/uml.py): the gateway must
answer its ARP, its ping and its NTP queries. The guest's clients run in query mode only
(`ntpdig -j`, `chronyd -Q`); no clock is set anywhere.
"""

import re

import pytest

from gateway_process import GatewayProcess
from realpeers import uml

MISSING = uml.missing()

pytestmark = [pytest.mark.clients, pytest.mark.slow,
              pytest.mark.skipif(bool(MISSING), reason="missing: " + ", ".join(MISSING))]


def test_a_uml_guest_on_bess_gets_arp_ping_and_ntp_answered(tmp_path):
    path = tmp_path / "bess.sock"
    with GatewayProcess("run", "--bess", str(path), "--no-dhcp") as gateway:
        run = uml.boot_on_bess(path)
    where = f"\n--- UML console ---\n{run.console}\n--- hostclock stderr ---\n{gateway.stderr}"
    assert not run.errors, f"the guest reported {run.errors}{where}"
    assert "done" in run.results, f"the guest did not finish{where}"
    assert run.count("arp") == 2, f"ARP: {run.results.get('arp')}{where}"  # busybox arping -c 2
    assert run.count("ping") == 2, f"ping: {run.results.get('ping')}{where}"
    reply = run.ntpdig()
    assert reply is not None, f"ntpdig gave no answer{where}"
    assert reply["stratum"] == 10 and reply["leap"] == "no-leap" and reply["adjusted"] is False, reply
    chronyd = run.chronyd_offset()
    assert chronyd is not None, f"chronyd -Q gave no offset{where}"
    # UML's clock is its own (set from the host's at boot): both clients measure the same error of it
    assert abs(reply["offset"]) < 1.0 and abs(chronyd) < 1.0, (reply["offset"], chronyd)
    assert abs(reply["offset"] - chronyd) < 0.005, (reply["offset"], chronyd)
    print(f"\nUML guest on bess: ntpdig offset {reply['offset']:+.6f} s, chronyd -Q {chronyd:+.6f} s")
    # and the gateway saw one bess guest attach and leave
    assert re.search(r"guest attached: bess \S+ #1", gateway.stderr), gateway.stderr
    assert gateway.returncode == 0, gateway.stderr
