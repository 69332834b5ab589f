"""Composition root: builds every component from one Config and owns every background task.

    async with Lamina(config) as app:   # listening on config.host:config.port
        await app.wait_closed()
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import hashlib
import math
import json
import logging
import os
import secrets
import string
from pathlib import Path

from lamina import cpus
from lamina.http import sender
from lamina.api.concurrency import ConcurrencyApi, Reservations
from lamina.api.presign import CodeLinks
from lamina.api.provisioned import ProvisionedApi, ProvisionedService
from lamina.api.server import LambdaApi
from lamina.clock import Clock, SystemClock
from lamina.config import Config
from lamina.api import logs as logs_api
from lamina.api.ui import Dashboard
from lamina.api.usage import UsageApi
from lamina.api.cloudwatch import JSON_TARGET as CLOUDWATCH_TARGET, CloudWatchApi
from lamina.api.eventbridge import TARGET_PREFIX as EVENTS_TARGET, EventBridgeApi
from lamina.api.esm import EsmApi
from lamina.esm.clients import Clients as AwsClients
from lamina.esm.destinations import QueueSender
from lamina.esm.manager import EsmManager
from lamina.store.esm import EsmStore
from lamina.events.ticker import ScaledClock, Ticker
from lamina.api.urls import UrlsApi
from lamina.events.url import UrlFrontDoor
from lamina.store.urls import UrlStore
from lamina.store.schedules import ScheduleStore
from lamina.model import FunctionConfig
from lamina.scheduler.window import width_for
from lamina.scheduler.environment import Outcome
from lamina.store.metering import MeteringStore, Record
from lamina.logsink import FileLogSink, StoreLogSink
from lamina.store.logs import LogStore
from lamina.runtime_api.server import RuntimeApiServer
from lamina.runtimes.registry import RuntimeRegistry, parse_overrides
from lamina.sandbox import bwrap, cpufence, netns, tmpvol
from lamina.sandbox.cgroups import CGROUP_ROOT
from lamina.sandbox.cgroups import detect as detect_cgroups
from lamina.sandbox.base import SandboxDriver
from lamina.sandbox.process import ProcessDriver
from lamina.sandbox.zygote import Zygotes
from lamina.sandbox.slots import Slots
from lamina.scheduler.scheduler import Scheduler
from lamina.service.functions import FunctionService
from lamina.service.invoke import InvokeRequest, InvokeService
from lamina.api import parse as api_parse
from lamina.errors import ApiError, SandboxError
from lamina.model import InvocationType
from lamina.api.event_invoke import EventInvokeApi
from lamina.service.async_invoke import AsyncInvoker
from lamina.service.event_configs import EventConfigService
from lamina.store.event_configs import EventConfigStore
from lamina.store.queue import SqliteQueue
from lamina.store.blobs import BlobStore
from lamina.s3.api import S3Api, streams_body
from lamina.s3.credentials import FunctionKeys
from lamina.s3.store import ObjectStore
from lamina.store.sqlite import SqliteStore

log = logging.getLogger("lamina")


@dataclasses.dataclass(frozen=True, slots=True)
class Credentials:
    access_key_id: str
    secret_access_key: str
    generated: bool


def load_credentials(config: Config, data_dir: Path) -> Credentials:
    """Configured keys, else the pair kept in the data directory, else a new pair (kept there)."""
    if config.access_key_id and config.secret_access_key:
        return Credentials(config.access_key_id, config.secret_access_key, False)
    path = data_dir / "credentials.json"
    if path.exists():
        saved = json.loads(path.read_text())
        return Credentials(saved["access_key_id"], saved["secret_access_key"], False)
    alphabet = string.ascii_uppercase + string.digits
    akid = "LKIA" + "".join(secrets.choice(alphabet) for _ in range(16))
    secret = secrets.token_urlsafe(30)[:40]
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        json.dump({"access_key_id": akid, "secret_access_key": secret}, out)
    return Credentials(akid, secret, True)


def choose_driver(config: Config, work_dir: Path, *, probe_only: bool = False) -> tuple[SandboxDriver, str]:
    """The sandbox driver this host can run, and why. `probe_only` (lamina doctor) touches nothing
    a running server on the same data directory uses."""
    if config.sandbox in ("auto", "bwrap"):
        ok, why = bwrap.available()
        if ok:
            # One cgroup parent per data directory: servers side by side never clean up each other.
            parent = "lamina-" + hashlib.sha256(str(work_dir).encode()).hexdigest()[:12]
            existed = (CGROUP_ROOT / parent).exists() or any(CGROUP_ROOT.glob(f"*/{parent}"))
            cgroups, cgroups_why = detect_cgroups(parent=parent)
            if probe_only and cgroups is not None and not existed:
                try:  # the probe made the parent (no server runs on this data directory): not left behind
                    cgroups.destroy(timeout=1.0)
                except SandboxError as exc:
                    log.warning("probe_cgroup_not_removed error=%s", exc)
            volumes_ok, volumes_why = tmpvol.available()
            volumes = tmpvol.TmpVolumes(work_dir / "tmp") if volumes_ok else None
            if not probe_only:
                if cgroups is not None:
                    cgroups.cleanup_stale()
                    if (config.reserve_loop_cpu != "off" and config.loop_cpu != "off"
                            and len(os.sched_getaffinity(0)) >= 2):  # else no loop CPU to keep functions off
                        fence, fence_why = cpufence.detect(CGROUP_ROOT, parent, cgroups.version)
                        if fence is not None:
                            cgroups.fence = fence
                        else:
                            log.info("cpu_fence_unavailable reason=%s", fence_why)
                if volumes is not None:
                    volumes.start()
            netns_dir = None
            if config.network == "private":
                netns_ok, netns_why = netns.available()
                if not netns_ok:
                    raise SystemExit(f"lamina: network=private asked for, but {netns_why}")
                netns_dir = work_dir / "netns"
                if not probe_only:
                    netns_dir.mkdir(parents=True, exist_ok=True)
                    for leftover in netns_dir.iterdir():  # a previous run that did not stop cleanly
                        netns.remove(leftover)
            zygotes = Zygotes(work_dir / "sandbox-root", bwrap.LAYOUT) if config.zygote and not probe_only else None
            return bwrap.BwrapDriver(cgroups, cgroups_why, volumes, volumes_why, netns_dir, zygotes), why
        if config.sandbox == "bwrap":
            raise SystemExit(f"lamina: sandbox=bwrap asked for, but {why}")
        if config.network == "private":
            raise SystemExit(f"lamina: network=private needs the isolated sandbox, but {why}")
        return ProcessDriver(work_dir), f"process fallback: {why}"
    return ProcessDriver(work_dir), "process driver asked for (LAMINA_SANDBOX=process)"


class Lamina:
    def __init__(self, config: Config, clock: Clock | None = None) -> None:
        self.config = config
        self.clock = clock or SystemClock()
        self._tasks: list[asyncio.Task[None]] = []
        #: writes log events and metering records into SQLite beside the event loop (one thread: in order)
        self._writer = concurrent.futures.ThreadPoolExecutor(
            1, thread_name_prefix="lamina-writer", initializer=cpus.release_thread)
        self._stopped = asyncio.Event()

    async def __aenter__(self) -> Lamina:
        config = self.config
        # Sandbox set-up and tear-down (mkfs, mount, cgroup writes) wait on the kernel more than they
        # compute: a wide pool lets a burst prepare many environments at once.
        asyncio.get_running_loop().set_default_executor(
            concurrent.futures.ThreadPoolExecutor(max_workers=32, thread_name_prefix="lamina-io",
                                                  initializer=cpus.release_thread))
        sender.enable(bool(config.send_thread))
        data = config.data_dir.resolve()
        data.mkdir(parents=True, exist_ok=True)
        os.chmod(data, 0o700 if os.geteuid() != 0 else 0o711)
        self.data_dir = data
        self.credentials = load_credentials(config, data)
        self.store = SqliteStore(data / "lamina.db")
        self.blobs = BlobStore(data / "code")
        self.registry = RuntimeRegistry.discover(parse_overrides(config.runtimes))
        self.driver, self.driver_reason = choose_driver(config, data / "work")
        self.log_store = LogStore(data / "lamina.db")
        # The files cost ~20 µs of CPU per invocation (writer thread, GIL, write-back): opt-in.
        self.sink = StoreLogSink(self.log_store, self.clock, FileLogSink(data / "logs") if config.log_files else None)
        self.runtime_api = RuntimeApiServer()
        self.scheduler = Scheduler(
            self.driver, self.clock, self.sink, self.runtime_api.open,
            uid_base=config.sandbox_uid_base, init_timeout_s=config.init_timeout_s,
            concurrency_limit=config.concurrency_limit, keepalive_s=config.keepalive_s,
            slots=Slots(data / "work" / "slots"), standby_per_runtime=config.prewarm,
            keepalive_policy=config.keepalive_policy, memory_budget_mb=config.memory_budget_mb,
            max_starting=config.max_starting,
            dispatch_window=width_for(config.dispatch_window, len(cpus.process_cpus())),
        )
        arn_prefix = f"arn:aws:lambda:{config.region}:{config.account_id}:function:"
        self.functions = FunctionService(self.store, self.blobs, self.registry, self.clock, arn_prefix)
        self.functions.on_change.append(self.scheduler.retire)
        self.functions.on_deploy.append(self.scheduler.warm_runtime)
        self.invoker = InvokeService(self.functions, self.scheduler, config.region, self.clock)
        link_key = self.store.get_meta("code_link_key")
        if link_key is None:
            link_key = secrets.token_hex(32)
            self.store.set_meta("code_link_key", link_key)
        keys = {self.credentials.access_key_id: self.credentials.secret_access_key}
        api = LambdaApi(self.functions, self.invoker, CodeLinks(bytes.fromhex(link_key), config.base_url),
                        self.clock, keys.get, config.concurrency_limit)
        # Asynchronous invocation: the durable queue, its delivery workers, event-invoke configs.
        self.event_configs = EventConfigStore(data / "lamina.db")
        self.queue = SqliteQueue(data / "lamina.db")
        self.deliveries = AsyncInvoker(
            self.queue, self.functions, self.invoker.run, self.event_configs, self.clock, account=config.account_id,
            base_delay_s=config.async_retry_base_delay_s, grace_s=config.async_shutdown_grace_s,
            workers=config.async_workers)
        self.invoker.accept_event = self.deliveries.submit
        event_config_service = EventConfigService(self.functions, self.event_configs, config.account_id, self.clock.time)
        self.functions.on_change.append(event_config_service.forget)
        api.extra_routes += EventInvokeApi(event_config_service, self.functions.arn, self.deliveries.statistics).routes()
        self.reservations = Reservations(self.store, self.scheduler)
        self.functions.on_change.append(self._forget_deleted)
        api.extra_routes += ConcurrencyApi(self.functions, self.reservations, self.scheduler).routes()
        self.provisioned = ProvisionedService(self.functions, self.invoker, self.scheduler, self.store, self.clock)
        api.extra_routes += ProvisionedApi(self.functions, self.provisioned).routes()
        self.provisioned.restore()
        api.unreserved_limit = lambda: self.scheduler.unreserved_limit
        self.metering = MeteringStore(data / "lamina.db")
        self.scheduler.meter = self._meter
        api.extra_routes += UsageApi(self.metering, self.clock, config.price_per_gb_s,
                                     config.price_per_million_requests, self.metering.flush).routes()
        self.dashboard = Dashboard(self.functions, self.invoker, self.scheduler, self.metering, self.log_store,
                                   self.clock, keys.get, config.price_per_gb_s, config.price_per_million_requests,
                                   self._flush_records)
        api.extra_routes += self.dashboard.routes()
        metrics_api = CloudWatchApi(self.metering, self.scheduler.metrics, self.clock.time)
        api.extra_routes += metrics_api.routes()
        api.query_protocol = metrics_api.query
        api.json_targets[CLOUDWATCH_TARGET] = metrics_api.json
        api.json_targets[logs_api.TARGET_PREFIX] = logs_api.LogsApi(
            self.log_store, config.region, config.account_id, self.sink.flush).handle
        self.urls = UrlStore(data / "lamina.db")
        api.extra_routes += UrlsApi(self.functions, self.urls, self.clock, config.base_url).routes()
        api.url_front_door = UrlFrontDoor(self.urls, self.invoker, self.functions.policies, self.clock, keys.get,
                                          config.region, config.account_id).handle
        self.schedules = ScheduleStore(data / "lamina.db")
        events_api = EventBridgeApi(self.schedules, self.clock, config.region, config.account_id, keys.get)
        api.json_targets[EVENTS_TARGET] = events_api.handle
        schedule_clock = ScaledClock(self.clock, config.schedule_speedup) if config.schedule_speedup != 1 else self.clock
        self.ticker = Ticker(self.schedules, self.invoker, schedule_clock, config.account_id, config.region,
                             events_api.rule_arn, config.schedule_speedup)
        # Event source mappings (SQS, streams) and messages to SQS queues (destinations, dead-letter queues).
        self.esm_store = EsmStore(data / "lamina.db")
        self.aws_clients = AwsClients()
        self.queue_sender = QueueSender(self.aws_clients)
        self.deliveries.send_to_queue = self.queue_sender.send
        self.esm = EsmManager(self.esm_store, self.functions, self.invoker.run, self.clock, region=config.region,
                              account=config.account_id, clients=self.aws_clients, sender=self.queue_sender)
        api.extra_routes += EsmApi(self.esm).routes()
        self._wire_s3(api, keys)
        self._http = api.server()
        self._listener = await asyncio.get_running_loop().create_server(
            self._http, config.host, config.port, reuse_address=True, backlog=1024)
        self._tasks.append(asyncio.ensure_future(self._housekeeping()))
        self.deliveries.start()
        self._tasks.append(asyncio.ensure_future(self.ticker.run()))
        await self.esm.start()
        return self

    def _wire_s3(self, api: LambdaApi, keys: dict[str, str]) -> None:
        """The S3-compatible object store on this port; functions get an endpoint and their own keys."""
        config = self.config
        self.objects = ObjectStore(self.data_dir / "s3", self.data_dir / "lamina.db")
        function_keys = FunctionKeys(self.credentials.secret_access_key)
        invoker = self.invoker

        def function_exists(arn: str) -> bool:
            try:
                ref = api_parse.function_ref(arn)
                self.functions.deployed(ref.name, ref.qualifier)
            except ApiError:
                return False
            return True

        async def deliver(arn: str, payload: bytes) -> None:
            ref = api_parse.function_ref(arn)
            await invoker.invoke(InvokeRequest(ref.name, ref.qualifier, payload, InvocationType.EVENT))

        s3 = S3Api(self.objects, self.clock, lambda k: keys.get(k) or function_keys.secret_for(k), config.region,
                   function_exists, deliver)
        api.service_front_doors["s3"] = s3.handle
        api.code_from_s3 = s3.code_package
        api.stream_bodies = streams_body
        self.s3 = s3
        host = "127.0.0.1" if config.host in ("0.0.0.0", "::", "") else config.host
        endpoint = f"http://{host}:{config.port}"
        # Lambda hands functions their role's credentials; lamina hands each function an S3 key pair of its
        # own, and its own endpoint (which a function's AWS_ENDPOINT_URL_S3 variable overrides).
        invoker.default_environment["AWS_ENDPOINT_URL_S3"] = endpoint
        invoker.credentials_for = function_keys.pair

    def _flush_records(self) -> None:
        self.sink.flush()
        self.metering.flush()

    def _write_records(self, ticks: int) -> None:
        """Buffered log events and metering records into SQLite and the log files, and log retention: on
        the writer thread, beside the event loop (inserts, file writes, deletes would otherwise stall it)."""
        self._flush_records()
        if self.config.log_retention_days and ticks % 60 == 0:
            self.log_store.expire(int((self.clock.time() - self.config.log_retention_days * 86400) * 1000))

    def _meter(self, config: FunctionConfig, request_id: str, outcome: Outcome, cold: bool) -> None:
        self.metering.record(Record(
            ts_ms=int(self.clock.time() * 1000), function=config.name, version=config.version,
            request_id=request_id, duration_ms=outcome.duration_ms,
            billed_ms=max(1, math.ceil(outcome.duration_ms)), memory_mb=config.memory_mb,
            init_ms=outcome.init_ms, cold=cold, outcome=outcome.status))

    def _forget_deleted(self, name: str, version: str | None = None) -> None:
        if self.store.get_function(name, "$LATEST") is None:
            self.reservations.delete(name)
            self.urls.delete_function(name)

    async def _housekeeping(self) -> None:
        """Every second: flush logs and metering, sample, reap. A failing round is logged and the next
        one runs (the supervisor policy for this loop); nothing else swallows errors."""
        ticks = 0
        while True:
            await asyncio.sleep(1.0)
            ticks += 1
            try:
                await asyncio.get_running_loop().run_in_executor(self._writer, self._write_records, ticks)
                self._housekeeping_round()
            except Exception:
                log.exception("housekeeping round failed; retrying in a second")

    def _housekeeping_round(self) -> None:
        self.dashboard.sample()
        self.scheduler.reap()

    async def wait_closed(self) -> None:
        await self._stopped.wait()

    def stop(self) -> None:
        self._stopped.set()

    async def __aexit__(self, *exc: object) -> None:
        await self.deliveries.aclose()  # first: running async invocations get their grace period
        await self.esm.aclose()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._listener.close()
        await self._http.shutdown()
        await self.invoker.aclose()
        await self.scheduler.aclose()
        await self.runtime_api.aclose()
        await asyncio.get_running_loop().run_in_executor(None, self.driver.close)
        self._writer.shutdown(wait=True)  # a round still writing finishes before the stores close
        self.sink.close()
        self.log_store.close()
        self.metering.close()
        self.deliveries.close()
        self.queue.close()
        self.event_configs.close()
        self.schedules.close()
        self.esm_store.close()
        self.urls.close()
        self.objects.close()
        self.store.close()
