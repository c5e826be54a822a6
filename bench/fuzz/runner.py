"""One harness under atheris: `python -m bench.fuzz.runner HARNESS [libFuzzer arguments]`.

hostclock's modules (gateway, plugins) are imported inside `atheris.instrument_imports`,
so their branches guide the fuzzer; the harness's own checks and the libraries are not
instrumented. An exception escaping `check` (a PropertyViolation or a bug) is a crash:
libFuzzer writes the input to its artifact prefix and stops with a non-zero status.
"""

from __future__ import annotations

import importlib
import sys


def main() -> None:
    import atheris  # the optional 'fuzz' extra: pip install -e '.[fuzz]'

    name, libfuzzer_args = sys.argv[1], sys.argv[2:]
    with atheris.instrument_imports(include=["gateway", "plugins"]):
        import gateway.app.config  # noqa: F401  (everything the harnesses reach, instrumented)
        import gateway.core.stack  # noqa: F401
        import gateway.edges.pcap_reader  # noqa: F401
        import gateway.edges.transports.framing  # noqa: F401
        import gateway.edges.transports.vmnet_handshake  # noqa: F401
        import plugins.dhcp.service  # noqa: F401
        import plugins.ntp.responder  # noqa: F401
        import plugins.ntp.time_service  # noqa: F401
    harness = importlib.import_module(f"bench.fuzz.harnesses.{name}")
    atheris.Setup([sys.argv[0], *libfuzzer_args], harness.check)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
