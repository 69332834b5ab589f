"""Which environment serves an invocation: warm reuse, scale-out, keep-alive, retirement.

asyncio glue around the pure decisions in pool.py. One Pool per function version and revision; an
invocation takes an idle environment of its pool, or waits while new ones start. Every background
task the scheduler starts is tracked here and cancelled by `aclose()`.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import itertools
import os
import logging
import uuid
from pathlib import Path
from collections.abc import Awaitable, Callable

from lamina.clock import Clock
from lamina.errors import FunctionErrorType, InvalidParameterValue, SandboxError, TooManyRequests
from lamina.metrics import Metrics
from lamina.model import FunctionConfig, Invocation
from lamina.runtime_api.state import EnvState
from lamina.sandbox.base import SandboxDriver, SandboxSpec, provided_bootstrap
from lamina.sandbox.slots import Slots
from lamina.scheduler.environment import Endpoint, Environment, LogSink, Outcome, exit_text, platform_error
from lamina.scheduler.keepalive import IdleHistogram, keepalive_s, prewarm_s, reuse_value
from lamina.scheduler.placement import admit, reservation_problem, unreserved_limit
from lamina.scheduler.pool import PoolCounts, expired, fills_room, to_spawn
from lamina.scheduler.window import DispatchWindow, Entry, Pace
from lamina.runtimes.registry import Runtime

log = logging.getLogger("lamina.scheduler")

NEW_ENV_CHARGE_MB = 16  # what a new environment is charged until its memory is measured


def default_memory_budget_mb() -> int:
    """Half of the machine's memory."""
    try:
        with open("/proc/meminfo") as f:
            total_kb = next(int(line.split()[1]) for line in f if line.startswith("MemTotal:"))
    except (OSError, StopIteration):
        return 4096
    return total_kb // 2048


#: Runtimes started with flags from the function's MemorySize (node's V8 heap sizes, the JVM's -Xmx): a
#: standby fits only functions of the size it was started for.
SIZED_AT_START = ("nodejs", "java")
STANDBY_TMP_MB = 512  # a standby's /tmp is sized at start: only the default EphemeralStorage fits

PoolKey = tuple[str, str, str]  # (function name, version, revision id)


@dataclasses.dataclass(frozen=True, slots=True)
class Recipe:
    """Everything needed to start an environment of one function version."""

    config: FunctionConfig
    runtime: Runtime
    code_dir: Path
    env: dict[str, str]
    opt_dir: Path | None = None  # the function's layers, merged (mounted read-only at /opt)


@dataclasses.dataclass(frozen=True, slots=True)
class InitFailure:
    """The init phase of a new environment failed; the waiting invocation reports it."""

    payload: bytes | None  # what the runtime posted to /init/error, if anything
    error_type: str
    text: str = ""
    environment: Environment | None = None  # the environment that failed, for its log


@dataclasses.dataclass(slots=True)
class Pool:
    key: PoolKey
    envs: set[Environment] = dataclasses.field(default_factory=set)
    idle: list[Environment] = dataclasses.field(default_factory=list)
    waiters: collections.deque[asyncio.Future[Environment | InitFailure]] = dataclasses.field(
        default_factory=collections.deque
    )
    retired: bool = False
    #: How to start one more environment of this pool (set by the first invocation that waits).
    recipe: Recipe | None = None
    #: Provisioned concurrency: environments started ahead and kept warm, never reaped or evicted.
    provisioned: int = 0
    provisioned_recipe: Recipe | None = None
    provisioned_envs: set[Environment] = dataclasses.field(default_factory=set)
    #: Whether the function's invocations are short enough to wait for the dispatch window.
    pace: Pace = dataclasses.field(default_factory=Pace)

    def counts(self) -> PoolCounts:
        starting = finishing = 0
        for environment in self.envs:  # one pass: a burst asks this for every invocation that waits
            state = environment.state
            if state is EnvState.INIT or state is EnvState.STANDBY:  # STANDBY here: a standby being adopted
                starting += 1                                          # (its code linked off the loop)
            elif state is EnvState.RESPONDED:
                finishing += 1
        waiting = len(self.waiters)  # answered ones are popped, abandoned ones removed (_wait_for_env)
        return PoolCounts(len(self.idle), starting, finishing, waiting)


def _in_burst(pool: Pool) -> bool:
    """More of the function's invocations wait than one environment about to start would take."""
    return len(pool.waiters) > 1


