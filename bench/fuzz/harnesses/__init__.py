"""One harness per parser or state machine. Each module has `NAME`, `seeds()` (valid inputs to start
from) and `check(data)`, which raises on a broken property (`PropertyViolation`) and lets any
unexpected exception escape. `check` uses only the standard library and hostclock: the corpus
replay in the test suite runs it without the fuzzer."""

HARNESSES = ["stack_frames", "upstream_return", "ntp_screening", "dhcp_service", "vmnet_handshake",
             "stream_framing", "pcap_reader", "toml_config"]
