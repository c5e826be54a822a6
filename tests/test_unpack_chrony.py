"""tests/host/unpack_chrony: chronyd from Debian's package, unpacked and runnable, with nothing installed.

It runs for real (apt-get download needs the package lists tests/run keeps); the dpkg
database is compared before and after, so an install, or a removal, would show.
"""

import shutil
import subprocess
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent / "host" / "unpack_chrony"


def _dpkg_status() -> bytes:
    return Path("/var/lib/dpkg/status").read_bytes()


@pytest.mark.clients
@pytest.mark.skipif(shutil.which("apt-get") is None or shutil.which("dpkg-deb") is None,
                    reason="not a Debian host (apt-get, dpkg-deb)")
def test_chronyd_is_unpacked_runnable_and_no_package_changes(tmp_path):
    before = _dpkg_status()
    done = subprocess.run([str(SCRIPT), str(tmp_path / "peers")], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    chronyd = tmp_path / "peers" / "bin" / "chronyd"
    version = subprocess.run([str(chronyd), "-v"], capture_output=True, text=True, timeout=10)
    assert version.returncode == 0 and version.stdout.startswith("chronyd (chrony) version"), version
    assert _dpkg_status() == before
    assert not any((tmp_path / "peers" / "chrony").glob("**/*.deb"))
