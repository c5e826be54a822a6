#!/usr/bin/env python3
"""Write (or check) the expected replay outcome of every capture in the corpus.

    python3 pcaps/make_golden.py           # rewrite pcaps/golden/ after an intended change
    python3 pcaps/make_golden.py --check   # exit 1 and name the captures whose outcome changed

Each capture in pcaps/clients/ and pcaps/hostile/ is replayed with the
embedded responder and the clock fixed at `GOLDEN_CLOCK`, as

    python3 -m gateway replay CAPTURE --clock fixed:2024-01-01T00:00:00Z

and two files are kept in pcaps/golden/<group>/:

* `<capture name>.out.pcap`: every frame the gateway sent to the guest, with
  its timestamp (the replay output, compared byte for byte);
* `<capture name>.outcome.json`: the counts and reasons: frames read, skipped
  (by reason), capture file problems, answered, dropped (by reason), NTP and
  flow counts (`gateway.replay.engine.report.outcome`).

tests/gateway/replay/test_pcap_corpus.py replays the corpus and checks both,
so a change in the gateway's behaviour shows up as a failing test until this
is re-run and the new goldens are reviewed and committed.

The goldens are a change detector, not a proof: they are what the replay
wrote, so goldens re-written after a bug hold the bug. What each frame must
get is decided independently, from the RFCs, by pcaps/rfc_expectations.py.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # run from anywhere: the gateway package sits beside pcaps/

from gateway.app.config import Config  # noqa: E402
from gateway.edges.pcap_reader import open_capture  # noqa: E402
from gateway.edges.pcap_writer import pcap_bytes  # noqa: E402
from gateway.replay.engine import parse_clock, replay  # noqa: E402
from gateway.replay.report import outcome  # noqa: E402

GOLDEN_CLOCK = "fixed:2024-01-01T00:00:00Z"
GROUPS = ("clients", "hostile")
GOLDEN_DIR = HERE / "golden"


def corpus() -> list[Path]:
    """Every capture of the corpus, in a stable order."""
    return sorted(path for group in GROUPS for path in (HERE / group).glob("*.pcap*"))


def golden_paths(capture: Path) -> tuple[Path, Path]:
    """Where the expected output pcap and outcome JSON of `capture` live."""
    folder = GOLDEN_DIR / capture.parent.name
    return folder / f"{capture.name}.out.pcap", folder / f"{capture.name}.outcome.json"


def replay_for_golden(capture: Path) -> tuple[bytes, str]:
    """The output pcap's bytes and the outcome JSON text of replaying `capture` as the goldens are made."""
    config = Config()
    opened = open_capture(str(capture))
    result = replay(opened.records(), config, parse_clock(GOLDEN_CLOCK))
    return pcap_bytes(result.output), json.dumps(outcome(result, opened), indent=2) + "\n"


def main() -> int:
    check = sys.argv[1:] == ["--check"]
    changed = []
    for capture in corpus():
        output, summary = replay_for_golden(capture)
        pcap_path, json_path = golden_paths(capture)
        if check:
            same = (pcap_path.exists() and pcap_path.read_bytes() == output
                    and json_path.exists() and json_path.read_text() == summary)
            if not same:
                changed.append(capture)
            continue
        pcap_path.parent.mkdir(parents=True, exist_ok=True)
        pcap_path.write_bytes(output)
        json_path.write_text(summary)
        print(f"{capture.relative_to(HERE)} -> {pcap_path.relative_to(HERE)}, {json_path.name}")
    for capture in changed:
        print(f"outcome changed: {capture.relative_to(HERE)} (see: python3 -m gateway replay {capture} "
              f"--clock {GOLDEN_CLOCK} --expect {golden_paths(capture)[0]})")
    return 1 if changed else 0


if __name__ == "__main__":
    sys.exit(main())
