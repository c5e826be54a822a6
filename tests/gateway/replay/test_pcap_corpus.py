"""The replay corpus (pcaps/): every capture replays to its golden output, byte for byte, every run.

The goldens are written by pcaps/make_golden.py; after an intended change in
behaviour, re-run it and review the diff of pcaps/golden/ before committing.
"""

import importlib.util
import json
import shutil
import subprocess
from pathlib import Path

import pytest

from gateway.app.config import Config
from gateway.core.drops import Drop
from gateway.edges.pcap_reader import open_capture
from gateway.edges.pcap_writer import pcap_bytes
from gateway.replay.engine import parse_clock, replay
from gateway.replay.report import summary
from plugins.ntp.drops import SntpDrop

PCAPS = Path(__file__).resolve().parents[3] / "pcaps"


def _load(name):
    spec = importlib.util.spec_from_file_location(name, PCAPS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


make_golden = _load("make_golden")
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


@pytest.mark.parametrize("capture", CORPUS, ids=IDS)
def test_replay_matches_the_golden_output_and_outcome(capture):
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
        for exchange in report["exchanges"]:
            # one host clock in capture and replay: what the client would see is within a millisecond
            assert abs(exchange["offset_s"]) < 0.001 and 0 <= exchange["delay_s"] < 0.01, (capture, exchange)


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
    for tool in ("capture_clients.py", "make_hostile.py", "make_golden.py"):
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
