"""What the guest runs in drift mode, and what it says about its clock.

A ``Scenario`` becomes kernel command-line words (``cmdline()``) that the
guest's /init reads: the drift set inside the guest with busybox
``adjtimex -t TICK`` and the time-keeping policy it runs (clock-safe: inside the VM).  ``observe(line)``
turns one console line into an ``Observation`` of the guest's clock, always
with the same sign: ``offset_s`` = guest clock minus host clock (negative:
the guest is behind).

The tick: the kernel adds TICK microseconds to its clock per 1/USER_HZ s;
USER_HZ is 100, so 10000 is nominal and one unit is 100 ppm (9993: -700 ppm,
the Docker VM's drift; 9800: -2 %).  ``tick="s5"`` changes it at random every
10-30 s within +-60 units.

Policies (what the guest does about its clock):

* ``none``: nothing; the clock drifts at the tick's rate.
* ``sntpc``: set the clock from the gateway every ``sntpc_s`` seconds
  (``chronyd -q``, one sample, a step; clock-safe: inside the VM), as sntpc or a cron'd ntpdate does.
* ``chronyd-default``: the chronyd daemon with Debian's settings, its server
  the one DHCP option 42 named (``server GW iburst``, ``makestep 1 3``).
* ``chronyd-tuned``: chronyd with short polls to the gateway
  (``minpoll``/``maxpoll``) and ``makestep 0.1 -1`` (step whenever >100 ms).

Sources of observations (what the guest prints; see gateway/vm/guest/init):

* ``guest-observer``: a second chronyd that never touches the clock
  (``chronyd -x``), polling the gateway every 2^``observe_poll`` s; its
  measurements log, as for ``guest-measurements``.  The main inside view.
* ``guest-probe``: a ``chronyd -Q`` (query only) every ``probe_s`` seconds.
* ``guest-first``: the offset the guest's first ``chronyd -q`` corrected, at the
  start of every drift scenario (the RTC had given it the time to the second).
* ``guest-sntpc``: the offset each ``chronyd -q`` of the sntpc policy corrected
  (the sawtooth's tooth, just before it is cut).
* ``guest-measurements``: the chronyd daemon's ``log measurements`` lines
  (each sample's offset, RFC 5905's theta; chrony: positive = local clock slow).
* ``guest-tracking``: its ``log tracking`` lines (the offset at each clock
  update; chrony: positive = local clock ahead).
* ``guest-step``: the daemon's "System clock wrong by"/"was stepped by" lines.
"""

from __future__ import annotations

import dataclasses
import re

NOMINAL_TICK = 10000
PPM_PER_TICK_UNIT = 100.0
S5 = "s5"
POLICIES = ("none", "sntpc", "chronyd-default", "chronyd-tuned")
# The chronyd configuration the measurements recommend (docs/guest-setup.md).
RECOMMENDED_MINPOLL = -2
RECOMMENDED_MAXPOLL = 0
RECOMMENDED_MAKESTEP = (0.1, -1)


def tick_ppm(tick: int) -> float:
    """The frequency error a tick gives the guest clock, in ppm (9993: -700)."""
    return (tick - NOMINAL_TICK) * PPM_PER_TICK_UNIT


