"""ResponderProcess: the embedded SNTP responder in a child process, on a socket the gateway binds.

Real child processes (`python -m plugins.ntp.responder_child`) on real loopback sockets; the
faults are real signals to the child.
"""

from __future__ import annotations

import logging
import os
import pwd
import signal
from pathlib import Path

import pytest
import trio

from gateway.core.failures import ServingFailed
from plugins.ntp import responder_process
from plugins.ntp.config import NtpConfig
from plugins.ntp.drops import SntpDrop
from plugins.ntp.packet import HEADER, first_byte
from plugins.ntp.plugin import PLUGIN
from plugins.ntp.responder_child import config_from_json, config_to_json
from plugins.ntp.responder_process import ResponderProcess

TIMEOUT = 30


def request(transmit: bytes = bytes.fromhex("0102030405060708")) -> bytes:
    return HEADER.pack(first_byte(0, 4, 3), 0, 6, -20, 0, 0, bytes(4), 0, 0, 0, 0)[:40] + transmit


async def ask(address, data: bytes, timeout: float = 5.0) -> bytes | None:
    with trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_DGRAM) as sock:
        await sock.connect(address)
        await sock.send(data)
        with trio.move_on_after(timeout):
            return await sock.recv(2048)
    return None


async def until(predicate, timeout: float = 10.0) -> None:
    with trio.fail_after(timeout):
        while not predicate():
            await trio.sleep(0.02)


def test_the_settings_reach_the_child_as_they_are():
    config = NtpConfig(stratum=7, refid="GPS", report_unsync=True, listen="127.0.0.1:0")
    assert config_from_json(config_to_json(config)) == config


def test_the_default_embedded_responder_is_a_process_and_serve_keeps_its_own_thread():
    from gateway.app.config import Config
    from gateway.app.assembly import assemble

    upstream = assemble(Config()).upstreams[123]
    assert isinstance(upstream.host_server(user=None), ResponderProcess)
    from plugins.ntp.server import SntpServer
    threaded = Config.from_mapping({"ntp": {"responder": "thread"}})
    assert isinstance(assemble(threaded).upstreams[123].host_server(user=None), SntpServer)
    assert PLUGIN.table_from_arguments(type("Args", (), {})(), "serve", NtpConfig())["responder"] == "thread"


async def test_it_answers_from_another_process_and_its_counters_arrive_while_it_runs():
    server = ResponderProcess(NtpConfig())
    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            address = await nursery.start(server.run)
            assert server.pid is not None and server.pid != os.getpid()
            reply = await ask(address, request())
            assert reply is not None and len(reply) == 48
            assert reply[24:32] == bytes.fromhex("0102030405060708")  # originate = our transmit
            assert reply[0] & 7 == 4  # server mode
            await ask(address, b"too short", timeout=0.2)
            await until(lambda: server.answered == 1 and server.drops[SntpDrop.TOO_SHORT] == 1)
            nursery.cancel_scope.cancel()
    assert server.pid is None


async def test_the_responder_process_outlives_the_thread_that_started_it():
    """trio starts processes from a worker thread, which ends after 10 s idle: a child tied to that
    thread's life (PR_SET_PDEATHSIG) died then, and was restarted every 10 s, losing requests."""
    server = ResponderProcess(NtpConfig())
    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            address = await nursery.start(server.run)
            pid = server.pid
            await trio.sleep(12)
            assert server.pid == pid and server.restarts == 0
            assert await ask(address, request()) is not None
            nursery.cancel_scope.cancel()


async def test_a_killed_responder_process_is_started_again_on_the_same_port(caplog):
    server = ResponderProcess(NtpConfig())
    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            address = await nursery.start(server.run)
            assert await ask(address, request()) is not None
            await until(lambda: server.answered == 1)
            first = server.pid
            os.kill(first, signal.SIGKILL)
            await until(lambda: server.pid not in (None, first))
            assert await ask(address, request(b"\x09" * 8)) is not None  # the same address, answered again
            await until(lambda: server.answered == 2)  # the first child's count is kept
            assert server.restarts == 1
            nursery.cancel_scope.cancel()
    assert any("killed by SIGKILL" in r.getMessage() and "started it again" in r.getMessage() for r in caplog.records)


async def test_a_responder_process_that_keeps_dying_stops_the_server_with_one_line(monkeypatch):
    monkeypatch.setattr(responder_process, "MAX_RESTARTS", 2)
    server = ResponderProcess(NtpConfig())
    with trio.fail_after(TIMEOUT):
        with pytest.raises(BaseExceptionGroup) as raised:
            async with trio.open_nursery() as nursery:
                await nursery.start(server.run)
                for _ in range(3):
                    pid = server.pid
                    os.kill(pid, signal.SIGKILL)
                    await until(lambda: server.pid not in (None, pid))
                await trio.sleep_forever()
    [failure] = raised.value.exceptions
    assert isinstance(failure, ServingFailed)
    message = str(failure)
    assert "\n" not in message and "exited 3 times" in message and "stopping rather than answer nothing" in message