@dataclasses.dataclass(slots=True)
class Activity:
    """What the keep-alive policy knows of one function's traffic."""

    idle: IdleHistogram = dataclasses.field(default_factory=IdleHistogram)
    last_end: float | None = None
    last_start: float | None = None
    gap_ewma_s: float = 3600.0  # mean time between invocations, smoothed

    def started(self, now: float, busy: bool) -> None:
        if self.last_end is not None and not busy:
            self.idle.add(now - self.last_end)
        if self.last_start is not None:
            self.gap_ewma_s = 0.8 * self.gap_ewma_s + 0.2 * max(now - self.last_start, 1e-3)
        self.last_start = now


@dataclasses.dataclass(frozen=True, slots=True)
class SchedulerStatistics:
    environments: int
    idle: int
    in_flight: int


class Scheduler:
    def __init__(
        self,
        driver: SandboxDriver,
        clock: Clock,
        sink: LogSink,
        open_endpoint: Callable[[Environment], Awaitable[Endpoint]],
        *,
        uid_base: int,
        init_timeout_s: float,
        concurrency_limit: int,
        keepalive_s: float,
        slots: Slots | None = None,
        standby_per_runtime: int = 0,
        metrics: Metrics | None = None,
        max_starting: int = 0,
        keepalive_policy: str = "histogram",
        memory_budget_mb: int = 0,
        dispatch_window: int = 0,
    ) -> None:
        self._driver = driver
        self._clock = clock
        self._sink = sink
        self._open_endpoint = open_endpoint
        self._uid_base = uid_base
        self._uids = itertools.count()
        self._init_timeout_s = init_timeout_s
        self._limit = concurrency_limit
        self._keepalive_s = keepalive_s
        self._pools: dict[PoolKey, Pool] = {}
        self._env_pool: dict[Environment, Pool] = {}
        #: Sum of memory_charge_mb over _env_pool, kept as environments come, go and measure their peaks
        #: (summing ~1,000 environments for every environment started was 6% of the loop in a burst).
        self._charged_mb = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self.in_flight = 0
        self._in_flight: collections.Counter[str] = collections.Counter()
        self._unreserved_in_flight = 0
        self._reserved: dict[str, int] = {}
        self.metrics = metrics or Metrics()
        #: Called once per finished invocation (config, request id, outcome, cold): metering.
        self.meter: Callable[[FunctionConfig, str, Outcome, bool], None] | None = None
        #: Environments in their init phase, across all functions, and how many may be at once: a burst
        #: starting everything together would starve every init past its 10 s limit.
        self._starting: set[Environment] = set()
        self._max_starting = max_starting or 4 * (os.cpu_count() or 1)
        self._keepalive_policy = keepalive_policy
        self._activity: dict[str, Activity] = {}
        self._prewarm_timers: dict[PoolKey, asyncio.TimerHandle] = {}
        self._prewarmed: set[Environment] = set()
        #: Host memory environments may hold (MB); idle ones are evicted by least value to stay under it.
        self._memory_budget_mb = memory_budget_mb or default_memory_budget_mb()
        #: Environments started ahead of need, per runtime id (only with slots; see sandbox/slots.py).
        self._slots = slots
        self._standby_target = standby_per_runtime if slots is not None else 0
        #: runtime id -> MemorySize of the function its last standby went to: the next standbys' cgroups
        #: are made that size, so handing one over to the same function changes no limit (a burst).
        self._standby_memory: dict[str, int] = {}
        self._standby: dict[str, list[Environment]] = {}
        #: Runtimes whose standbys were not replaced during a burst of their functions: reap() does it after.
        self._refill_later: dict[str, Runtime] = {}
        self._standby_runtime: dict[Environment, Runtime] = {}
        #: Warm hand-offs in their first moments, across all functions (window.py); 0 turns it off.
        self._window = DispatchWindow(dispatch_window) if dispatch_window > 0 else None
        self._window_waiters: collections.deque[asyncio.Future[Entry]] = collections.deque()
        self._window_timer: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    # invoke path -------------------------------------------------------------------------------

    async def invoke(self, recipe: Recipe, invocation: Invocation) -> Outcome:
        name = recipe.config.name
        reason = admit(name, self._limit, self._reserved, self._in_flight, self._unreserved_in_flight)
        if reason is not None:
            self.metrics.throttled(name, self._clock.time())
            raise TooManyRequests(reason)
        reserved = name in self._reserved
        activity = self._activity.get(name)
        if activity is None:
            activity = self._activity[name] = Activity()
        activity.started(self._clock.monotonic(), self._in_flight[name] > 0)
        self._in_flight[name] += 1
        self.in_flight += 1
        if not reserved:
            self._unreserved_in_flight += 1
        entry: Entry | None = None
        try:
            pool = self._pool_for(recipe.config)
            got: Environment | InitFailure
            window = self._window
            if pool.idle and window is not None and pool.pace.quick:
                if self._window_waiters or (entry := window.enter(self._clock.monotonic())) is None:
                    entry = await self._window_turn()
            if pool.idle:
                got = pool.idle.pop()
            else:
                got = await self._wait_for_env(pool, recipe)
            if isinstance(got, InitFailure):
                outcome = self._init_failure_outcome(got, invocation)
            else:
                outcome = await got.invoke(invocation)
            pool.pace.add(outcome.duration_ms)
            cold = outcome.init_ms is not None or isinstance(got, InitFailure)
            self.metrics.invoked(name, outcome.duration_ms, outcome.error_type is not None, cold)
            if self.meter is not None:
                self.meter(recipe.config, invocation.request_id, outcome, cold)
            return outcome
        finally:
            if entry is not None:
                self._window_leave(entry)
            activity.last_end = self._clock.monotonic()
            self.in_flight -= 1
            self._in_flight[name] -= 1
            if not self._in_flight[name]:
                del self._in_flight[name]
            if not reserved:
                self._unreserved_in_flight -= 1

    # dispatch window ---------------------------------------------------------------------------

    async def _window_turn(self) -> Entry:
        """Wait, behind those already waiting, for a place in the dispatch window."""
        if self._loop is None:
            self._loop = asyncio.get_running_loop()  # once: on Python 3.11 each lookup is a getpid()
        waiter: asyncio.Future[Entry] = self._loop.create_future()
        self._window_waiters.append(waiter)
        self._arm_window_timer()
        try:
            return await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self._window_leave(waiter.result())
            elif waiter in self._window_waiters:
                self._window_waiters.remove(waiter)
            raise

    def _window_leave(self, entry: Entry) -> None:
        assert self._window is not None
        self._window.leave(entry)
        if self._window_waiters:
            self._window_admit()

    def _window_admit(self) -> None:
        """Give free places to the first waiters, in order; a timer for when the next place frees by age."""
        window, waiters = self._window, self._window_waiters
        assert window is not None
        now = self._clock.monotonic()
        while waiters:
            if waiters[0].done():  # cancelled
                waiters.popleft()
                continue
            entry = window.enter(now)
            if entry is None:
                break
            waiters.popleft().set_result(entry)
        self._arm_window_timer()

    def _arm_window_timer(self) -> None:
        if not self._window_waiters or self._window_timer is not None:
            return
        assert self._window is not None
        due = self._window.next_expiry()
        delay = 0.0 if due is None else max(0.0, due - self._clock.monotonic())
        assert self._loop is not None  # a waiter has looked it up
        self._window_timer = self._loop.call_later(delay, self._window_timer_fired)

    def _window_timer_fired(self) -> None:
        self._window_timer = None
        self._window_admit()

    # concurrency -------------------------------------------------------------------------------

    def set_reserved(self, name: str, value: int | None) -> None:
        """Reserve `value` concurrent executions for a function (None removes the reservation).

        Raises InvalidParameterValue when it would leave less than the unreserved minimum."""
        if value is None:
            self._reserved.pop(name, None)
            return
        problem = reservation_problem(name, value, self._limit, self._reserved)
        if problem is not None:
            raise InvalidParameterValue(problem)
        self._reserved[name] = value

    def reserved(self, name: str) -> int | None:
        return self._reserved.get(name)

    @property
    def account_limit(self) -> int:
        return self._limit

    @property
    def unreserved_limit(self) -> int:
        return unreserved_limit(self._limit, self._reserved)

    def concurrency(self) -> dict[str, int]:
        """Invocations running now, per function."""
        return dict(self._in_flight)

    def environments_by_state(self) -> dict[tuple[str, str], int]:
        """(function, state) -> environments; standby ones (no function yet) under function ""."""
        counts: collections.Counter[tuple[str, str]] = collections.Counter(
            (pool.key[0], str(e.state)) for e, pool in self._env_pool.items())
        standby = sum(len(ready) for ready in self._standby.values())
        if standby:
            counts[("", "standby")] += standby
        return dict(counts)

    async def _wait_for_env(self, pool: Pool, recipe: Recipe) -> Environment | InitFailure:
        waiter: asyncio.Future[Environment | InitFailure] = asyncio.get_running_loop().create_future()
        pool.waiters.append(waiter)
        self._rebalance(pool, recipe)
        try:
            return await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled() and isinstance(waiter.result(), Environment):
                self._became_idle(pool, waiter.result())
            elif waiter in pool.waiters:
                pool.waiters.remove(waiter)  # the caller gave up: it no longer counts as waiting
            raise

    def _init_failure_outcome(self, failure: InitFailure, invocation: Invocation) -> Outcome:
        rid = invocation.request_id
        payload = failure.payload or platform_error(failure.error_type, rid, failure.text)
        if failure.environment is not None:
            return failure.environment.report_init_failure(invocation, payload, failure.error_type)
        return Outcome(payload, "application/json", failure.error_type, "init-error")

    # pools ---------------------------------------------------------------------------------------

    def _pool_for(self, config: FunctionConfig) -> Pool:
        key = (config.name, config.version, config.revision_id)
        pool = self._pools.get(key)
        if pool is None:
            pool = self._pools[key] = Pool(key)
        return pool

    def _rebalance(self, pool: Pool, recipe: Recipe | None) -> None:
        if recipe is not None:
            pool.recipe = recipe
        recipe = pool.recipe
        if recipe is None:
            return
        room = max(0, min(self._limit - self._environment_count(), self._max_starting - len(self._starting)))
        if room == 0:  # the usual case in a burst: not worth counting the pool (one pass over its environments)
            return
        count = room if fills_room(len(pool.waiters), len(pool.envs), room) else to_spawn(pool.counts(), room)
        for _ in range(count):
            if not self._make_memory_room(NEW_ENV_CHARGE_MB):
                return  # the budget is held by busy environments: the invocation waits for one to free
            self._spawn(pool, recipe)

    def memory_used_mb(self) -> int:
        return self._charged_mb + NEW_ENV_CHARGE_MB * sum(len(ready) for ready in self._standby.values())

    def _enlist(self, environment: Environment, pool: Pool) -> None:
        self._env_pool[environment] = pool
        self._charged_mb += environment.memory_charge_mb
        environment.on_charge = self._recharge

    def _delist(self, environment: Environment) -> None:
        if self._env_pool.pop(environment, None) is not None:
            self._charged_mb -= environment.memory_charge_mb
            environment.on_charge = None

    def _recharge(self, delta_mb: int) -> None:
        self._charged_mb += delta_mb

    def _make_memory_room(self, needed_mb: int) -> bool:
        """Evict idle environments, least valuable first, until `needed_mb` fits the budget."""
        used = self.memory_used_mb()
        if used + needed_mb <= self._memory_budget_mb:
            return True
        now = self._clock.monotonic()
        candidates = []
        for pool in self._pools.values():
            activity = self._activity.get(pool.key[0])
            keep = keepalive_s(activity.idle if activity else None, self._keepalive_s, self._keepalive_policy)
            rate = 1.0 / activity.gap_ewma_s if activity else 0.0
            for environment in pool.idle:
                if environment in pool.provisioned_envs:
                    continue
                value = reuse_value(now - environment.idle_since, keep, rate, environment.memory_charge_mb)
                candidates.append((value, environment.idle_since, pool, environment))
        for ready in self._standby.values():
            candidates += [(0.0, e.idle_since, None, e) for e in ready]
        candidates.sort(key=lambda c: (c[0], c[1]))
        for _, _, pool, environment in candidates:
            if used + needed_mb <= self._memory_budget_mb:
                break
            if pool is not None:
                pool.idle.remove(environment)
            else:
                self._forget_standby(environment)
            used -= environment.memory_charge_mb
            environment.kill()
        return used + needed_mb <= self._memory_budget_mb

    def _rebalance_waiting(self) -> None:
        """Room to start environments opened up: serve the pools whose invocations wait, those with the
        fewest environments first. A function scaling out (its invocations waiting by the dozen) would
        otherwise take every start as it frees, and another function's first environment wait for
        all of them (seconds, in a burst); on Lambda each function scales on its own."""
        for pool in sorted((p for p in self._pools.values() if p.waiters), key=lambda p: len(p.envs)):
            if len(self._starting) >= self._max_starting:
                return
            self._rebalance(pool, None)

    def _environment_count(self) -> int:
        return len(self._env_pool)

    def _spec(self, env_id: str, runtime: Runtime, code_dir: Path, env_vars: dict[str, str],
              tmp_mb: int, memory_mb: int, opt_dir: Path | None = None) -> SandboxSpec:
        return SandboxSpec(env_id=env_id, uid=self._uid_base + next(self._uids) % 60000, code_dir=code_dir,
                           runtime=runtime, env=env_vars, tmp_mb=tmp_mb, memory_mb=memory_mb, opt_dir=opt_dir)

    def _spawn(self, pool: Pool, recipe: Recipe, *, standby: bool = True) -> Environment:
        config = recipe.config
        environment = self._take_standby(recipe) if standby else None
        if environment is not None:
            self._starting.add(environment)
            pool.envs.add(environment)
            self._enlist(environment, pool)
            self._start_task(self._adopt(pool, environment, recipe))
            return environment  # _adopt refills the standbys once this one's init is over
        env_id = uuid.uuid4().hex
        spec = self._spec(env_id, recipe.runtime, recipe.code_dir, recipe.env, config.ephemeral_storage_mb,
                          config.memory_mb, recipe.opt_dir)
        environment = Environment(env_id, config, spec, self._driver, self._clock, self._sink, self._changed)
        self._starting.add(environment)
        pool.envs.add(environment)
        self._enlist(environment, pool)
        self._start_task(self._boot(pool, environment))
        self._replace_standby(pool, recipe.runtime)
        return environment

    # standby -------------------------------------------------------------------------------------

    def _take_standby(self, recipe: Recipe) -> Environment | None:
        """A standby environment of this runtime, given this code, if one fits."""
        runtime, code_dir, opt_dir = recipe.runtime, recipe.code_dir, recipe.opt_dir
        if self._slots is None or not runtime.can_standby:
            return None
        if opt_dir is not None and not self._slots.linkable(opt_dir):
            return None
        if recipe.config.ephemeral_storage_mb != STANDBY_TMP_MB or not self._slots.linkable(code_dir):
            return None
        if runtime.startup_variables(recipe.env):  # a standby's interpreter has started without them
            return None
        if runtime.family == "provided" and provided_bootstrap(code_dir, opt_dir) is None:
            return None  # lamina-standby execs /var/task/bootstrap or /opt/bootstrap; neither: _boot says so
        ready = self._standby.get(runtime.id)
        memory_mb = recipe.config.memory_mb
        self._standby_memory[runtime.id] = memory_mb  # the refill after this makes standbys of this size
        sized = runtime.family in SIZED_AT_START
        if ready and sized and all(e.spec.memory_mb != memory_mb for e in ready):
            other = ready[0]  # all started for another size: room for one of this size instead
            self._forget_standby(other)
            other.kill()
            return None
        for environment in reversed(list(ready or ())):
            if sized and environment.spec.memory_mb != memory_mb:
                continue
            ready.remove(environment)
            self._standby_runtime.pop(environment, None)
            if environment.state is EnvState.STANDBY:
                return environment
        return None

    async def _adopt(self, pool: Pool, environment: Environment, recipe: Recipe) -> None:
        """A standby environment takes the function: its code is linked into its slot (off the loop: in a
        burst, with the disk busy, a link could hold the loop for a millisecond), then it is assigned.
        The standby taken is replaced once the init is over, not meanwhile: a new JVM (~0.4 CPU-s) starting
        beside a Java init doubled that cold start (bench/runtimes_bench.py --only java)."""
        await self._assign_standby(pool, environment, recipe)
        self._replace_standby(pool, recipe.runtime)  # not when cancelled: the server is stopping

    async def _assign_standby(self, pool: Pool, environment: Environment, recipe: Recipe) -> None:
        assert self._slots is not None
        try:
            await asyncio.get_running_loop().run_in_executor(None, self._fill_slots, environment.spec, recipe)
        except OSError as exc:
            log.warning("environment %s: cannot link the function's code: %s", environment.id, exc)
            environment.kill()
            self._abandon(pool, environment, InitFailure(None, FunctionErrorType.SANDBOX_FAILURE, str(exc)))
            return
        if environment.state is not EnvState.STANDBY:  # it ended meanwhile; its exit has been handled
            return
        environment.assign(recipe.config, recipe.env)
        await self._await_init(pool, environment)

    def warm_runtime(self, runtime: Runtime, memory_mb: int) -> None:
        """A function of this runtime was just deployed: start its standby sandboxes now (for Python,
        this also starts the runtime's zygote), so that the first invocations, a burst of them
        included, do not wait for either; for a runtime sized at start, at this function's size (the
        standbys of another size are stopped). Off the event loop it does nothing (the first invoke will)."""
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return
        if runtime.family in SIZED_AT_START and self._slots is not None:
            self._standby_memory[runtime.id] = memory_mb
            for other in [e for e in self._standby.get(runtime.id, ()) if e.spec.memory_mb != memory_mb]:
                self._forget_standby(other)
                other.kill()
        self._refill_standby(runtime)

    def _replace_standby(self, pool: Pool, runtime: Runtime) -> None:
        """Top the runtime's standbys up after one was taken or an environment started without one, but not
        while more invocations of the function wait (a burst): each standby would be taken at once, and one
        costs more than an environment started for the function (its code slot's directories and links,
        then the assignment), while the refills race the burst's own starts for the CPU. A burst of 1,000
        ran ~5-8% faster without them (docs/benchmarks.md). reap() tops them up once the burst is over."""
        if _in_burst(pool):
            self._refill_later[runtime.id] = runtime
            return
        self._refill_standby(runtime)

    def _fill_slots(self, spec: SandboxSpec, recipe: Recipe) -> None:
        """Link the function's code, and its layers, into a standby's slots (blocking). Every runtime takes its
        layers from /opt as a function is assigned: a custom runtime's bootstrap may come from one, Node.js
        resolves NODE_PATH (/opt/nodejs/...) as it requires, lamina's Python client puts /opt/python on
        sys.path once it has its function, Ruby's RUBYLIB and GEM_PATH name /opt/ruby/... from the start
        (lamina's client rescans the gem specifications once assigned), and lamina's Java client reads
        /opt/java/lib as it loads the handler."""
        assert self._slots is not None
        self._slots.fill(spec.code_dir, recipe.code_dir)
        if recipe.opt_dir is not None and spec.opt_dir is not None:
            self._slots.fill(spec.opt_dir, recipe.opt_dir)

    def _create_slots(self, spec: SandboxSpec) -> None:
        assert self._slots is not None
        self._slots.create(spec.code_dir)
        if spec.opt_dir is not None:
            self._slots.create(spec.opt_dir)

    def _remove_slots(self, spec: SandboxSpec) -> None:
        assert self._slots is not None
        self._slots.remove(spec.code_dir)  # not a slot (an environment started for its function): left alone
        if spec.opt_dir is not None:
            self._slots.remove(spec.opt_dir)

    def _refill_standby(self, runtime: Runtime) -> None:
        if self._slots is None or not runtime.can_standby:
            return
        ready = self._standby.setdefault(runtime.id, [])
        while len(ready) < self._standby_target:
            env_id = uuid.uuid4().hex
            slot = self._slots.path(env_id)  # made by _start_standby, off the loop
            opt = self._slots.path(env_id + "-opt")  # an (empty) /opt slot too, for the function's layers
            spec = self._spec(env_id, runtime, slot, {}, STANDBY_TMP_MB, self._standby_memory.get(runtime.id, 128),
                              opt)
            environment = Environment(env_id, None, spec, self._driver, self._clock, self._sink, self._changed)
            ready.append(environment)
            self._standby_runtime[environment] = runtime
            self._start_task(self._start_standby(environment))

    async def _start_standby(self, environment: Environment) -> None:
        assert self._slots is not None
        try:
            await asyncio.get_running_loop().run_in_executor(None, self._create_slots, environment.spec)
            if environment not in self._standby_runtime and environment not in self._env_pool:
                self._remove_slots(environment.spec)  # evicted before it started: nothing to run
                return
            await environment.start(self._open_endpoint)
        except Exception as exc:  # supervisor: a standby that cannot start is dropped, loudly
            if not isinstance(exc, SandboxError):
                log.exception("standby environment %s failed to start", environment.id)
            environment.kill()
            self._forget_standby(environment)

    async def _await_init(self, pool: Pool, environment: Environment) -> None:
        try:
            async with asyncio.timeout(self._init_timeout_s):
                await environment.wait_ready()
        except TimeoutError:
            environment.init_over = True  # one report only
            environment.init_ms = self._init_timeout_s * 1000
            self._fail_first_waiter(pool, InitFailure(
                None, FunctionErrorType.TIMEOUT, f"Task timed out after {self._init_timeout_s:.2f} seconds",
                environment))
            environment.kill()

    async def _boot(self, pool: Pool, environment: Environment) -> None:
        spec = environment.spec
        if spec.runtime.family == "provided" and provided_bootstrap(spec.code_dir, spec.opt_dir) is None:
            self._abandon(pool, environment, InitFailure(
                None, FunctionErrorType.INVALID_ENTRYPOINT,
                "Couldn't find valid bootstrap(s): [/var/task/bootstrap /opt/bootstrap]"))
            return
        try:
            await environment.start(self._open_endpoint)
        except Exception as exc:  # supervisor: an environment that cannot start fails one waiter, loudly
            if not isinstance(exc, SandboxError):
                log.exception("environment %s failed to start", environment.id)
            environment.kill()
            self._abandon(pool, environment, InitFailure(None, FunctionErrorType.SANDBOX_FAILURE, str(exc)))
            return
        await self._await_init(pool, environment)

    def _abandon(self, pool: Pool, environment: Environment, failure: InitFailure) -> None:
        """An environment that could not start leaves the pool; the first waiting invocation gets why."""
        pool.envs.discard(environment)
        self._delist(environment)
        self._starting.discard(environment)
        self._fail_first_waiter(pool, failure)

    def _start_task(self, coro: Awaitable[None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _fail_first_waiter(self, pool: Pool, failure: InitFailure) -> None:
        while pool.waiters:
            waiter = pool.waiters.popleft()
            if not waiter.done():
                waiter.set_result(failure)
                return

    def _changed(self, environment: Environment) -> None:
        """Called by an environment whenever its state changes in a way the pool cares about."""
        started = environment in self._starting and environment.state is not EnvState.INIT
        if started:
            self._starting.discard(environment)
        self._settle_change(environment)
        if started:
            self._rebalance_waiting()

    def _settle_change(self, environment: Environment) -> None:
        pool = self._env_pool.get(environment)
        if pool is None:
            if environment.state is EnvState.DEAD:
                self._forget_standby(environment)
            return
        state = environment.state
        if state is EnvState.IDLE:
            self._became_idle(pool, environment)
        elif state is EnvState.INIT_FAILED:
            failure = environment.init_error()
            assert failure is not None
            self._fail_first_waiter(pool, InitFailure(failure[0], failure[1], "", environment))
        elif state is EnvState.DEAD:
            if self._slots is not None:
                self._remove_slots(environment.spec)
            pool.envs.discard(environment)
            self._delist(environment)
            if environment in pool.idle:
                pool.idle.remove(environment)
            if environment in pool.provisioned_envs:
                pool.provisioned_envs.discard(environment)
                self._keep_provisioned(pool)
            if not environment.init_over:  # died in its init phase, with nothing reported yet
                text = exit_text(environment.exit_status or 0)
                self._fail_first_waiter(pool, InitFailure(None, FunctionErrorType.EXIT, text, environment))
            self._rebalance(pool, None)
            if not pool.envs and not pool.waiters and not pool.provisioned:
                self._pools.pop(pool.key, None)

    def _forget_standby(self, environment: Environment) -> None:
        runtime = self._standby_runtime.pop(environment, None)
        if runtime is not None and environment in self._standby.get(runtime.id, []):
            self._standby[runtime.id].remove(environment)
        if self._slots is not None:
            self._remove_slots(environment.spec)

    def _became_idle(self, pool: Pool, environment: Environment) -> None:
        if pool.retired:
            environment.kill()
            return
        while pool.waiters:
            waiter = pool.waiters.popleft()
            if not waiter.done():
                waiter.set_result(environment)
                return
        activity = self._activity.get(pool.key[0])
        if environment in pool.provisioned_envs:
            pass
        elif environment in self._prewarmed:
            self._prewarmed.discard(environment)
            if activity is not None and activity.last_end is not None:
                environment.idle_since = activity.last_end  # its keep-alive counts from the last call
        elif not pool.idle and pool.recipe is not None:
            wait = prewarm_s(activity.idle if activity else None, self._keepalive_policy)
            if wait > 0:  # every gap of this function is long: let go now, start afresh before the next
                environment.kill()
                self._schedule_prewarm(pool.key, pool.recipe, wait)
                return
        pool.idle.append(environment)

    def _schedule_prewarm(self, key: PoolKey, recipe: Recipe, wait_s: float) -> None:
        previous = self._prewarm_timers.pop(key, None)
        if previous is not None:
            previous.cancel()
        self._prewarm_timers[key] = asyncio.get_running_loop().call_later(wait_s, self._prewarm, key, recipe)

    def _prewarm(self, key: PoolKey, recipe: Recipe) -> None:
        self._prewarm_timers.pop(key, None)
        pool = self._pool_for(recipe.config)
        if pool.retired or pool.envs:
            return
        pool.recipe = recipe
        if self._make_memory_room(NEW_ENV_CHARGE_MB):
            self._prewarmed.add(self._spawn(pool, recipe))

    # provisioned concurrency ---------------------------------------------------------------------

    def provision(self, recipe: Recipe, count: int) -> None:
        """Keep `count` environments of this version initialised and warm (0 lets them go)."""
        pool = self._pool_for(recipe.config)
        pool.provisioned = count
        env = dict(recipe.env, AWS_LAMBDA_INITIALIZATION_TYPE="provisioned-concurrency")
        pool.provisioned_recipe = dataclasses.replace(recipe, env=env)
        for extra in list(pool.provisioned_envs)[count:]:
            pool.provisioned_envs.discard(extra)  # back to on-demand: the keep-alive policy decides
            extra.provisioned = False
        self._keep_provisioned(pool)

    def _keep_provisioned(self, pool: Pool) -> None:
        recipe = pool.provisioned_recipe
        if pool.retired or recipe is None:
            return
        while len(pool.provisioned_envs) < pool.provisioned:
            environment = self._spawn(pool, recipe)
            environment.provisioned = True
            pool.provisioned_envs.add(environment)

    def provisioned_status(self, config: FunctionConfig) -> tuple[int, int]:
        """(requested, available): available counts provisioned environments past their init."""
        pool = self._pools.get((config.name, config.version, config.revision_id))
        if pool is None:
            return 0, 0
        ready = sum(1 for e in pool.provisioned_envs if e.state not in (EnvState.INIT, EnvState.DEAD))
        return pool.provisioned, ready

    # maintenance -----------------------------------------------------------------------------

    def retire(self, name: str, version: str | None = None) -> None:
        """Stop serving a function's current environments (its code or configuration changed, or the
        version was deleted); `version` None means every version of it."""
        def matches(key: PoolKey) -> bool:
            return key[0] == name and (version is None or key[1] == version)

        for key in [k for k in self._prewarm_timers if matches(k)]:
            self._prewarm_timers.pop(key).cancel()
        for key, pool in list(self._pools.items()):
            if matches(key):
                pool.provisioned = 0
                pool.retired = True
                for environment in pool.idle:
                    environment.kill()
                pool.idle.clear()

    def reap(self) -> None:
        """Stop idle environments whose keep-alive ran out (standby ones too: the runtime went quiet)."""
        now = self._clock.monotonic()
        for ready in self._standby.values():
            for index in sorted(expired([e.idle_since for e in ready], now, self._keepalive_s), reverse=True):
                ready.pop(index).kill()
        for pool in list(self._pools.values()):
            activity = self._activity.get(pool.key[0])
            keep = keepalive_s(activity.idle if activity else None, self._keepalive_s, self._keepalive_policy)
            for index in sorted(expired([e.idle_since for e in pool.idle], now, keep), reverse=True):
                if pool.idle[index] not in pool.provisioned_envs:
                    pool.idle.pop(index).kill()
        self._rebalance_waiting()  # invocations held back by the memory budget get another chance
        for runtime_id, runtime in list(self._refill_later.items()):  # standbys not replaced in a burst
            if not any(_in_burst(p) for p in self._pools.values()
                       if p.recipe is not None and p.recipe.runtime.id == runtime_id):
                del self._refill_later[runtime_id]
                self._refill_standby(runtime)

    def statistics(self) -> SchedulerStatistics:
        idle = sum(len(p.idle) for p in self._pools.values())
        return SchedulerStatistics(len(self._env_pool), idle, self.in_flight)

    async def aclose(self) -> None:
        for timer in self._prewarm_timers.values():
            timer.cancel()
        if self._window_timer is not None:
            self._window_timer.cancel()
        for environment in [*self._env_pool, *self._standby_runtime]:
            environment.kill()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        deadline = self._clock.monotonic() + 2
        while (self._env_pool or self._standby_runtime) and self._clock.monotonic() < deadline:
            await asyncio.sleep(0.01)