@dataclasses.dataclass(frozen=True)
class Scenario:
    tick: int | str = NOMINAL_TICK
    policy: str = "none"
    delay_s: int = 0         # the clock runs free this long before the policy starts
    probe_s: int = 5
    observe_poll: int | None = -2   # the chronyd -x observer's poll exponent (None: no observer)
    sntpc_s: int = 30
    minpoll: int = RECOMMENDED_MINPOLL
    maxpoll: int = RECOMMENDED_MAXPOLL
    makestep: tuple[float, int] = RECOMMENDED_MAKESTEP
    duration_s: int = 3600
    seed: int = 1
    #: once on the host's clock, the guest's is set this many whole seconds off it before the
    #: drift begins (negative: behind), as a VM that comes up behind its host
    start_offset_s: int = 0

    def __post_init__(self) -> None:
        if self.policy not in POLICIES:
            raise ValueError(f"policy must be one of {', '.join(POLICIES)}, not {self.policy!r}")
        if self.tick != S5 and not (isinstance(self.tick, int) and 9000 <= self.tick <= 11000):
            raise ValueError(f"tick must be 9000..11000 (the kernel's +-10 %) or {S5!r}, "
                             f"not {self.tick!r}")
        if not -6 <= self.minpoll <= self.maxpoll <= 24:
            raise ValueError(f"need -6 <= minpoll <= maxpoll <= 24, not {self.minpoll}, {self.maxpoll}")
        if not isinstance(self.start_offset_s, int) or abs(self.start_offset_s) > 86_400:
            raise ValueError(f"start_offset_s must be whole seconds within a day, not {self.start_offset_s!r}")
        for name in ("delay_s", "probe_s", "sntpc_s", "duration_s", "seed"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 0:
                raise ValueError(f"{name} must be a whole number >= 0, not {value!r}")

    @property
    def name(self) -> str:
        """tick-9993, tick-10000, s5."""
        return S5 if self.tick == S5 else f"tick-{self.tick}"

    @property
    def ppm(self) -> float | None:
        return None if self.tick == S5 else tick_ppm(int(self.tick))

    def cmdline(self) -> str:
        """The kernel command-line words that make the guest run this scenario."""
        threshold, limit = self.makestep
        words = {
            "mode": "drift", "tick": self.tick, "policy": self.policy, "delay": self.delay_s,
            "probe": self.probe_s,
            "observe": "off" if self.observe_poll is None else self.observe_poll,
            "sntpc": self.sntpc_s, "minpoll": self.minpoll, "maxpoll": self.maxpoll,
            "makestep": f"{threshold:g},{limit}", "duration": self.duration_s, "seed": self.seed,
        }
        if self.start_offset_s:
            words["start"] = self.start_offset_s
        return " ".join(f"hostclock.{k}={v}" for k, v in words.items())


@dataclasses.dataclass(frozen=True)
class Observation:
    """The guest's clock seen at host time T (time.time()): OFFSET_S = guest - host."""

    t: float
    source: str
    offset_s: float | None = None
    extra: dict = dataclasses.field(default_factory=dict)


_OBS = re.compile(r"HOSTCLOCK-OBS (\w+) (.*)")
_LOG = re.compile(r"HOSTCLOCK-LOG (measurements|tracking|observer) (.*)")
_WRONG = re.compile(r"System clock wrong by ([-+0-9.eE]+) seconds")
_STEPPED = re.compile(r"System clock was stepped by ([-+0-9.eE]+) seconds")
_NUMBER = r"[-+]?[0-9.]+(?:[eE][-+]?[0-9]+)?"


def _float(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def observe(t: float, text: str) -> Observation | None:
    """One console line (arrived at host time T) as an Observation, or None."""
    m = _OBS.search(text)
    if m:
        kind, rest = m.groups()
        fields = dict(re.findall(r"(\w+)=(\S+)", rest))
        if kind == "tick" and "value" in fields:
            return Observation(t, "guest-tick", None, {"tick": int(fields["value"])})
        if kind == "policy" and "name" in fields:
            return Observation(t, "guest-policy", None, {"policy": fields["name"]})
        if kind in ("probe", "sntpc", "first") and "wrong_by" in fields:
            wrong_by = _float(fields["wrong_by"])
            if wrong_by is not None:
                # chronyd: "wrong by +X" means the clock is X behind.
                return Observation(t, f"guest-{kind}", -wrong_by)
        return None
    m = _LOG.search(text)
    if m:
        kind, rest = m.groups()
        f = rest.split()
        if kind in ("measurements", "observer") and len(f) >= 13:
            theta, delay = _float(f[11]), _float(f[12])
            if theta is not None:
                # RFC 5905's theta: positive when the local clock is slow.  A sample
                # that failed one of chrony's tests (a 0 in columns 6-8, e.g. a
                # delay far above the others) is one chronyd itself set aside.
                valid = "0" not in "".join(f[5:8])
                source = "guest-" + kind + ("" if valid else "-rejected")
                return Observation(t, source, -theta, {"delay_s": delay, "poll": _float(f[8])})
        if kind == "tracking" and len(f) >= 7:
            freq, offset = _float(f[4]), _float(f[6])
            if offset is not None:
                # tracking: positive when the local clock was ahead.
                return Observation(t, "guest-tracking", offset, {"freq_ppm": freq})
        return None
    if "guest-chronyd:" in text:
        m = _STEPPED.search(text)
        if m:
            stepped = float(m.group(1))
            # stepped by +X: the clock was X behind and moved forward.
            return Observation(t, "guest-step", -stepped, {"stepped_s": stepped})
        m = _WRONG.search(text)
        if m:
            return Observation(t, "guest-step", -float(m.group(1)), {"slew": True})
    return None
