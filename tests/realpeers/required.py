"""pytest hooks: real-peer tests cannot silently vanish, and every run says how many ran.

The tests marked ``root``, ``clients`` or ``qemu`` talk to real peers (ntpdig, chronyd,
ntplib, udhcpc, tcpdump, tshark, QEMU, the kernel's TAP devices and namespaces): they are
the suite's independent oracle. Anything missing from the machine turns them into skips,
which is right on a developer's laptop and wrong in CI. So:

* under ``CI=true`` (or ``HOSTCLOCK_REQUIRE_PEERS=1``) a skip of such a test — by a
  ``skipif`` mark, ``pytest.skip`` in the test or a fixture, ``pytest.importorskip`` —
  is reported as a failure carrying the skip's reason;
* at the very end of the run one line says how many real-peer tests ran and passed
  (and how many were skipped or failed), so a green run that exercised no peer shows.

``tests/conftest.py`` installs these hooks; ``HOSTCLOCK_REQUIRE_PEERS=0`` turns the first
rule off even under CI.
"""

from __future__ import annotations

import dataclasses
import os

import pytest

REAL_PEER_MARKERS = ("root", "clients", "qemu")


def peers_required(environ=os.environ) -> bool:
    """Whether a skipped real-peer test must fail: CI=true or HOSTCLOCK_REQUIRE_PEERS=1."""
    explicit = environ.get("HOSTCLOCK_REQUIRE_PEERS", "").strip()
    if explicit:
        return explicit not in ("0", "false", "no")
    return environ.get("CI", "").strip().lower() in ("true", "1", "yes")


def real_peer_markers(item: pytest.Item) -> list[str]:
    return [name for name in REAL_PEER_MARKERS if item.get_closest_marker(name) is not None]


@dataclasses.dataclass
class _Tally:
    """Node ids of the real-peer tests by outcome (a test that fails in teardown after passing
    counts as failed, once)."""
    required: bool
    passed: set = dataclasses.field(default_factory=set)
    failed: set = dataclasses.field(default_factory=set)
    skipped: set = dataclasses.field(default_factory=set)
    refused_skips: set = dataclasses.field(default_factory=set)


_TALLY = pytest.StashKey[_Tally]()


def _skip_reason(report: pytest.TestReport) -> str:
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2]).removeprefix("Skipped: ")
    return str(longrepr)


def pytest_configure(config: pytest.Config) -> None:
    config.stash[_TALLY] = _Tally(required=peers_required())


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call):
    outcome = yield
    report: pytest.TestReport = outcome.get_result()
    markers = real_peer_markers(item)
    if not markers:
        return
    tally = item.config.stash[_TALLY]
    if report.skipped and not hasattr(report, "wasxfail"):
        if tally.required:
            reason = _skip_reason(report)
            report.outcome = "failed"
            report.longrepr = (f"real-peer test ({', '.join(markers)}) skipped under CI=true / "
                               f"HOSTCLOCK_REQUIRE_PEERS=1, which makes that a failure: {reason}")
            tally.refused_skips.add(item.nodeid)
            tally.failed.add(item.nodeid)
        else:
            tally.skipped.add(item.nodeid)
    elif report.failed:
        tally.failed.add(item.nodeid)
    elif report.when == "call" and report.passed:
        tally.passed.add(item.nodeid)


def pytest_unconfigure(config: pytest.Config) -> None:
    tally = config.stash.get(_TALLY, None)
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if tally is None or reporter is None:
        return
    passed = len(tally.passed - tally.failed)
    line = (f"real-peer tests (root/clients/qemu): {passed} ran and passed, "
            f"{len(tally.failed)} failed, {len(tally.skipped)} skipped")
    if tally.refused_skips:
        line += f" ({len(tally.refused_skips)} of the failures were skips, refused under CI)"
    elif tally.required:
        line += " (skips refused: CI)"
    reporter.write_line(line, bold=True, red=bool(tally.failed or tally.skipped), green=not (tally.failed or tally.skipped))
