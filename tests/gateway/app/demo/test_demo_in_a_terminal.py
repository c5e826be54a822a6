"""`hostclock demo --guest netns` in a real terminal (tmux): the live view, then a clean stop.

tmux runs the demo; `capture-pane` reads the screen half-way (the table with NTP
answered > 0 and an offset in µs); after the end, DIR/demo.csv has rows, DIR/demo.png
decodes, and nothing of the demo is left: no namespace, no TAP, no process, no private
directory. The same when it is stopped half-way by Ctrl-C or by `q`.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import time
import uuid

import pytest

from demo_leftovers import cannot_run, demo_names, hostclock_cli, leftovers, private_dirs, require_netns_demo
from gateway.app.demo.readings import read_csv

pytestmark = [pytest.mark.root, pytest.mark.clients, pytest.mark.slow]

_ANSWERED = re.compile(r"NTP answered\s+(\d+)")
_SOME_ANSWERED = re.compile(r"NTP answered\s+[1-9]")
_OFFSET_US = re.compile(r"(ntpdig|chronyd)\s+[+-]\d+ µs ± \d+")


class Terminal:
    """A tmux session of 120 x 45 running one command, on a tmux server of its own (so that no other
    session's size or options apply); its screen read with capture-pane."""

    def __init__(self, command: str, status_file: str) -> None:
        self.name = f"hcdemo-test-{uuid.uuid4().hex[:8]}"
        self.tmux = ["tmux", "-L", self.name]
        self.status_file = status_file
        # the shell traps SIGINT (not ignores: the demo gets the default back) so that it outlives
        # a Ctrl-C meant for the demo and writes the demo's exit status
        wrapped = f"trap 'true' INT; {command}; echo $? > {shlex.quote(status_file)}; sleep 60"
        subprocess.run([*self.tmux, "-f", "/dev/null", "new-session", "-d", "-s", self.name, "-x", "120", "-y", "45",
                        "env", "LANG=C.UTF-8", "TERM=xterm-256color", "sh", "-c", wrapped], check=True, timeout=10)
        #: the server's socket file, which kill-server leaves behind
        self.socket_path = subprocess.run([*self.tmux, "display-message", "-p", "#{socket_path}"], capture_output=True,
                                          text=True, timeout=10).stdout.strip()

    def screen(self, history: bool = False) -> str:
        argv = [*self.tmux, "capture-pane", "-p", "-t", self.name] + (["-S", "-200"] if history else [])
        return subprocess.run(argv, capture_output=True, text=True, timeout=10).stdout

    def keys(self, *keys: str) -> None:
        subprocess.run([*self.tmux, "send-keys", "-t", self.name, *keys], check=True, timeout=10)

    def wait_for_exit(self, timeout: float) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                with open(self.status_file) as f:
                    text = f.read().strip()
                if text:
                    return int(text)
            except FileNotFoundError:
                pass
            time.sleep(0.2)
        raise AssertionError(f"the demo did not end within {timeout} s; screen:\n{self.screen(True)}")

    def wait_for(self, pattern: re.Pattern, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            screen = self.screen()
            if pattern.search(screen):
                return screen
            time.sleep(0.25)
        raise AssertionError(f"{pattern.pattern!r} not on the screen within {timeout} s:\n{self.screen(True)}")

    def close(self) -> None:
        subprocess.run([*self.tmux, "kill-server"], capture_output=True, timeout=10)
        if self.socket_path.startswith("/") and os.path.basename(self.socket_path) == self.name:
            try:
                os.unlink(self.socket_path)
            except FileNotFoundError:
                pass


@pytest.fixture
def terminal_demo(tmp_path):
    require_netns_demo()
    if shutil.which("tmux") is None:
        cannot_run("tmux is missing (apt-get install tmux)")
    terminals = []
    dirs_before = private_dirs()

    def start(*args: str) -> Terminal:
        command = " ".join(shlex.quote(a) for a in [hostclock_cli(), "demo", "--guest", "netns",
                                                      "--out", str(tmp_path / "out"), *args])
        terminal = Terminal(command, str(tmp_path / "status"))
        terminals.append(terminal)
        return terminal

    yield start
    for terminal in terminals:
        terminal.close()  # a demo still running gets SIGHUP and tears down: give it the time
    deadline = time.monotonic() + 15
    while private_dirs() - dirs_before and time.monotonic() < deadline:
        time.sleep(0.2)
    assert private_dirs() - dirs_before == set(), "the demo left its private directory in /tmp"


def _check_output_and_teardown(out, screen: str) -> None:
    namespace, token, tap = demo_names(screen)
    rows = read_csv(str(out / "demo.csv"))
    assert len(rows) >= 2, f"demo.csv has {len(rows)} rows"
    # the clients, and the gateway's watcher: ICMP timestamps, and ntpdig's own transmit timestamps ("ntp")
    assert {"ntpdig", "chronyd", "icmp"} <= {r.source for r in rows} <= {"ntpdig", "chronyd", "icmp", "ntp"}
    assert all(abs(r.offset_s) < 0.05 for r in rows), "one host clock: the offsets are near 0"
    image = pytest.importorskip("matplotlib.image")
    pixels = image.imread(str(out / "demo.png"))
    assert pixels.shape[0] > 100 and pixels.shape[1] > 100
    assert leftovers(token) == []


def _check_live_table(screen: str) -> None:
    answered = _ANSWERED.search(screen)
    assert answered and int(answered.group(1)) > 0, screen
    assert _OFFSET_US.search(screen), f"no offset in µs on the screen:\n{screen}"
    assert "DHCP lease" in screen and "guests attached  1" in screen, screen


def test_the_live_view_runs_its_duration_and_leaves_nothing(terminal_demo, tmp_path):
    terminal = terminal_demo("--duration", "8")
    terminal.wait_for(_SOME_ANSWERED, timeout=8)
    time.sleep(2)  # half-way: a few readings from each client
    screen = terminal.screen()
    _check_live_table(screen)
    assert terminal.wait_for_exit(timeout=20) == 0
    final = terminal.screen(history=True)
    assert "stopped (the duration elapsed)" in final
    assert "demo.csv" in final and "demo.png" in final
    _check_output_and_teardown(tmp_path / "out", screen)


@pytest.mark.parametrize("key, why", [("C-c", "SIGINT received"), ("q", "q pressed")])
def test_stopped_half_way_it_leaves_nothing(terminal_demo, tmp_path, key, why):
    terminal = terminal_demo("--duration", "60")
    terminal.wait_for(_SOME_ANSWERED, timeout=8)
    time.sleep(2)
    screen = terminal.screen()
    _check_live_table(screen)
    terminal.keys(key)
    assert terminal.wait_for_exit(timeout=15) == 0
    final = terminal.screen(history=True)
    assert f"stopped ({why})" in final, final
    _check_output_and_teardown(tmp_path / "out", screen)
