"""The event source mapping record (pure data), its source kinds and its states.

A mapping is stored whole (store/esm.py) and rendered on the wire by api/esm.py; `validate.py` builds and
changes it from request members; `manager.py` moves it through its states:

    create  -> Creating -> Enabled | Disabled
    update  -> Updating | Enabling | Disabling -> Enabled | Disabled
    delete  -> Deleting -> (gone)

The transitional states are written before the 202 and settled by the manager right after; a server that
crashed in between settles them when it starts again.
"""

from __future__ import annotations

import dataclasses
import enum


class SourceKind(enum.StrEnum):
    SQS = "sqs"
    KINESIS = "kinesis"
    DYNAMODB = "dynamodb"
    POSTGRES = "postgres"

    @property
    def is_stream(self) -> bool:
        return self is not SourceKind.SQS


class State(enum.StrEnum):
    CREATING = "Creating"
    ENABLING = "Enabling"
    ENABLED = "Enabled"
    DISABLING = "Disabling"
    DISABLED = "Disabled"
    UPDATING = "Updating"
    DELETING = "Deleting"


NO_RECORDS = "No records processed"
USER_INITIATED = "USER_INITIATED"  # what AWS shows for SQS mappings
USER_ACTION = "User action"  # ... and for streams


@dataclasses.dataclass(frozen=True, slots=True)
class Mapping:
    uuid: str
    function: str  # the function's name
    qualifier: str | None  # a version or alias the mapping invokes (None: unqualified, $LATEST)
    source_arn: str
    kind: SourceKind
    enabled: bool
    state: State
    state_reason: str
    batch_size: int
    batching_window_s: int
    last_modified: float
    filters: tuple[str, ...] = ()  # FilterCriteria patterns, as given (JSON text)
    function_response_types: tuple[str, ...] = ()
    max_concurrency: int | None = None  # ScalingConfig.MaximumConcurrency (SQS)
    on_failure: str | None = None  # DestinationConfig.OnFailure.Destination
    # stream-only members
    starting_position: str | None = None
    starting_timestamp: float | None = None
    parallelization_factor: int = 1
    bisect_on_error: bool = False
    max_retry_attempts: int = -1
    max_record_age_s: int = -1
    tumbling_window_s: int = 0
    last_processing_result: str = NO_RECORDS

    @property
    def report_batch_item_failures(self) -> bool:
        return "ReportBatchItemFailures" in self.function_response_types

    @property
    def fifo(self) -> bool:
        return self.kind is SourceKind.SQS and self.source_arn.endswith(".fifo")

    def settled(self) -> State:
        """The state a transitional state ends in (the current one when it is not transitional)."""
        if self.state in (State.CREATING, State.UPDATING, State.ENABLING, State.DISABLING):
            return State.ENABLED if self.enabled else State.DISABLED
        return self.state

    @property
    def runs(self) -> bool:
        """A poller should run for this mapping."""
        return self.enabled and self.state not in (State.DELETING, State.DISABLED, State.DISABLING)
