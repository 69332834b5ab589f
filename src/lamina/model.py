"""Value objects: a function's configuration, an invocation and its result. Pure data, no I/O."""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
from typing import Any

LATEST = "$LATEST"


class InvocationType(enum.StrEnum):
    REQUEST_RESPONSE = "RequestResponse"
    EVENT = "Event"
    DRY_RUN = "DryRun"


class State(enum.StrEnum):
    PENDING = "Pending"
    ACTIVE = "Active"
    INACTIVE = "Inactive"
    FAILED = "Failed"


def aws_timestamp(epoch_s: float) -> str:
    """`2020-04-10T19:06:32.563+0000`: the string form FunctionConfiguration.LastModified uses."""
    t = dt.datetime.fromtimestamp(epoch_s, tz=dt.timezone.utc)
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}+0000"


@dataclasses.dataclass(frozen=True, slots=True)
class FunctionConfig:
    """One function version's configuration ($LATEST is the mutable one)."""

    name: str
    runtime: str
    handler: str
    role: str
    code_sha256: str  # hex digest of the zip; the wire shows base64 of the raw digest
    code_size: int
    revision_id: str
    last_modified: float  # epoch seconds
    version: str = LATEST
    description: str = ""
    timeout_s: int = 3
    memory_mb: int = 128
    ephemeral_storage_mb: int = 512
    environment: dict[str, str] = dataclasses.field(default_factory=dict)
    architectures: tuple[str, ...] = ("x86_64",)
    tracing_mode: str = "PassThrough"
    package_type: str = "Zip"
    state: State = State.ACTIVE
    last_update_status: str | None = None
    layers: tuple[str, ...] = ()
    log_format: str = "Text"
    log_group: str | None = None
    dead_letter_target_arn: str | None = None
    kms_key_arn: str | None = None
    vpc_config: dict[str, Any] | None = None

    def replace(self, **changes: Any) -> FunctionConfig:
        return dataclasses.replace(self, **changes)

    @property
    def log_group_name(self) -> str:
        return self.log_group or f"/aws/lambda/{self.name}"

    def to_record(self) -> dict[str, Any]:
        """A JSON-able dict for the store (snake_case; not the wire shape)."""
        record = dataclasses.asdict(self)
        record["state"] = str(self.state)
        return record

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> FunctionConfig:
        fields = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in record.items() if k in fields}
        values["state"] = State(values.get("state", "Active"))
        values["architectures"] = tuple(values.get("architectures", ("x86_64",)))
        values["layers"] = tuple(values.get("layers", ()))
        return cls(**values)


@dataclasses.dataclass(frozen=True, slots=True)
class Invocation:
    """One request to run a function version, as the runtime will see it."""

    request_id: str
    payload: bytes
    invoked_arn: str
    trace_id: str
    client_context: str | None = None  # JSON text, already base64-decoded
    cognito_identity: str | None = None


@dataclasses.dataclass(slots=True)
class InvocationResult:
    """What the caller gets back: the payload bytes and, on failure, the function error type."""

    payload: bytes
    content_type: str = "application/json"
    error_type: str | None = None  # None on success
    log_tail: bytes = b""
    executed_version: str = LATEST
    duration_ms: float = 0.0
    billed_ms: int = 0
    init_ms: float | None = None
    max_memory_mb: int = 0

    @property
    def failed(self) -> bool:
        return self.error_type is not None


@dataclasses.dataclass(frozen=True, slots=True)
class ConfigChanges:
    """Members of Create/UpdateFunctionConfiguration that were given (None = not given)."""

    runtime: str | None = None
    handler: str | None = None
    role: str | None = None
    description: str | None = None
    timeout_s: int | None = None
    memory_mb: int | None = None
    ephemeral_storage_mb: int | None = None
    environment: dict[str, str] | None = None
    tracing_mode: str | None = None
    layers: tuple[str, ...] | None = None
    log_format: str | None = None
    log_group: str | None = None
    dead_letter_target_arn: str | None = None
    kms_key_arn: str | None = None
    vpc_config: dict[str, Any] | None = None
    revision_id: str | None = None

    def given(self) -> dict[str, Any]:
        return {k: v for k, v in dataclasses.asdict(self).items() if v is not None and k != "revision_id"}
