"""hostclock beside the helpers a user would pick instead: the same client, every path, one run.

Each path gives a network namespace (the guest; it shares the host clock, so the
true offset is 0) a link whose gateway address answers NTP:

- `hostclock run --tap`, the embedded responder;
- `hostclock run --tap --upstream` to a `chronyd -x` on the host's loopback, the
  same chronyd the peers reach;
- both again with `--no-residence-correction`, the replies as the server sent them;
- pasta (the passt package): `-g 192.168.65.1`, the gateway address mapped to the
  host's loopback, so the guest's queries reach that chronyd;
- slirp4netns (libslirp), `--cidr 192.168.65.0/24`: the guest is .100, and .2
  reaches the host's loopback, so that chronyd again;
- the same client on the host's loopback, straight to that chronyd: the floor the
  kernel sets, with no gateway at all.

The client (`bench.peer_client`) runs in each namespace for the whole run and
measures as real clients do (a new source port per query, T1 read just before
`send`, T4 the kernel's receive timestamp). The paths take turns: rounds of 50
queries per path, the order rotated each round, 400 queries per path in all
(quick: 100), so slow and fast moments of a shared machine fall on every path
alike. Per path: median and p99 |offset|, median delay, queries lost; each
hostclock path is set beside the better of the two peers (per figure).

Safety: chronyd only as `chronyd -x`; the client only reads the clock. The
namespaces' only traffic is the client's queries to their gateway address (IPv6
off before the links come up; pasta without port forwarding, DHCP, NDP or RA;
slirp4netns without DNS); the peers map that address to the host's loopback.
Every loop is bounded in count and time.

`python -m bench.peers --table bench/results/latest.json` prints the peers table
(markdown) from a recorded run.
"""

from __future__ import annotations

import json
import os
import select
import shutil
import statistics
import subprocess
import sys
import time
from contextlib import ExitStack
from dataclasses import dataclass

from .common import PYTHON, REPO, Child, Figure, child_env, hostclock_argv, percentile, realpeers

NAME = "peers"
GUEST_IP = "192.168.65.3"
GATEWAY = "192.168.65.1"
SLIRP_GATEWAY = "192.168.65.2"  # slirp4netns: the guest is .100, .2 is the host (its loopback)
ROUND = 50
INTERVAL = 0.005  # between one query's answer and the next query
_READY_TIMEOUT = 10.0


@dataclass
class Path:
    key: str           # JSON key
    label: str         # table row
    peer: bool         # one of the helpers hostclock is compared with
    hostclock: bool    # a hostclock path: figures with targets
    host: str
    port: int
    client: subprocess.Popen | None = None


# -- the guests ----------------------------------------------------------------------------

def _disable_ipv6(ns) -> None:
    """No IPv6 in the namespace, before any link is made there (no RS, MLD, DAD traffic)."""
    for key in ("all", "default"):
        ns.run(["sysctl", "-q", "-w", f"net.ipv6.conf.{key}.disable_ipv6=1"], timeout=10, check=True)


def _wait_for_address(ns, dev: str, address: str, proc: subprocess.Popen, what: str) -> None:
    deadline = time.monotonic() + _READY_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode} before configuring {dev}")
        try:
            if any(a.get("local") == address for a in ns.addresses(dev)):
                return
        except (RuntimeError, IndexError, json.JSONDecodeError):
            pass  # the device is not there yet
        time.sleep(0.05)
    raise RuntimeError(f"{what} did not configure {dev} with {address} within {_READY_TIMEOUT:.0f} s")


def _helper(stack: ExitStack, argv: list[str], what: str) -> subprocess.Popen:
    """A peer's process (pasta, slirp4netns), stopped with SIGTERM at the end of the run."""
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def stop() -> None:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
        if proc.stderr is not None:
            proc.stderr.close()
    stack.callback(stop)
    return proc


def _hostclock_guest(stack: ExitStack, rp, extra_args: list[str]) -> object:
    tap = rp.unique_name("hcp")
    stack.enter_context(Child(hostclock_argv("run", "--tap", tap, *extra_args), ready_marker="hostclock:"))
    ns = rp.GuestNamespace("hcp")
    # entered after the gateway, so left first: the namespace (and the TAP in it) goes, then the gateway
    stack.enter_context(ns)
    ns.adopt_tap(tap, ip=f"{GUEST_IP}/24")
    return ns


def _pasta_guest(stack: ExitStack, rp) -> object:
    ns = stack.enter_context(rp.GuestNamespace("hcp"))
    _disable_ipv6(ns)
    proc = _helper(stack, ["pasta", "--runas", "0", "--netns", f"/run/netns/{ns.name}", "--config-net", "-4",
                           "-a", GUEST_IP, "-n", "24", "-g", GATEWAY, "-I", "pst0",
                           "-t", "none", "-u", "none", "-T", "none", "-U", "none",
                           "--no-dhcp", "--no-ndp", "--no-dhcpv6", "--no-ra", "-q", "-f"], "pasta")
    _wait_for_address(ns, "pst0", GUEST_IP, proc, "pasta")
    return ns


