"""`hostclock run` does not import the demo's libraries: a serving gateway has no rich, no
matplotlib, no gateway.vm, and of the demo only its argument definitions (the parser is built
at start-up)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[4]


def test_a_serving_gateway_has_not_imported_rich_or_matplotlib(tmp_path):
    sock, probe = tmp_path / "gw.sock", tmp_path / "probe.json"
    env = dict(os.environ, HOSTCLOCK_PROBE_OUT=str(probe))
    proc = subprocess.Popen([sys.executable, "-m", "bench.run_probe", "run", "--qemu-stream", str(sock)],
                            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 20
        while not sock.exists():
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
            time.sleep(0.02)
        proc.send_signal(signal.SIGUSR1)
        while not probe.exists() or not probe.read_text().endswith("}"):
            assert time.monotonic() < deadline, "no module list from the serving gateway"
            time.sleep(0.02)
        modules = json.loads(probe.read_text())
    finally:
        proc.terminate()
        proc.communicate(timeout=10)
    assert modules["demo_libraries"] == []
    assert modules["demo_modules"] == ["gateway.app.demo", "gateway.app.demo.arguments"]
    assert modules["vm_modules"] == []  # the guest image and QEMU runner come with the demo only
