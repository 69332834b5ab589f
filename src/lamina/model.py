"""Value objects: a function's configuration and versions, aliases, layers, resource policies, an
invocation and its result, and the typed commands the API parses into. Pure data, no I/O."""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
from typing import Any

LATEST = "$LATEST"
POLICY_LIMIT_BYTES = 20480


def is_version(qualifier: str) -> bool:
    """`$LATEST` or a published version number (anything else that parses is an alias name)."""
    return qualifier == LATEST or qualifier.isdigit()


@dataclasses.dataclass(frozen=True, slots=True)
class Arns:
    """Lambda ARNs of one partition, region and account."""

    region: str
    account: str
    partition: str = "aws"

    @classmethod
    def from_function_prefix(cls, prefix: str) -> Arns:
        """From `arn:aws:lambda:REGION:ACCOUNT:function:`."""
        parts = prefix.split(":")
        return cls(region=parts[3], account=parts[4], partition=parts[1])

    def in_region(self, region: str | None) -> Arns:
        return self if not region or region == self.region else dataclasses.replace(self, region=region)

    def function(self, name: str, qualifier: str | None = None) -> str:
        base = f"arn:{self.partition}:lambda:{self.region}:{self.account}:function:{name}"
        return f"{base}:{qualifier}" if qualifier else base

    def layer(self, name: str) -> str:
        return f"arn:{self.partition}:lambda:{self.region}:{self.account}:layer:{name}"

    def layer_version(self, name: str, version: int) -> str:
        return f"{self.layer(name)}:{version}"


@dataclasses.dataclass(frozen=True, slots=True)
class FunctionLayer:
    """A layer version as a function version holds it: enough to build /opt even after the layer
    version itself is deleted (as on Lambda, functions keep working)."""

    name: str
    version: int
    code_sha256: str
    code_size: int
    unzipped_size: int


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
    layers: tuple[FunctionLayer, ...] = ()
    #: Changes with every code or configuration change of $LATEST, not with tag, policy or publish
    #: bookkeeping (which change revision_id too). A version keeps the content_id it was published
    #: from, so "has $LATEST changed since the last version?" is one comparison.
    content_id: str = ""
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
        values["layers"] = tuple(FunctionLayer(**layer) for layer in values.get("layers", ()))
        return cls(**values)


# Not frozen (never changed once made, by convention): made on every invoke, and a frozen dataclass's
# __init__ costs twice a plain one's (1.5 against 0.7 µs).
@dataclasses.dataclass(slots=True)
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
    layers: tuple[LayerVersionRef, ...] | None = None
    log_format: str | None = None
    log_group: str | None = None
    dead_letter_target_arn: str | None = None
    kms_key_arn: str | None = None
    vpc_config: dict[str, Any] | None = None
    revision_id: str | None = None

    def given(self) -> dict[str, Any]:
        values = ((f.name, getattr(self, f.name)) for f in dataclasses.fields(self) if f.name != "revision_id")
        return {k: v for k, v in values if v is not None}


# versions and aliases -----------------------------------------------------------------------------

Weights = tuple[tuple[str, float], ...]  # RoutingConfig.AdditionalVersionWeights, in request order


@dataclasses.dataclass(frozen=True, slots=True)
class Alias:
    """A named pointer to a version, optionally sending a share of invocations to one more version."""

    function_name: str
    name: str
    function_version: str
    revision_id: str
    description: str = ""
    routing: Weights = ()

    def to_record(self) -> dict[str, Any]:
        return {"function_version": self.function_version, "revision_id": self.revision_id,
                "description": self.description, "routing": [list(w) for w in self.routing]}

    @classmethod
    def from_record(cls, function_name: str, name: str, record: dict[str, Any]) -> Alias:
        return cls(function_name, name, record["function_version"], record["revision_id"],
                   record.get("description", ""), tuple((str(v), float(w)) for v, w in record.get("routing", ())))


@dataclasses.dataclass(frozen=True, slots=True)
class NewAlias:
    """CreateAlias."""

    name: str
    function_version: str
    description: str = ""
    routing: Weights = ()


@dataclasses.dataclass(frozen=True, slots=True)
class AliasChanges:
    """UpdateAlias: members that were given (None = not given; routing () = remove routing)."""

    function_version: str | None = None
    description: str | None = None
    routing: Weights | None = None
    revision_id: str | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class PublishVersion:
    code_sha256: str | None = None  # base64, as the wire shows it
    description: str | None = None
    revision_id: str | None = None


# layers ------------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True, slots=True)
class LayerVersionRef:
    """A layer version ARN as a function names it."""

    arn: str
    region: str
    account: str
    name: str
    version: int


@dataclasses.dataclass(frozen=True, slots=True)
class NewLayerVersion:
    """PublishLayerVersion (the zip travels separately)."""

    name: str
    description: str = ""
    compatible_runtimes: tuple[str, ...] = ()
    compatible_architectures: tuple[str, ...] = ()
    license_info: str | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class LayerVersion:
    name: str
    version: int
    code_sha256: str  # hex
    code_size: int
    unzipped_size: int
    created: float  # epoch seconds
    description: str = ""
    compatible_runtimes: tuple[str, ...] = ()
    compatible_architectures: tuple[str, ...] = ()
    license_info: str | None = None

    def matches(self, runtime: str | None, architecture: str | None) -> bool:
        """ListLayers / ListLayerVersions filters."""
        return ((runtime is None or runtime in self.compatible_runtimes)
                and (architecture is None or architecture in self.compatible_architectures))

    def to_record(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> LayerVersion:
        values = dict(record)
        values["compatible_runtimes"] = tuple(values.get("compatible_runtimes", ()))
        values["compatible_architectures"] = tuple(values.get("compatible_architectures", ()))
        return cls(**values)


# resource policies -------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True, slots=True)
class Statement:
    """One statement of a resource policy, kept exactly as AWS renders it (compact JSON text)."""

    sid: str
    text: str


@dataclasses.dataclass(frozen=True, slots=True)
class Policy:
    """A resource policy: statements in the order they were added. `revision_id` is the policy's own
    (layer versions); a function policy reports its function version's or alias's RevisionId."""

    statements: tuple[Statement, ...] = ()
    revision_id: str = ""

    def find(self, sid: str) -> Statement | None:
        return next((s for s in self.statements if s.sid == sid), None)

    def document(self) -> str:
        """`{"Version":"2012-10-17","Id":"default","Statement":[...]}` as GetPolicy returns it."""
        body = ",".join(s.text for s in self.statements)
        return '{"Version":"2012-10-17","Id":"default","Statement":[' + body + "]}"


@dataclasses.dataclass(frozen=True, slots=True)
class AddPermission:
    """AddPermission (function policy). Optional members are None when not given."""

    statement_id: str
    action: str
    principal: str
    source_arn: str | None = None
    source_account: str | None = None
    event_source_token: str | None = None
    principal_org_id: str | None = None
    function_url_auth_type: str | None = None
    invoked_via_function_url: bool | None = None
    revision_id: str | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class AddLayerPermission:
    """AddLayerVersionPermission."""

    statement_id: str
    action: str
    principal: str
    organization_id: str | None = None
    revision_id: str | None = None
