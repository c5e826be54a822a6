"""`hostclock replay IN.pcap`: the command around the replay engine (arguments, files, exit status).

    hostclock replay IN.pcap [--out OUT.pcap] [--clock recorded|fixed:ISO8601]
                     [--upstream embedded|HOST:PORT] [--expect EXPECTED.pcap] [--json]

Prints the summary (`gateway.replay.engine.report`), or with `--json` the same as
one JSON object. Exit status: 0; 1 when `--expect` finds a difference (a
field-level diff is printed); 2 for an unreadable input or expected file, an
unwritable output or a bad argument (one line on stderr).
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import sys

from gateway.app.config import Config, ConfigError, parse_host_port

__all__ = ["add_replay_arguments", "run_replay", "EXIT_DIFFERENT", "EXIT_BAD_INPUT"]

EXIT_DIFFERENT = 1
EXIT_BAD_INPUT = 2


def add_replay_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("capture", metavar="IN.pcap", help="a pcap or pcapng capture of a guest's link (Ethernet)")
    parser.add_argument("--out", metavar="OUT.pcap",
                        help="write every frame the gateway sends to the guest here (nanosecond pcap)")
    parser.add_argument("--clock", default="recorded", metavar="recorded|fixed:ISO8601",
                        help="the responder's clock: the capture's timestamps (default), or starting at a fixed "
                             "instant and advancing with the capture (byte-identical output run after run)")
    parser.add_argument("--upstream", dest="replay_upstream", default="embedded", metavar="embedded|HOST:PORT",
                        help="answer NTP with the embedded responder in-process (default), or really ask this "
                             "SNTP server on loopback")
    parser.add_argument("--expect", metavar="EXPECTED.pcap",
                        help="compare the output with this pcap; on a difference print a field-level diff, exit 1")
    parser.add_argument("--json", action="store_true", help="print the summary as one JSON object")


def run_replay(args: argparse.Namespace, config: Config) -> int:
    # imported here, not at the top: the CLI builds this command's parser on every run
    from gateway.edges.pcap_reader import CaptureError, open_capture
    from gateway.edges.pcap_writer import pcap_bytes
    from gateway.replay.engine import parse_clock, replay
    from gateway.replay.report import format_text, summary

    try:
        clock = parse_clock(args.clock)
    except ValueError as e:
        raise ConfigError(str(e)) from None
    if args.replay_upstream == "embedded":
        upstream = None  # each forwarding plugin's in-process answerer
    else:
        from gateway.replay.upstream import UdpUpstream

        host, port = parse_host_port(args.replay_upstream, what="upstream")
        if not ipaddress.IPv4Address(host).is_loopback or port == 0:
            raise ConfigError(f"upstream {args.replay_upstream}: a replay asks only a server on loopback "
                              "(127.x.x.x:PORT, port not 0), or use 'embedded'")
        upstream = UdpUpstream(host, port)
    try:
        capture = open_capture(args.capture)
        expected = _read_expected(args.expect) if args.expect else None
    except CaptureError as e:
        return _fail(str(e))
    result = replay(capture.records(), config, clock, upstream)
    written = pcap_bytes(result.output)
    if args.out:
        try:
            with open(args.out, "wb") as f:
                f.write(written)
        except OSError as e:
            return _fail(f"cannot write {args.out}: {e.strerror}")
    report = summary(result, capture, output_path=args.out)
    differences = None
    if expected is not None:
        differences = _compare(expected, written, result.output)
        report["expect"] = {"file": args.expect, "identical": not differences, "differences": differences}
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(format_text(report))
        if differences is not None:
            print(f"expected output {args.expect}: " + ("identical" if not differences else "DIFFERENT"))
            for line in differences:
                print(f"  {line}")
    return EXIT_DIFFERENT if differences else 0


def _read_expected(path: str) -> tuple[bytes, list[tuple[int, bytes]], str]:
    """The expected file's bytes, its records and its format; CaptureError if it is no capture."""
    from gateway.edges.pcap_reader import CaptureError, open_capture

    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise CaptureError(f"cannot read {path}: {e.strerror}") from None
    capture = open_capture(path)
    records = [(r.ts_ns, r.data) for r in capture.records()]
    if capture.problems:
        raise CaptureError(f"{path}: {next(iter(capture.problems))}")
    return data, records, capture.format


def _compare(expected: tuple[bytes, list[tuple[int, bytes]], str], written: bytes,
             output: list[tuple[int, bytes]]) -> list[str]:
    """Nothing if the written file is byte-identical to the expected one, else what differs."""
    data, records, file_format = expected
    if data == written:
        return []
    from gateway.replay.diff import diff_frames

    lines = diff_frames(records, output)
    return lines or [f"same frames and timestamps, but the files differ: expected a {file_format} file, "
                     "written a nanosecond pcap (little-endian, snap length 262144, Ethernet)"]


def _fail(message: str) -> int:
    print(f"hostclock: error: {message}", file=sys.stderr)
    return EXIT_BAD_INPUT