async def test_a_port_in_use_stops_start_up_naming_the_address():
    with trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_DGRAM) as taken:
        await taken.bind(("127.0.0.1", 0))
        host, port = taken.getsockname()
        server = ResponderProcess(NtpConfig(listen=f"{host}:{port}"))
        with trio.fail_after(TIMEOUT), pytest.raises(OSError, match=f"SNTP responder cannot bind {host}:{port}: Address already in use"):
            await server.run()
    assert server.pid is None


@pytest.mark.root
@pytest.mark.skipif(os.geteuid() != 0, reason="switching users needs root")
async def test_the_child_switches_to_the_gateways_user_and_still_answers():
    user = pwd.getpwnam("nobody")
    server = ResponderProcess(NtpConfig(), user="nobody")
    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            address = await nursery.start(server.run)
            status = Path(f"/proc/{server.pid}/status").read_text()
            uids = next(line for line in status.splitlines() if line.startswith("Uid:")).split()[1:]
            assert set(map(int, uids)) == {user.pw_uid}
            assert await ask(address, request()) is not None
            nursery.cancel_scope.cancel()


async def test_stopping_ends_the_child_and_collects_its_last_counters():
    server = ResponderProcess(NtpConfig())
    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            address = await nursery.start(server.run)
            pid = server.pid
            for i in range(5):
                assert await ask(address, request(bytes([i + 1]) * 8)) is not None
            nursery.cancel_scope.cancel()
    assert server.answered == 5  # the last report, written as the child exits, if not earlier
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # reaped: gone


def _children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            found += [int(c) for c in (task / "children").read_text().split()]
        except FileNotFoundError:  # a thread that has just ended
            pass
    return found


def test_the_gateways_responder_process_goes_when_the_gateway_is_killed(tmp_path):
    """`hostclock run` (the default responder): its child serves; SIGKILL to the gateway, which
    cleans nothing up, still ends the child (the end of its stdin pipe)."""
    import subprocess
    import sys
    import time

    gateway = subprocess.Popen([sys.executable, "-m", "gateway", "run", "--qemu-stream", str(tmp_path / "q.sock"),
                                "--no-dhcp"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        ready = gateway.stdout.readline()
        assert "on the embedded SNTP responder" in ready, ready
        children = _children(gateway.pid)
        assert len(children) == 1
        child = children[0]
        assert "plugins.ntp.responder_child" in Path(f"/proc/{child}/cmdline").read_text()
        gateway.kill()
        gateway.wait(timeout=10)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                state = Path(f"/proc/{child}/stat").read_text().split(")")[-1].split()[0]
            except FileNotFoundError:
                break
            if state == "Z":  # exited; waiting for init to reap it
                break
            time.sleep(0.05)
        else:
            raise AssertionError(f"the responder process {child} outlived the gateway")
    finally:
        if gateway.poll() is None:
            gateway.kill()
            gateway.wait()


def test_the_gateway_exits_1_with_one_line_when_its_responder_process_keeps_dying(tmp_path):
    """`hostclock run`: its responder process killed again each time it is back, 6 times within the
    minute: the gateway exits 1 with one error line, never serving on without a responder."""
    import subprocess
    import sys
    import time

    gateway = subprocess.Popen([sys.executable, "-m", "gateway", "run", "--qemu-stream", str(tmp_path / "q.sock"),
                                "--no-dhcp"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert "on the embedded SNTP responder" in gateway.stdout.readline()
        killed: set[int] = set()
        deadline = time.monotonic() + 30
        while gateway.poll() is None and time.monotonic() < deadline:
            for child in _children(gateway.pid):
                try:
                    responder = "responder_child" in Path(f"/proc/{child}/cmdline").read_text()
                except FileNotFoundError:  # gone already
                    continue
                if child not in killed and responder:
                    os.kill(child, signal.SIGKILL)
                    killed.add(child)
            time.sleep(0.01)
        _, stderr = gateway.communicate(timeout=30)
    finally:
        if gateway.poll() is None:
            gateway.kill()
            gateway.wait()
    errors = [line for line in stderr.splitlines() if line.startswith("hostclock: error:")]
    assert gateway.returncode == 1, stderr[-2000:]
    assert len(errors) == 1 and "its process exited 6 times" in errors[0], stderr[-2000:]
    assert len(killed) == 6 and "Traceback" not in stderr
