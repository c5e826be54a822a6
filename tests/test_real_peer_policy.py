"""Under CI a skipped real-peer test is a failure with its reason; every run counts the real-peer tests.

Runs pytest (in-process, pytester) on small test files with the suite's hooks
(realpeers/required.py) and reads the outcomes and the closing count line.
"""

import pytest

from realpeers.required import peers_required

#: the suite's hooks (already imported by tests/conftest.py, hence no assertion rewriting to warn about)
PLUGIN = ("-p", "realpeers.required", "-W", "ignore::pytest.PytestAssertRewriteWarning")

SKIPPING_TESTS = '''
import pytest

@pytest.mark.clients
@pytest.mark.skipif(True, reason="ntpdig is not on PATH")
def test_marked_skipif():
    pass

@pytest.mark.root
def test_skips_itself():
    pytest.skip("needs root (TAP devices, network namespaces)")

@pytest.fixture
def image():
    pytest.skip("guest kernel/packages cannot be had from apt: 404")

@pytest.mark.qemu
def test_fixture_skips(image):
    pass

@pytest.mark.clients
def test_importorskip():
    pytest.importorskip("a_module_that_is_not_installed_anywhere")

@pytest.mark.clients
def test_real_peer_that_runs():
    pass

def test_in_process_skip_stays_a_skip():
    pytest.skip("not a real-peer test")
'''


def run(pytester, monkeypatch, **env):
    for name in ("CI", "HOSTCLOCK_REQUIRE_PEERS"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    pytester.makeini("[pytest]\nmarkers =\n  root: r\n  clients: c\n  qemu: q\n")
    pytester.makepyfile(test_peers=SKIPPING_TESTS)
    return pytester.runpytest(*PLUGIN, "-rA")


@pytest.mark.parametrize("env", [{"CI": "true"}, {"HOSTCLOCK_REQUIRE_PEERS": "1"}])
def test_under_ci_every_skipped_real_peer_test_fails_with_its_reason(pytester, monkeypatch, env):
    result = run(pytester, monkeypatch, **env)
    # a skip in setup (a skipif mark, a fixture) becomes an error, one in the test a failure
    result.assert_outcomes(passed=1, failed=2, errors=2, skipped=1)
    output = result.stdout.str()
    for name, reason in [("test_marked_skipif", "ntpdig is not on PATH"),
                         ("test_skips_itself", "needs root (TAP devices, network namespaces)"),
                         ("test_fixture_skips", "guest kernel/packages cannot be had from apt: 404"),
                         ("test_importorskip", "No module named 'a_module_that_is_not_installed_anywhere'")]:
        result.stdout.fnmatch_lines([f"*{name}*"])
        assert reason in output, (name, output)
    assert output.count("skipped under CI=true") >= 4
    assert result.stdout.lines[-1] == ("real-peer tests (root/clients/qemu): 1 ran and passed, 4 failed, "
                                       "0 skipped (4 of the failures were skips, refused under CI)")


def test_outside_ci_they_skip_and_the_count_says_so(pytester, monkeypatch):
    result = run(pytester, monkeypatch)
    result.assert_outcomes(passed=1, skipped=5)
    assert result.stdout.lines[-1] == "real-peer tests (root/clients/qemu): 1 ran and passed, 0 failed, 4 skipped"


def test_a_real_peer_failure_is_counted_once(pytester, monkeypatch):
    pytester.makeini("[pytest]\nmarkers =\n  root: r\n  clients: c\n  qemu: q\n")
    pytester.makepyfile(test_fail='''
import pytest

@pytest.fixture
def broken_teardown():
    yield
    raise RuntimeError("namespace could not be deleted")

@pytest.mark.root
def test_fails_in_call_and_teardown(broken_teardown):
    assert False

@pytest.mark.root
def test_passes_then_teardown_fails(broken_teardown):
    pass
''')
    monkeypatch.setenv("CI", "true")
    result = pytester.runpytest(*PLUGIN)
    assert result.stdout.lines[-1] == "real-peer tests (root/clients/qemu): 0 ran and passed, 2 failed, 0 skipped (skips refused: CI)"


@pytest.mark.parametrize("env, required", [
    ({}, False), ({"CI": "true"}, True), ({"CI": "1"}, True), ({"CI": "false"}, False),
    ({"HOSTCLOCK_REQUIRE_PEERS": "1"}, True), ({"CI": "true", "HOSTCLOCK_REQUIRE_PEERS": "0"}, False),
])
def test_when_peers_are_required(env, required):
    assert peers_required(env) is required