def _slirp_guest(stack: ExitStack, rp) -> object:
    ns = stack.enter_context(rp.GuestNamespace("hcp"))
    _disable_ipv6(ns)
    proc = _helper(stack, ["slirp4netns", "--netns-type=path", "--configure", "--cidr=192.168.65.0/24",
                           "--disable-dns", f"/run/netns/{ns.name}", "slp0"], "slirp4netns")
    _wait_for_address(ns, "slp0", "192.168.65.100", proc, "slirp4netns")
    return ns


def _start_client(stack: ExitStack, ns) -> subprocess.Popen:
    argv = [PYTHON, "-m", "bench.peer_client"]
    kwargs = dict(stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=REPO, env=child_env())
    proc = ns.popen(argv, **kwargs) if ns is not None else subprocess.Popen(argv, **kwargs)

    def stop() -> None:
        if proc.poll() is None:
            try:
                proc.stdin.write("QUIT\n")
                proc.stdin.flush()
                proc.wait(timeout=5)
            except (OSError, subprocess.TimeoutExpired):
                proc.kill()
                proc.wait(timeout=5)
    stack.callback(stop)
    return proc


def _ask(path: Path, count: int, interval: float, timeout: float) -> dict:
    """`count` queries on `path`'s client; bounded by `timeout` seconds."""
    client = path.client
    client.stdin.write(f"QUERY {path.host} {path.port} {count} {interval}\n")
    client.stdin.flush()
    ready, _, _ = select.select([client.stdout], [], [], timeout)
    line = client.stdout.readline() if ready else ""
    if not line:
        raise RuntimeError(f"the client on {path.label} did not answer within {timeout:.0f} s")
    result = json.loads(line)
    if "error" in result:
        raise RuntimeError(f"the client on {path.label}: {result['error']}")
    return result


# -- the figures -----------------------------------------------------------------------------

def _stats(rows: list[list[float]], lost: int) -> dict:
    offsets = [abs(r[0]) for r in rows]
    delays = [r[1] for r in rows]
    if not rows:
        nan = float("nan")
        return {"n": 0, "lost": lost, "median_abs_offset": nan, "p99_abs_offset": nan, "median_offset": nan,
                "median_delay": nan, "p99_delay": nan}
    return {"n": len(rows), "lost": lost, "median_abs_offset": statistics.median(offsets),
            "p99_abs_offset": percentile(offsets, 99), "median_offset": statistics.median(r[0] for r in rows),
            "median_delay": statistics.median(delays), "p99_delay": percentile(delays, 99)}


def _figures(paths: list[Path], stats: dict[str, dict], queries: int) -> list[Figure]:
    us = 1e6
    peers = [p for p in paths if p.peer]
    floor = stats["loopback"]

    def best(metric: str) -> tuple[str, float]:
        label, value = min(((p.label, stats[p.key][metric]) for p in peers), key=lambda kv: kv[1])
        return label, value

    figures = []
    for path in paths:
        s = stats[path.key]
        name = f"{path.label}:"
        if path.hostclock:
            peer_med, med = best("median_abs_offset")
            peer_p99, p99 = best("p99_abs_offset")
            peer_delay, delay = best("median_delay")
            limit = min(0.5 * med, floor["median_abs_offset"] + 10e-6)
            figures += [
                Figure(NAME, f"{name} median |offset|", s["median_abs_offset"] * us, "µs",
                       anchor=f"better peer ({peer_med})", anchor_value=med * us,
                       ratio=s["median_abs_offset"] / med, ratio_note="× better peer",
                       target="≤ 0.5× better peer, ≤ loopback + 10 µs", holds=s["median_abs_offset"] <= limit,
                       extra={"loopback_median_abs_offset_us": floor["median_abs_offset"] * us,
                              "signed_median_offset_us": s["median_offset"] * us}),
                Figure(NAME, f"{name} p99 |offset|", s["p99_abs_offset"] * us, "µs",
                       anchor=f"better peer ({peer_p99})", anchor_value=p99 * us,
                       ratio=s["p99_abs_offset"] / p99, ratio_note="× better peer",
                       target="≤ better peer", holds=s["p99_abs_offset"] <= p99),
                Figure(NAME, f"{name} median delay", s["median_delay"] * us, "µs",
                       anchor=f"better peer ({peer_delay})", anchor_value=delay * us,
                       ratio=s["median_delay"] / delay, ratio_note="× better peer",
                       target="≤ better peer", holds=s["median_delay"] <= delay),
                Figure(NAME, f"{name} queries lost", s["lost"], f"of {queries}", target="0", holds=s["lost"] == 0),
            ]
        else:
            anchor = None if path.key == "loopback" else "loopback floor"
            figures += [
                Figure(NAME, f"{name} median |offset|", s["median_abs_offset"] * us, "µs",
                       anchor=anchor and "loopback floor", anchor_value=anchor and floor["median_abs_offset"] * us,
                       ratio=anchor and s["median_abs_offset"] / floor["median_abs_offset"],
                       ratio_note="× loopback" if anchor else "",
                       extra={"signed_median_offset_us": s["median_offset"] * us}),
                Figure(NAME, f"{name} p99 |offset|", s["p99_abs_offset"] * us, "µs"),
                Figure(NAME, f"{name} median delay", s["median_delay"] * us, "µs"),
                Figure(NAME, f"{name} queries lost", s["lost"], f"of {queries}"),
            ]
    return figures


