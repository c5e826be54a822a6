"""The TOML configuration loader (`Config.from_toml`), on whatever bytes the file holds.

Properties: nothing escapes but `ConfigError`, whose message is one line; a loaded
configuration is valid (its sections rebuild from their own fields without error).
"""

from __future__ import annotations

import dataclasses
import atexit
import os
import shutil
import tempfile

from bench.fuzz.frame_checks import require
from gateway.app.config import Config, ConfigError

NAME = "toml_config"
_DIR = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None
_TMP = tempfile.mkdtemp(prefix="hc-fuzz-toml-", dir=_DIR)
_PATH = os.path.join(_TMP, "hostclock.toml")
atexit.register(shutil.rmtree, _TMP, ignore_errors=True)  # the harness's scratch file goes with the process


def seeds() -> list[bytes]:
    return [b'[gateway]\ngateway_ip = "10.0.2.2"\nprefix_len = 24\nmtu = 1500\n[time]\nmax_flows = 64\n',
            b'[responder]\nstratum = 3\nrefid = "GPS"\n[dhcp]\nenabled = true\ndns_servers = ["192.168.65.1"]\n',
            b'[access]\nsocket_mode = "0660"\nmax_guests = 4\n[time]\nupstream = "127.0.0.1:123"\n',
            b'[gateway]\nhost_alias_ip = "192.168.65.2"\nunbound_udp = "drop"\n[time]\nflow_idle_timeout = 1.5\n']


def check(data: bytes) -> None:
    with open(_PATH, "wb") as f:
        f.write(data)
    try:
        config = Config.from_toml(_PATH)
    except ConfigError as e:
        require("\n" not in str(e), f"a multi-line ConfigError: {e!r}")
        return
    for section in (config.gateway, config.access, *config.plugins.values()):
        type(section)(**{f.name: getattr(section, f.name) for f in dataclasses.fields(section)})
