"""Settings: one frozen Config, built once from defaults < LAMINA_* environment < command-line flags.

Only this module reads the environment. Every field is also a `LAMINA_<FIELD NAME IN CAPS>` variable;
units are in the names (`_s`, `_mb`).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from lamina import cpus

SANDBOX_MODES = ("auto", "bwrap", "process")


@dataclasses.dataclass(frozen=True, slots=True)
class Config:
    host: str = "127.0.0.1"
    port: int = 9001
    data_dir: Path = Path(".lamina")
    access_key_id: str | None = None
    secret_access_key: str | None = None
    account_id: str = "000000000000"
    region: str = "us-east-1"
    #: auto: bubblewrap when it works here, else plain processes (and say so).
    sandbox: str = "auto"
    #: First host uid handed to sandboxed functions; each environment gets its own uid above it.
    sandbox_uid_base: int = 990000
    init_timeout_s: float = 10.0
    concurrency_limit: int = 1000
    keepalive_s: float = 600.0
    #: fixed: every idle environment lives keepalive_s; histogram: per function, the 99th percentile of
    #: its idle times (falls back to keepalive_s until it has history). See scheduler/keepalive.py.
    keepalive_policy: str = "histogram"
    #: Host memory (MB) environments may hold before idle ones are evicted; 0 = half of the machine.
    memory_budget_mb: int = 0
    #: Sandboxes per runtime (python, nodejs) started ahead of need, to hide cold starts; 0 turns it off.
    prewarm: int = 2
    #: Environments starting (init phase) at once; 0 = 4 per core. More starts queue for a free place.
    max_starting: int = 0
    #: 1: the server's socket writes are made by a native thread of their own, off the event loop
    #: (http/sender.py; needs build/lamina_sendthread.so from `make install`); 0: by the event loop.
    send_thread: int = 1
    #: 1: Python runtimes are forked from a per-version zygote into their sandboxes (no interpreter start
    #: per environment); 0: each is exec'd. Needs the isolated sandbox with cgroups.
    zygote: int = 1
    #: host: functions reach the network as on Lambda; private: a network namespace per environment,
    #: loopback only (needs the isolated sandbox).
    network: str = "host"
    #: Price table for `lamina usage` (USD; AWS's x86 list price, free tier off).
    price_per_gb_s: float = 0.0000166667
    price_per_million_requests: float = 0.20
    #: Log events older than this many days are dropped (0 keeps them forever).
    log_retention_days: int = 30
    #: 1: every log line is also appended to a file per log stream, logs/<function>/<stream>.log under the
    #: data directory (for `tail -f`; kept forever: retention is the store's). 0: the store only.
    log_files: int = 0
    #: Schedules (EventBridge rules) run this many times faster than the wall clock; for tests only.
    schedule_speedup: float = 1.0
    #: Asynchronous invocation: seconds before the first retry of an event whose run failed (the second
    #: waits twice that; throttle backoffs scale with it). Lambda's is about 60. LAMINA_ASYNC_RETRY_BASE_DELAY.
    async_retry_base_delay_s: float = 60.0
    #: On SIGTERM, running asynchronous invocations get this long to finish; the rest stay queued.
    async_shutdown_grace_s: float = 10.0
    #: Asynchronous invocations delivered at once; 0 accepts events without delivering any (an API-only node).
    async_workers: int = 32
    #: Extra or replacement interpreters: `nodejs22.x=/path/to/node,python3.12=/path/to/python3.12`.
    runtimes: str = ""
    #: CPU for the event loop's thread: auto (the highest of this process's CPUs when it has two or
    #: more), off, or a CPU number. See cpus.py.
    loop_cpu: str = "auto"
    #: Nice of the event loop's thread (functions run at 0): -5 lets it finish its batch of requests
    #: before the runtimes it wakes take its CPU. 0 turns it off; without CAP_SYS_NICE it is skipped.
    loop_nice: int = -5
    #: Keep functions off the event loop's CPU (when it is pinned): auto, while the loop is busy
    #: (>= 75% of each half second; given back below 50%); on, always; off, never. Needs cgroups' cpuset.
    reserve_loop_cpu: str = "auto"
    #: Warm invocations of sub-millisecond functions handed to environments at once before the next waits
    #: for one to finish (or to have run 10 ms): auto (6 per CPU), off, or a number. See scheduler/window.py.
    dispatch_window: str = "auto"
    #: Public base URL lamina is reached at (for Code.Location); default http://host:port.
    public_url: str | None = None

    @property
    def base_url(self) -> str:
        if self.public_url:
            return self.public_url.rstrip("/")
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::", "") else self.host
        return f"http://{host}:{self.port}"


#: Settings whose variable is not LAMINA_<FIELD NAME IN CAPS>.
ENV_NAMES = {"async_retry_base_delay_s": "LAMINA_ASYNC_RETRY_BASE_DELAY"}


def _cast(field: dataclasses.Field[Any], raw: str) -> Any:
    kind = str(field.type)
    if "int" in kind and "str" not in kind:
        return int(raw)
    if "float" in kind:
        return float(raw)
    if "Path" in kind:
        return Path(raw)
    return raw


def load(environ: Mapping[str, str] | None = None, **flags: Any) -> Config:
    """Build the Config: defaults, then LAMINA_* variables, then flags that are not None."""
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    for field in dataclasses.fields(Config):
        variable = ENV_NAMES.get(field.name, f"LAMINA_{field.name.upper()}")
        raw = environ.get(variable)
        if raw not in (None, ""):
            try:
                values[field.name] = _cast(field, raw)
            except ValueError as exc:
                raise ValueError(f"{variable}={raw!r}: {exc}") from exc
    values.update({k: v for k, v in flags.items() if v is not None})
    if "data_dir" in values:
        values["data_dir"] = Path(values["data_dir"])
    config = Config(**values)
    if config.network not in ("host", "private"):
        raise ValueError(f"network must be host or private, not {config.network!r}")
    if config.reserve_loop_cpu not in ("auto", "on", "off"):
        raise ValueError(f"reserve_loop_cpu must be auto, on or off, not {config.reserve_loop_cpu!r}")
    if config.keepalive_policy not in ("fixed", "histogram"):
        raise ValueError(f"keepalive_policy must be fixed or histogram, not {config.keepalive_policy!r}")
    if config.dispatch_window not in ("auto", "off") and not config.dispatch_window.isdigit():
        raise ValueError(f"dispatch_window must be auto, off or a number, not {config.dispatch_window!r}")
    if config.async_retry_base_delay_s < 0:
        raise ValueError(f"LAMINA_ASYNC_RETRY_BASE_DELAY must be >= 0, not {config.async_retry_base_delay_s}")
    cpus.choose(config.loop_cpu, frozenset(os.sched_getaffinity(0)))  # ValueError for a CPU not ours
    cpus.check_nice(config.loop_nice)
    if config.sandbox not in SANDBOX_MODES:
        raise ValueError(f"sandbox must be one of {', '.join(SANDBOX_MODES)}, not {config.sandbox!r}")
    return config
