"""The replay corpus (pcaps/): every frame of every capture gets what the RFCs require, and the
replay's output still matches its golden, byte for byte, every run.

Two different checks:

* The RFC expectations (`test_every_frame_gets_what_the_rfcs_require`) are the
  proof: pcaps/rfc_expectations.py reads each capture with scapy and decides,
  from the RFCs' rules alone and without any of the gateway's code, whether
  each frame must be answered, with which reply fields, or dropped and for
  which reason; the replay's per-frame outcome (`ReplayResult.frames`) is held
  to that.
* The goldens (`test_replay_matches_the_golden_output_and_outcome`) are a
  change detector, not a proof: pcaps/make_golden.py writes them by running
  the replay itself, so they say only that nothing changed since they were
  written. After an intended change in behaviour, re-run it and review the
  diff of pcaps/golden/ before committing.
"""

import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from recorded_exchanges import recorded_exchanges

from gateway.app.config import Config
from gateway.core.drops import Drop
from gateway.edges.pcap_reader import open_capture
from gateway.edges.pcap_writer import pcap_bytes
from gateway.replay.engine import parse_clock, replay
from gateway.replay.report import summary
from plugins.ntp.drops import SntpDrop

PCAPS = Path(__file__).resolve().parents[3] / "pcaps"


def _load(name):
    spec = importlib.util.spec_from_file_location(f"pcaps_{name}", PCAPS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[f"pcaps_{name}"] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


make_golden = _load("make_golden")
rfc = _load("rfc_expectations")
CORPUS = make_golden.corpus()
IDS = [f"{p.parent.name}/{p.name}" for p in CORPUS]

KNOWN_DROPS = {str(d) for d in Drop} | {str(d) for d in SntpDrop}
KNOWN_SKIPS = {"not from a guest (sent by the gateway)", "cut short by the capture's snap length"}


def _replay(capture: Path, clock: str):
    opened = open_capture(str(capture))
    config = Config()
    result = replay(opened.records(), config, parse_clock(clock))
    return pcap_bytes(result.output), summary(result, opened)


def test_the_corpus_is_all_there():
    groups = {p.parent.name for p in CORPUS}
    assert groups == {"clients", "hostile"}
    assert len([p for p in CORPUS if p.parent.name == "hostile"]) == len(_load("make_hostile").CAPTURES)
    clients = {p.name for p in CORPUS if p.parent.name == "clients"}
    assert {"ntpdig.pcap", "chronyd.pcap", "ntplib.pcap"} <= clients  # clock-safe: capture file names


#: the gateway's words for each reason the RFC expectations name (the decision is rfc_expectations.py's)
GATEWAY_WORDS = {
    rfc.Reason.NOT_ETHERNET: lambda e: f"link type {e.notes['linktype']} is not Ethernet (1)",
    rfc.Reason.SNAP_CUT: "cut short by the capture's snap length",
    rfc.Reason.FROM_GATEWAY: "not from a guest (sent by the gateway)",
    rfc.Reason.ETH_TRUNCATED: Drop.TRUNCATED_ETHERNET,
    rfc.Reason.ETH_NOT_FOR_US: Drop.NOT_FOR_US,
    rfc.Reason.ETH_MULTICAST: Drop.MULTICAST_MAC,
    rfc.Reason.ETH_BAD_SOURCE: Drop.BAD_SOURCE_MAC,
    rfc.Reason.ETH_VLAN: Drop.VLAN_TAGGED,
    rfc.Reason.ETH_IPV6: Drop.IPV6,
    rfc.Reason.ETH_LLC: Drop.LLC_FRAME,
    rfc.Reason.ETH_OTHER_TYPE: Drop.UNKNOWN_ETHERTYPE,
    rfc.Reason.ARP_TRUNCATED: Drop.TRUNCATED_ARP,
    rfc.Reason.ARP_NOT_ETHERNET_IPV4: Drop.ARP_NOT_ETHERNET_IPV4,
    rfc.Reason.ARP_BAD_SENDER: Drop.ARP_BAD_SENDER,
    rfc.Reason.ARP_NOT_REQUEST: Drop.ARP_NOT_REQUEST,
    rfc.Reason.ARP_NOT_FOR_US: Drop.ARP_NOT_FOR_US,
    rfc.Reason.IP_TRUNCATED: Drop.TRUNCATED_IPV4,
    rfc.Reason.IP_VERSION: Drop.BAD_IP_VERSION,
    rfc.Reason.IP_IHL: Drop.BAD_IHL,
    rfc.Reason.IP_TOTAL_LENGTH: Drop.BAD_TOTAL_LENGTH,
    rfc.Reason.IP_CHECKSUM: Drop.BAD_IP_CHECKSUM,
    rfc.Reason.IP_FRAGMENT: Drop.FRAGMENT,
    rfc.Reason.IP_NOT_FOR_US: Drop.IP_NOT_FOR_US,
    rfc.Reason.IP_UNICAST_IN_LINK_BROADCAST: Drop.UNICAST_IN_LINK_BROADCAST,
    rfc.Reason.IP_BAD_SOURCE: Drop.BAD_SOURCE_IP,
    rfc.Reason.IP_TCP: Drop.TCP_NOT_SERVED,
    rfc.Reason.IP_OTHER_PROTOCOL: Drop.UNKNOWN_PROTOCOL,
    rfc.Reason.ICMP_TRUNCATED: Drop.TRUNCATED_ICMP,
    rfc.Reason.ICMP_CHECKSUM: Drop.BAD_ICMP_CHECKSUM,
    rfc.Reason.ICMP_NOT_ECHO_REQUEST: Drop.ICMP_NOT_ECHO_REQUEST,
    rfc.Reason.REPLY_OVER_MTU: Drop.REPLY_OVER_MTU,
    rfc.Reason.UDP_TRUNCATED: Drop.TRUNCATED_UDP,
    rfc.Reason.UDP_LENGTH: Drop.BAD_UDP_LENGTH,
    rfc.Reason.UDP_CHECKSUM: Drop.BAD_UDP_CHECKSUM,
    rfc.Reason.UDP_BROADCAST_TO_NTP: Drop.BROADCAST_NOT_ACCEPTED,
    rfc.Reason.PORT_UNREACHABLE: Drop.PORT_UNREACHABLE,
    rfc.Reason.PORT_UNREACHABLE_NOT_FOR_BROADCAST: Drop.ICMP_ERROR_NOT_ALLOWED,
    rfc.Reason.PORT_UNREACHABLE_RATE_LIMITED: Drop.ICMP_ERROR_RATE_LIMITED,
    rfc.Reason.NTP_SHORT: "ntp: request shorter than 48 bytes",
    rfc.Reason.NTP_NOT_WORDS: "ntp: request length not a multiple of 4",
    rfc.Reason.NTP_VERSION: lambda e: f"ntp: version {e.notes['version']} (only 1-4 are answered)",
    rfc.Reason.NTP_MODE: lambda e: f"ntp: mode {e.notes['mode']} (only client requests, mode 3, are forwarded)",
}


def _in_gateway_words(reason, expectation) -> str:
    words = GATEWAY_WORDS[reason]
    return str(words(expectation) if callable(words) else words)


def test_every_reason_of_the_rfc_expectations_has_the_gateways_words():
    assert set(GATEWAY_WORDS) == set(rfc.Reason)


@pytest.mark.parametrize("clock", [make_golden.GOLDEN_CLOCK, "recorded"])
@pytest.mark.parametrize("capture", CORPUS, ids=IDS)
def test_every_frame_gets_what_the_rfcs_require(capture, clock):
    """Per frame: skipped or not, answered or not and with what, dropped for which reason, as
    pcaps/rfc_expectations.py derives from the capture and the RFCs (never from the gateway)."""
    opened = open_capture(str(capture))
    config = Config()
    result = replay(opened.records(), config, parse_clock(clock))
    outcomes = {fate.number: fate for fate in result.frames}
    expected = rfc.expectations(capture, lambda number: Drop.PORT_UNREACHABLE in outcomes[number].drops)
    assert expected, capture
    assert sorted(outcomes) == [e.number for e in expected], "the replay read other records than scapy did"
    # when each request reached the gateway on the replay's clock: the capture's own time, or the
    # fixed clock's start plus the time since the capture's first record
    first_ns = expected[0].ts_ns
    clock_start_ns = parse_clock(clock).start_ns if clock != "recorded" else first_ns
    wrong = []
    for e in expected:
        fate = outcomes[e.number]
        want_skip = _in_gateway_words(e.skip, e) if e.skip else None
        want_drops = [_in_gateway_words(e.drop, e)] if e.drop and not e.skip else []
        if fate.skipped != want_skip or fate.drops != want_drops:
            wrong.append(f"{e} -- but the replay: skipped {fate.skipped!r}, sent {len(fate.sent)}, "
                         f"dropped {fate.drops}")
            continue
        if not e.skip:
            arrival_ns = clock_start_ns + (e.ts_ns - first_ns)
            wrong += [f"#{e.number} ({e.reply.value}): {p}" for p in rfc.reply_problems(e, fate.sent, arrival_ns)]
    assert not wrong, "\n".join(wrong)


@pytest.mark.parametrize("capture", CORPUS, ids=IDS)
def test_replay_matches_the_golden_output_and_outcome(capture):
    """The change detector: the replay writes what it wrote when the goldens were made."""
    output, outcome_json = make_golden.replay_for_golden(capture)
    golden_pcap, golden_json = make_golden.golden_paths(capture)
    assert output == golden_pcap.read_bytes(), (
        f"run: python3 -m gateway replay {capture} --clock {make_golden.GOLDEN_CLOCK} --expect {golden_pcap}")
    assert json.loads(outcome_json) == json.loads(golden_json.read_text())
    assert outcome_json == golden_json.read_text()


@pytest.mark.parametrize("clock", ["recorded", make_golden.GOLDEN_CLOCK])
@pytest.mark.parametrize("capture", CORPUS, ids=IDS)
def test_replaying_twice_gives_the_same_bytes(capture, clock):
    assert _replay(capture, clock) == _replay(capture, clock)


@pytest.mark.parametrize("capture", CORPUS, ids=IDS)
def test_every_drop_and_skip_has_a_stated_reason(capture):
    _, report = _replay(capture, make_golden.GOLDEN_CLOCK)
    for reason in report["drops"]:
        assert reason in KNOWN_DROPS or reason.startswith(("ntp: ", "upstream: ")), reason
    for reason in report["skipped"]:
        assert reason in KNOWN_SKIPS or reason.startswith("link type "), reason
    for reason in report["capture_problems"]:
        assert reason.startswith("capture file: "), reason
    assert report["frames_read"] == report["frames_from_guest"] + sum(report["skipped"].values())
    # the engine counts a guest frame with neither an answer nor a drop as "replay: ...": none here
    assert report["frames_from_guest"] <= report["frames_answered"] + sum(report["drops"].values())


def test_real_clients_were_answered_and_dropped_nothing():
    for capture in CORPUS:
        if capture.parent.name != "clients":
            continue
        _, report = _replay(capture, "recorded")
        assert report["drops"] == {} and report["capture_problems"] == {}, capture
        assert report["frames_answered"] == report["frames_from_guest"] > 0, capture
        # (the replay's own offsets are not checked here: with the recorded clock its t2 and t3
        # are the request's capture time, so they only restate the capture's timing)


def test_the_live_gateway_served_the_recording_clock_in_every_recorded_exchange():
    """What the real clients were served, measured from the capture (scapy reads it): the live
    responder's t2/t3 against the gateway's own capture times, one host clock on both sides."""
    measured = 0
    for capture in CORPUS:
        if capture.parent.name != "clients":
            continue
        for exchange in recorded_exchanges(capture):
            assert exchange.causal, (capture, exchange)          # t1 <= t2 <= t3 <= t4, to the ns
            assert abs(exchange.offset_s) < 300e-6 and exchange.delay_s < 0.01, (capture, exchange)
            measured += 1
    assert measured >= 5  # ntpdig, ntplib, chronyd, chronyd_burst: every one answered live


def test_the_hostile_captures_are_rewritten_byte_for_byte(tmp_path):
    _load("make_hostile").write_all(tmp_path)
    written = sorted(p.name for p in tmp_path.iterdir())
    assert written == sorted(p.name for p in (PCAPS / "hostile").iterdir())
    for name in written:
        assert (tmp_path / name).read_bytes() == (PCAPS / "hostile" / name).read_bytes(), name


def test_the_readme_has_a_line_for_every_file():
    readme = (PCAPS / "README.md").read_text()
    for capture in CORPUS:
        assert f"`{capture.parent.name}/{capture.name}`" in readme, capture
    for tool in ("capture_clients.py", "make_hostile.py", "make_golden.py", "rfc_expectations.py"):
        assert f"`{tool}`" in readme


requires_tshark = pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark missing (apt-get install tshark)")


@pytest.mark.clients
@requires_tshark
@pytest.mark.parametrize("capture", CORPUS, ids=IDS)
def test_tshark_opens_the_golden_output_and_decodes_ntp(capture):
    golden_pcap, golden_json = make_golden.golden_paths(capture)
    expected = json.loads(golden_json.read_text())
    listing = subprocess.run(["tshark", "-r", str(golden_pcap), "-T", "fields", "-E", "separator=,",
                              "-e", "frame.protocols", "-e", "ntp.flags.mode"],
                             capture_output=True, text=True, timeout=120)
    assert listing.returncode == 0, listing.stderr
    rows = listing.stdout.splitlines()
    assert len(rows) == expected["frames_sent"]
    ntp_modes = [row.rsplit(",", 1)[1] for row in rows if row.startswith("eth:ethertype:ip:udp:ntp")]
    assert ntp_modes == ["4"] * expected["ntp"]["answered"]


@pytest.mark.clients
@requires_tshark
def test_tshark_dissects_a_replayed_reply_in_full(tmp_path):
    out = tmp_path / "out.pcap"
    output, _ = _replay(PCAPS / "clients" / "ntpdig.pcap", "recorded")
    out.write_bytes(output)
    verbose = subprocess.run(["tshark", "-r", str(out), "-V"], capture_output=True, text=True, timeout=120)
    assert verbose.returncode == 0, verbose.stderr
    for needle in ("Network Time Protocol (NTP Version 4, server)", "Mode: server (4)",
                   "Peer Clock Stratum: secondary reference (10)", "Origin Timestamp:", "Receive Timestamp:",
                   "Transmit Timestamp:", "Arrival Time:"):
        assert needle in verbose.stdout, needle


@pytest.mark.clients
@requires_tshark
@pytest.mark.parametrize("capture", CORPUS, ids=IDS)
def test_tshark_agrees_with_the_rfc_expectations_on_every_checksum(capture):
    """A third implementation checks the expectations' own checksum verdicts: every frame
    rfc_expectations.py drops for a bad IPv4, UDP or ICMP checksum is one tshark finds bad, and
    every frame tshark finds bad is dropped (for that, or for a fault found before it)."""
    expected = {e.number: e for e in rfc.expectations(capture)}
    listing = subprocess.run(["tshark", "-r", str(capture), "-o", "ip.check_checksum:TRUE",
                              "-o", "udp.check_checksum:TRUE", "-T", "fields", "-E", "separator=,",
                              "-e", "frame.number", "-e", "ip.checksum.status", "-e", "udp.checksum.status",
                              "-e", "icmp.checksum.status"], capture_output=True, text=True, timeout=120)
    # tshark lists what it read and exits 2 on a file cut inside a record (cut_mid_*.pcap)
    assert listing.returncode == 0 or "cut short in the middle of a packet" in listing.stderr, listing.stderr
    assert listing.stdout.strip(), listing.stderr
    bad = {rfc.Reason.IP_CHECKSUM: 1, rfc.Reason.UDP_CHECKSUM: 2, rfc.Reason.ICMP_CHECKSUM: 3}
    for row in listing.stdout.splitlines():
        fields = row.split(",")
        number = int(fields[0])
        if number not in expected or expected[number].skip:
            continue  # a record the file ends inside, or not a guest's frame
        e = expected[number]
        if e.drop in bad:
            assert fields[bad[e.drop]].split(";")[0] == "0", (number, e, row)  # tshark: 0 = bad
        for column in bad.values():
            if "0" in fields[column].split(";"):  # an ICMP error quotes a header: ";" separates layers
                assert e.drop is not None, (number, e, row)


def test_the_rfc_expectations_refuse_a_frame_no_rule_covers(tmp_path):
    """A capture added with frames no rule decides (here DHCP) stops the test, naming the frame."""
    from scapy.layers.dhcp import BOOTP, DHCP
    from scapy.layers.inet import IP, UDP
    from scapy.layers.l2 import Ether
    from scapy.utils import wrpcap

    discover = (Ether(src="02:00:00:00:00:03", dst="ff:ff:ff:ff:ff:ff") / IP(src="0.0.0.0", dst="255.255.255.255")
                / UDP(sport=68, dport=67) / BOOTP(chaddr=bytes.fromhex("020000000003"), xid=1)
                / DHCP(options=[("message-type", "discover"), "end"]))
    wrpcap(str(tmp_path / "dhcp.pcap"), [discover])
    with pytest.raises(rfc.NoRule, match="#1: "):
        rfc.expectations(tmp_path / "dhcp.pcap")
