"""gateway.replay.engine.diff: a difference between two frame lists, told field by field."""

from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import ARP, Ether
from scapy.layers.ntp import NTPHeader

from gateway.replay.diff import MAX_FRAMES_SHOWN, diff_frames

TS = 1_704_067_200_000_000_000


def _ntp_reply(stratum=10, recv=3913056000.25, dport=40000):
    return bytes(Ether(dst="02:00:00:00:00:03", src="f6:16:36:bc:f9:c6") / IP(src="192.168.65.1", dst="192.168.65.3")
                 / UDP(sport=123, dport=dport) / NTPHeader(mode=4, stratum=stratum, orig=0, ref=0, recv=recv,
                                                           sent=3913056000.5))


def test_identical_lists_have_no_difference():
    frames = [(TS, _ntp_reply())]
    assert diff_frames(frames, list(frames)) == []


def test_fields_are_named_layer_by_layer():
    lines = diff_frames([(TS, _ntp_reply())], [(TS + 10_000, _ntp_reply(stratum=3))])
    assert lines[0] == "frame 1: timestamp: expected 1704067200.000000000, written 1704067200.000010000 (+10000 ns)"
    assert "frame 1: NTPHeader.stratum: expected 10, written 3" in lines
    assert any(line.startswith("frame 1: UDP.chksum: expected 0x") for line in lines)


def test_ntp_times_that_print_alike_show_their_fractions():
    (line,) = [l for l in diff_frames([(TS, _ntp_reply())], [(TS, _ntp_reply(recv=3913056000.75))]) if "recv" in l]
    assert "(3913056000.25" in line and "(3913056000.75" in line


def test_missing_and_extra_frames_and_other_layers():
    arp = bytes(Ether(dst="02:00:00:00:00:03", src="f6:16:36:bc:f9:c6")
                / ARP(op=2, hwsrc="f6:16:36:bc:f9:c6", psrc="192.168.65.1", hwdst="02:00:00:00:00:03",
                      pdst="192.168.65.3"))
    lines = diff_frames([(TS, arp), (TS, _ntp_reply())], [(TS, _ntp_reply())])
    assert lines[0] == "2 frames expected, 1 written"
    assert "frame 1: Ethernet.type: expected ARP, written IPv4" in lines
    assert "frame 1: layer 2: expected ARP, written IP" in lines
    assert lines[-1].startswith("frame 2: missing; expected 1704067200.000000000 Ether / IP / UDP")
    lines = diff_frames([], [(TS, arp)])
    assert lines[-1].startswith("frame 1: extra; written ")


def test_only_the_first_differing_frames_are_shown():
    want = [(TS + i, _ntp_reply()) for i in range(MAX_FRAMES_SHOWN + 5)]
    got = [(ts + 1, frame) for ts, frame in want]
    lines = diff_frames(want, got)
    assert lines[-1] == "... and 5 more differing frames"
    assert len(lines) == MAX_FRAMES_SHOWN + 1