def markdown_table(record: dict) -> str:
    """The peers table of a recorded run (the JSON `python -m bench` writes)."""
    figures = [f for f in record["figures"] if f["bench"] == NAME]
    if not figures:
        return "(no peers figures in this record)"
    stats = figures[0]["extra"]["paths"]
    order = figures[0]["extra"]["order"]
    lines = ["| path | median \\|offset\\| | p99 \\|offset\\| | median delay | lost |",
             "|---|---|---|---|---|"]
    for key in order:
        s = stats[key]
        lines.append(f"| {s['label']} | {s['median_abs_offset'] * 1e6:.1f} µs | {s['p99_abs_offset'] * 1e6:.0f} µs | "
                     f"{s['median_delay'] * 1e6:.0f} µs | {s['lost']} of {s['n'] + s['lost']} |")
    return "\n".join(lines)


# -- the run ----------------------------------------------------------------------------------

def _missing() -> list[str]:
    need = {"pasta": "passt", "slirp4netns": "slirp4netns", "chronyd": "chrony"}
    path = os.environ.get("PATH", "") + ":/usr/local/sbin:/usr/sbin:/sbin"
    return [f"{tool} (apt-get install {package})" for tool, package in need.items()
            if shutil.which(tool, path=path) is None]


def hostclock_variants(upstream: str) -> list[tuple[str, str, list[str]]]:
    """(key, label, extra `hostclock run` arguments) for each hostclock path; `upstream` is the peers' chronyd."""
    return [("hostclock", "hostclock --tap, embedded responder", []),
            ("hostclock_upstream", "hostclock --tap --upstream (the peers' chronyd)", ["--upstream", upstream]),
            ("hostclock_uncorrected", "hostclock --tap, embedded, --no-residence-correction",
             ["--no-residence-correction"]),
            ("hostclock_upstream_uncorrected", "hostclock --tap --upstream, --no-residence-correction",
             ["--upstream", upstream, "--no-residence-correction"])]


def run(quick: bool = False) -> list[Figure]:
    rp = realpeers()
    reason = rp.root_skip_reason()
    if reason:
        raise RuntimeError(f"peers needs TAP + namespaces: {reason}")
    missing = _missing()
    if missing:
        raise RuntimeError(f"peers needs {', '.join(missing)}")
    queries = 100 if quick else 400
    load_before = os.getloadavg()
    with ExitStack() as stack:
        chrony = stack.enter_context(rp.ChronyServer(stratum=1))  # the host's server: 127.0.0.1, a free port
        upstream = f"127.0.0.1:{chrony.port}"
        paths: list[Path] = []
        for key, label, args in hostclock_variants(upstream):
            ns = _hostclock_guest(stack, rp, args)
            paths.append(Path(key, label, peer=False, hostclock=True, host=GATEWAY, port=123,
                              client=_start_client(stack, ns)))
        ns = _pasta_guest(stack, rp)
        paths.append(Path("pasta", "pasta (passt), gateway -> host loopback", peer=True, hostclock=False,
                          host=GATEWAY, port=chrony.port, client=_start_client(stack, ns)))
        ns = _slirp_guest(stack, rp)
        paths.append(Path("slirp4netns", "slirp4netns (libslirp), .2 -> host loopback", peer=True, hostclock=False,
                          host=SLIRP_GATEWAY, port=chrony.port, client=_start_client(stack, ns)))
        paths.append(Path("loopback", "same client on host loopback (floor)", peer=False, hostclock=False,
                          host="127.0.0.1", port=chrony.port, client=_start_client(stack, None)))
        # warm-up, not counted: ARP resolved, the peers' first-packet set-up done, every process running
        for path in paths:
            _ask(path, 5, INTERVAL, timeout=30)
        rows: dict[str, list] = {p.key: [] for p in paths}
        lost: dict[str, int] = {p.key: 0 for p in paths}
        rounds = max(1, queries // ROUND)
        for n in range(rounds):
            shift = n % len(paths)
            for path in paths[shift:] + paths[:shift]:
                result = _ask(path, ROUND, INTERVAL, timeout=ROUND * 1.0 + 10)
                rows[path.key] += result["rows"]
                lost[path.key] += result["lost"]
    stats = {}
    for path in paths:
        stats[path.key] = dict(_stats(rows[path.key], lost[path.key]), label=path.label)
    figures = _figures(paths, stats, rounds * ROUND)
    figures[0].extra.update({"paths": stats, "order": [p.key for p in paths], "rounds": rounds,
                             "round": ROUND, "interval_s": INTERVAL, "load_average_before": load_before,
                             "load_average_after": os.getloadavg()})
    return figures


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m bench.peers", description="print the peers table of a run")
    parser.add_argument("--table", metavar="JSON", default=str(REPO / "bench" / "results" / "latest.json"))
    args = parser.parse_args(argv)
    with open(args.table) as f:
        print(markdown_table(json.load(f)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
