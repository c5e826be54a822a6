"""The time responder plugin: UDP/123 on the gateway, answered from the host clock.

* `time_service` — the gateway side (sans-IO): screens guest requests and forwards them;
* `responder` — the sans-IO SNTP responder (RFC 4330 §6, RFC 5905 server mode);
* `server` — its loopback server (a thread with kernel receive timestamps);
* `responder_process`, `responder_child` — that server in a process of its own (the default);
* `packet`, `timestamps` — the NTP header's layout and screening rules, era-aware timestamps;
* `host_clock`, `kernel_state` — the read-only host-clock edge;
* `replay_answerer`, `exchange` — what `hostclock replay` uses, in-process;
* `config` — the ``[ntp]`` table; `plugin` — the entry point that ties them together.

Importing this package imports nothing else: the server (and trio) only when the gateway runs.
"""
