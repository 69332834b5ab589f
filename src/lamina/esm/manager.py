"""Event source mappings: the use cases behind the API, and one supervised poller task per enabled mapping.

Theory of operation. Create/Update/Delete validate (validate.py), check the function and duplicates,
write the mapping in a transitional state (Creating, Updating, Enabling, Disabling, Deleting) and return
it for the 202; a settle task then stops/starts the mapping's poller and writes the settled state
(Enabled / Disabled) or removes the mapping. `start` (server start) settles whatever a crash left
transitional and starts a poller for every enabled mapping.

Each poller runs under `_supervise`, the one place that survives poller failures: a poller that raises is
logged and restarted after a doubling delay (1 s .. 60 s). Pollers invoke the function synchronously
through the invoke service (`_invoker`), which maps the platform's answers to contracts.InvokeOutcome.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import uuid as uuidlib
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from lamina.clock import Clock
from lamina.errors import (ApiError, InvalidParameterValue, ResourceConflict, ResourceNotFound, SandboxError,
                           TooManyRequests)
from lamina.esm import validate
from lamina.esm.clients import Clients
from lamina.esm.contracts import Invoke, InvokeOutcome
from lamina.esm.destinations import QueueSender
from lamina.esm.filters import compile_filters
from lamina.esm.model import Mapping, SourceKind, State
from lamina.esm.sqs import BotoQueue, SqsPoller
from lamina.model import Invocation
from lamina.scheduler.environment import Outcome
from lamina.service.functions import Deployed, FunctionService
from lamina.service.invoke import new_request_id, new_trace_id
from lamina.store.esm import EsmStore

log = logging.getLogger("lamina.esm")

Runner = Callable[[Deployed, Invocation], Awaitable[Outcome]]
PAGE_DEFAULT = 100
RESTART_MAX_S = 60.0
DROP_SLOT_S = 5.0
SOURCE_CHECK_S = 10.0  # CreateEventSourceMapping waits this long for a stream to answer
STOP_GRACE_S = 5.0  # a batch in flight when its mapping changes or the server stops may finish this long


class Poller(Protocol):
    async def run(self) -> None: ...

    async def aclose(self) -> None: ...


class EsmManager:
    def __init__(self, store: EsmStore, functions: FunctionService, run: Runner, clock: Clock, *,
                 region: str, account: str, clients: Clients | None = None,
                 sender: QueueSender | None = None, sqs_long_poll_s: int | None = None) -> None:
        self._store = store
        self._functions = functions
        self._run = run
        self._clock = clock
        self._region = region
        self._account = account
        self._clients = clients or Clients()
        self._sender = sender or QueueSender(self._clients)
        self._sqs_long_poll_s = sqs_long_poll_s
        self._tasks: dict[str, asyncio.Task[None]] = {}  # uuid -> its supervised poller
        self._pollers: dict[str, Poller] = {}
        self._settling: set[asyncio.Task[None]] = set()
        self._lock = asyncio.Lock()  # serialises settling and poller starts/stops
        self._started = False

    # reads ---------------------------------------------------------------------------------------

    def function_arn(self, mapping: Mapping, region: str | None = None) -> str:
        return self._functions.arn(mapping.function, mapping.qualifier, region or self._region)

    def mapping_arn(self, mapping: Mapping, region: str | None = None) -> str:
        return f"arn:aws:lambda:{region or self._region}:{self._account}:event-source-mapping:{mapping.uuid}"

    def get(self, uuid: str) -> Mapping:
        mapping = self._store.get(uuid)
        if mapping is None:
            raise ResourceNotFound.resource()
        return mapping

    def list(self, function: str | None, source_arn: str | None, marker: str | None,
             max_items: int | None) -> tuple[list[Mapping], str | None]:
        name = qualifier = None
        if function is not None:
            ref = validate.function_ref(function)
            name, qualifier = ref.name, ref.qualifier
        found = [m for m in self._store.all(name, source_arn) if qualifier is None or m.qualifier == qualifier]
        start = 0
        if marker:
            ids = [m.uuid for m in found]
            if marker not in ids:
                raise InvalidParameterValue.bad_marker(marker)
            start = ids.index(marker) + 1
        limit = max_items or PAGE_DEFAULT
        page = found[start:start + limit]
        more = start + limit < len(found)
        return page, (page[-1].uuid if more and page else None)

    # use cases -----------------------------------------------------------------------------------

    def _check_function(self, name: str, qualifier: str | None) -> None:
        self._functions.get(name, qualifier)  # ResourceNotFound "Function not found: <arn>"

    def _check_duplicate(self, mapping: Mapping) -> None:
        for other in self._store.all(mapping.function, mapping.source_arn):
            if other.uuid == mapping.uuid or other.qualifier != mapping.qualifier:
                continue
            if mapping.kind is SourceKind.SQS:
                raise ResourceConflict(
                    f'An event source mapping with SQS arn (" {mapping.source_arn} ") and function '
                    f'(" {mapping.function} ") already exists. Please update or delete the existing mapping '
                    f"with UUID {other.uuid}")
            raise ResourceConflict(
                f'The event source arn (" {mapping.source_arn} ") and function (" {mapping.function} ") provided '
                f"mapping already exists. Please update or delete the existing mapping with UUID {other.uuid}")

    async def _check_source(self, mapping: Mapping) -> None:
        """An SQS queue must exist and answer (as AWS checks at create); a stream's ARN must name a source
        lamina can read (its poller opens it)."""
        if mapping.kind is not SourceKind.SQS:
            from lamina.esm.sources import open_source
            source = open_source(mapping.source_arn, mapping_uuid=mapping.uuid)  # InvalidParameterValue if not ours
            try:
                await asyncio.wait_for(source.shards(), SOURCE_CHECK_S)  # a stream must exist and answer
            except Exception as exc:
                code, message = _aws_error(exc)
                if code == "ResourceNotFoundException":
                    raise InvalidParameterValue(f"Stream not found: {mapping.source_arn}") from exc
                raise InvalidParameterValue(
                    f"Cannot access stream {mapping.source_arn}. Please ensure the role can perform the "
                    f"GetRecords, GetShardIterator, DescribeStream, and ListStreams Actions on your stream. "
                    f"({code}: {message})") from exc
            finally:
                await source.aclose()
            return
        try:
            await asyncio.to_thread(self._clients.queue_url, mapping.source_arn)
        except Exception as exc:
            code, message = _aws_error(exc)
            raise InvalidParameterValue(f"Error occurred while ReceiveMessage. SQS Error Code: {code}. "
                                        f"SQS Error Message: {message}") from exc

    async def create(self, body: dict[str, Any]) -> Mapping:
        mapping, ref = validate.new_mapping(body, str(uuidlib.uuid4()), self._clock.time())
        self._check_function(ref.name, ref.qualifier)
        self._check_duplicate(mapping)
        await self._check_source(mapping)
        self._store.put(mapping)
        self._settle_soon(mapping.uuid)
        return mapping

    async def update(self, uuid: str, body: dict[str, Any]) -> Mapping:
        current = self.get(uuid)
        if current.state is State.DELETING:
            raise ResourceNotFound.resource()
        mapping, ref = validate.updated(current, body, self._clock.time())
        if ref is not None:
            self._check_function(ref.name, ref.qualifier)
            self._check_duplicate(mapping)
        self._store.put(mapping)
        self._settle_soon(uuid)
        return mapping

    async def delete(self, uuid: str) -> Mapping:
        mapping = dataclasses.replace(self.get(uuid), state=State.DELETING)
        self._store.put(mapping)
        self._settle_soon(uuid)
        return mapping

    def record_result(self, uuid: str, result: str) -> None:
        """A stream poller's LastProcessingResult (written only when it changes)."""
        mapping = self._store.get(uuid)
        if mapping is not None and mapping.last_processing_result != result:
            self._store.put(dataclasses.replace(mapping, last_processing_result=result))

    # settling and pollers ------------------------------------------------------------------------

    def _settle_soon(self, uuid: str) -> None:
        if not self._started:
            return  # start() settles everything
        task = asyncio.ensure_future(self._settle(uuid))
        self._settling.add(task)
        task.add_done_callback(self._settling.discard)

    async def _settle(self, uuid: str) -> None:
        async with self._lock:
            mapping = self._store.get(uuid)
            if mapping is None:
                return
            await self._stop_poller(uuid)
            if mapping.state is State.DELETING:
                await self._forget_source(mapping)
                self._store.delete(uuid)
                log.info("esm_deleted uuid=%s", uuid)
                return
            settled = dataclasses.replace(mapping, state=mapping.settled())
            if settled.state is not mapping.state:
                self._store.put(settled)
            if settled.runs:
                self._start_poller(settled)

    async def _forget_source(self, mapping: Mapping) -> None:
        """A deleted PostgreSQL mapping drops its replication slot (else the server keeps its WAL forever)."""
        if mapping.kind is not SourceKind.POSTGRES:
            return
        from lamina.esm.sources import open_source
        source = open_source(mapping.source_arn, mapping_uuid=mapping.uuid)
        try:
            await asyncio.wait_for(source.drop_slot(), DROP_SLOT_S)  # type: ignore[attr-defined]
            log.info("esm_postgres_slot_dropped uuid=%s", mapping.uuid)
        except Exception as exc:  # the mapping goes anyway; the slot can be dropped by hand (docs)
            log.warning("esm_postgres_slot_not_dropped uuid=%s error=%r", mapping.uuid, exc)
        finally:
            await source.aclose()

    async def start(self) -> None:
        """Server start: settle what a crash left transitional, start a poller per enabled mapping."""
        self._started = True
        for mapping in self._store.all():
            await self._settle(mapping.uuid)

    async def aclose(self) -> None:
        self._started = False
        for task in list(self._settling):
            task.cancel()
        await asyncio.gather(*self._settling, return_exceptions=True)
        await asyncio.gather(*(self._stop_poller(uuid) for uuid in list(self._tasks)))
        self._clients.close()

    def running(self) -> list[str]:
        return list(self._tasks)

    def _start_poller(self, mapping: Mapping) -> None:
        self._tasks[mapping.uuid] = asyncio.ensure_future(self._supervise(mapping))

    async def _stop_poller(self, uuid: str) -> None:
        """Let the batches in flight finish (up to STOP_GRACE_S, as Lambda lets them), then stop."""
        task = self._tasks.pop(uuid, None)
        if task is None:
            return
        poller = self._pollers.get(uuid)
        drain = getattr(poller, "drain", None)
        if drain is not None:
            await drain(STOP_GRACE_S)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    async def _supervise(self, mapping: Mapping) -> None:
        """Run the mapping's poller; restart it after a failure (logged) with a doubling delay."""
        delay = 1.0
        while True:
            poller: Poller | None = None
            try:
                poller = await self._poller(mapping)
                self._pollers[mapping.uuid] = poller
                await poller.run()
                return
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("esm_poller_failed uuid=%s source=%s; restarting in %.0f s",
                              mapping.uuid, mapping.source_arn, delay)
            finally:
                self._pollers.pop(mapping.uuid, None)
                if poller is not None:
                    await poller.aclose()
            await asyncio.sleep(delay)
            delay = min(delay * 2, RESTART_MAX_S)

    async def _poller(self, mapping: Mapping) -> Poller:
        record_filter = compile_filters(mapping.filters)
        invoke = self._invoker(mapping)
        if mapping.kind is SourceKind.SQS:
            arn = mapping.source_arn
            extra = {"long_poll_s": self._sqs_long_poll_s} if self._sqs_long_poll_s is not None else {}
            return SqsPoller(
                uuid=mapping.uuid, queue_arn=arn,
                open_queue=lambda: BotoQueue(self._clients.for_arn("sqs", arn), self._clients.queue_url(arn)),
                invoke=invoke, record_filter=record_filter, batch_size=mapping.batch_size,
                batching_window_s=mapping.batching_window_s, max_concurrency=mapping.max_concurrency,
                report_batch_item_failures=mapping.report_batch_item_failures, clock=self._clock, **extra)
        from lamina.esm.sources import open_source  # built beside this module; imported when first needed
        from lamina.esm.stream import StreamPoller
        source = open_source(mapping.source_arn, mapping_uuid=mapping.uuid)  # does no I/O
        uuid = mapping.uuid
        return StreamPoller(
            uuid=uuid, source=source, invoke=invoke,
            send_failure=self._sender.failure_sender(mapping.on_failure) if mapping.on_failure else None,
            load_checkpoint=lambda shard: asyncio.to_thread(self._store.checkpoint, uuid, shard),
            save_checkpoint=lambda shard, value: asyncio.to_thread(self._store.save_checkpoint, uuid, shard, value),
            record_filter=record_filter, batch_size=mapping.batch_size,
            batching_window_s=float(mapping.batching_window_s), starting_position=mapping.starting_position or "LATEST",
            starting_timestamp=mapping.starting_timestamp, parallelization_factor=mapping.parallelization_factor,
            bisect_on_error=mapping.bisect_on_error, maximum_retry_attempts=mapping.max_retry_attempts,
            maximum_record_age_s=mapping.max_record_age_s,
            report_batch_item_failures=mapping.report_batch_item_failures,
            function_arn=self.function_arn(mapping), clock=self._clock,
            on_result=lambda result: self.record_result(uuid, result))

    def _invoker(self, mapping: Mapping) -> Invoke:
        """The mapping's synchronous invoke: the platform's answers as InvokeOutcome statuses."""
        name, qualifier = mapping.function, mapping.qualifier
        invoked_arn = self.function_arn(mapping)

        async def invoke(payload: bytes) -> InvokeOutcome:
            request_id = new_request_id()
            try:
                deployed = self._functions.deployed(name, qualifier)
            except ResourceNotFound:
                log.warning("esm_function_missing uuid=%s function=%s", mapping.uuid, invoked_arn)
                return InvokeOutcome(404, None, b"", request_id=request_id)
            except (ApiError, OSError) as exc:
                log.warning("esm_invoke_platform_error uuid=%s error=%r", mapping.uuid, exc)
                return InvokeOutcome(500, None, b"", request_id=request_id)
            invocation = Invocation(request_id=request_id, payload=payload, invoked_arn=invoked_arn,
                                    trace_id=new_trace_id())
            try:
                outcome = await self._run(deployed, invocation)
            except TooManyRequests:
                return InvokeOutcome(429, None, b"", deployed.config.version, request_id)
            except (SandboxError, ApiError, OSError) as exc:
                log.warning("esm_invoke_platform_error uuid=%s error=%r", mapping.uuid, exc)
                return InvokeOutcome(500, None, b"", deployed.config.version, request_id)
            error = "Unhandled" if outcome.error_type is not None else None
            return InvokeOutcome(200, error, outcome.payload, deployed.config.version, request_id)

        return invoke


def _aws_error(exc: Exception) -> tuple[str, str]:
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        error = response.get("Error") or {}
        return str(error.get("Code", "Unknown")), str(error.get("Message", ""))
    return type(exc).__name__, str(exc)
