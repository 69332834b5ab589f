"""Create/UpdateEventSourceMapping members, checked as AWS checks them (lambda-spec §9.1); pure.

Framework-level violations (type, range, enum, pattern) are ValidationException; rules that depend on
the source type are InvalidParameterValueException. The output is a `Mapping` (model.py); the function's
existence, duplicates and the source's reachability are the manager's checks.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any

from lamina.api import parse
from lamina.errors import InvalidParameterValue, ValidationError
from lamina.esm import filters
from lamina.esm.model import USER_ACTION, USER_INITIATED, Mapping, SourceKind, State

ARN_PATTERN = (r"arn:(aws[a-zA-Z0-9-]*):([a-zA-Z0-9\-])+:((eusc-)?[a-z]{2}((-gov)|(-iso([a-z]?)))?-[a-z]+-\d{1})?:"
               r"(\d{12})?:(.*)")
_ARN = re.compile(ARN_PATTERN)
DESTINATION_PATTERN = (r"$|kafka://([^.]([a-zA-Z0-9\-_.]{0,248}))|arn:(aws[a-zA-Z0-9-]*):([a-zA-Z0-9\-])+:"
                       r"((eusc-)?[a-z]{2}((-gov)|(-iso([a-z]?)))?-[a-z]+-\d{1})?:(\d{12})?:(.*)")
_DESTINATION = re.compile(DESTINATION_PATTERN)
_SQS = re.compile(r"^arn:aws[a-zA-Z-]*:sqs:[a-z0-9-]+:\d{12}:[a-zA-Z0-9_-]{1,80}(\.fifo)?$")
_KINESIS = re.compile(r"^arn:aws[a-zA-Z-]*:kinesis:[a-z0-9-]+:\d{12}:stream/[a-zA-Z0-9_.-]+(/consumer/.+)?$")
_DYNAMODB = re.compile(r"^arn:aws[a-zA-Z-]*:dynamodb:[a-z0-9-]+:\d{12}:table/[a-zA-Z0-9_.-]+/stream/.+$")
POSTGRES_PREFIX = "arn:lamina:postgres:"  # lamina's own source (esm/sources/postgres.py)
POSITIONS = ("TRIM_HORIZON", "LATEST", "AT_TIMESTAMP")
RESPONSE_TYPES = ("ReportBatchItemFailures",)
DEFAULT_BATCH = {SourceKind.SQS: 10, SourceKind.KINESIS: 100, SourceKind.DYNAMODB: 100, SourceKind.POSTGRES: 100}
MAX_BATCH = {SourceKind.DYNAMODB: 1000}
STREAM_ONLY = ("StartingPosition", "StartingPositionTimestamp", "ParallelizationFactor", "BisectBatchOnFunctionError",
               "MaximumRetryAttempts", "MaximumRecordAgeInSeconds", "TumblingWindowInSeconds", "DestinationConfig")
QUEUE_ONLY = ("ScalingConfig",)


def unsupported(member: str) -> InvalidParameterValue:
    return InvalidParameterValue(f"Unsupported {member} parameter for given event source mapping type.")


def source_kind(arn: Any) -> SourceKind:
    """The kind of source an EventSourceArn names (InvalidParameterValue for one lamina cannot read)."""
    if arn is None or arn == "":
        raise InvalidParameterValue("Unrecognized event source.")
    if not isinstance(arn, str):
        raise ValidationError.field(arn, "eventSourceArn", "Member must be a string")
    if arn.startswith(POSTGRES_PREFIX):
        return SourceKind.POSTGRES
    if len(arn) > 10000 or not _ARN.fullmatch(arn):
        raise ValidationError.field(arn, "eventSourceArn", f"Member must satisfy regular expression pattern: {ARN_PATTERN}")
    for kind, pattern in ((SourceKind.SQS, _SQS), (SourceKind.KINESIS, _KINESIS), (SourceKind.DYNAMODB, _DYNAMODB)):
        if pattern.match(arn):
            return kind
    raise InvalidParameterValue("Unrecognized event source, must be kinesis, dynamodb stream or sqs.")


def function_ref(value: Any) -> parse.FunctionRef:
    if value is None:
        raise ValidationError.null("functionName")
    if not isinstance(value, str):
        raise ValidationError.field(value, "functionName", "Member must be a string")
    if len(value) > 140:
        raise ValidationError.field(value, "functionName", "Member must have length less than or equal to 140")
    return parse.function_ref(value)


def _given(value: Any) -> bool:
    """A member with content (`{}` and `{"OnFailure": {}}` say nothing)."""
    if isinstance(value, dict):
        return any(_given(v) for v in value.values())
    return value is not None and value != ""


def _bool(body: dict[str, Any], key: str, member: str) -> bool | None:
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, bool):
        raise ValidationError.field(value, member, "Member must be a boolean")
    return value


def _filters(value: Any) -> tuple[str, ...]:
    if not isinstance(value, dict):
        raise ValidationError.field(value, "filterCriteria", "Member must be a structure")
    listed = value.get("Filters") or []
    if not isinstance(listed, list) or not all(isinstance(f, dict) for f in listed):
        raise ValidationError.field(listed, "filterCriteria.filters", "Member must be a list of structures")
    patterns = []
    for index, item in enumerate(listed):
        pattern = item.get("Pattern")
        if isinstance(pattern, str) and len(pattern) > filters.PATTERN_MAX:
            raise ValidationError.field(pattern, f"filterCriteria.filters.{index + 1}.member.pattern",
                                        "Member must have length less than or equal to 4096")
        patterns.append(pattern)
    filters.compile_filters(patterns)  # InvalidParameterValue "Invalid filter pattern definition."
    return tuple(patterns)


def _response_types(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or len(value) > 1 or any(v not in RESPONSE_TYPES for v in value):
        raise ValidationError.field(
            value, "functionResponseTypes",
            "Member must satisfy constraint: [Member must satisfy enum value set: [ReportBatchItemFailures]]"
            if isinstance(value, list) and len(value) <= 1 else "Member must have length less than or equal to 1")
    return tuple(value)


def _max_concurrency(value: Any) -> int | None:
    if not isinstance(value, dict):
        raise ValidationError.field(value, "scalingConfig", "Member must be a structure")
    return parse.optional_int(value, "MaximumConcurrency", "scalingConfig.maximumConcurrency", 2, 1000)


def _on_failure(value: Any) -> str | None:
    if not isinstance(value, dict):
        raise ValidationError.field(value, "destinationConfig", "Member must be a structure")
    if value.get("OnSuccess"):
        raise unsupported("DestinationConfig")
    part = value.get("OnFailure") or {}
    if not isinstance(part, dict):
        raise ValidationError.field(part, "destinationConfig.onFailure", "Member must be a structure")
    arn = part.get("Destination")
    if arn is None or arn == "":
        return None
    member = "destinationConfig.onFailure.destination"
    if not isinstance(arn, str) or len(arn) > 350 or not _DESTINATION.fullmatch(arn):
        raise ValidationError.field(arn, member, f"Member must satisfy regular expression pattern: {DESTINATION_PATTERN}")
    service = arn.split(":")[2] if arn.count(":") >= 2 else ""
    if service != "sqs":
        raise InvalidParameterValue(f"lamina sends on-failure records to SQS queues only, so far; {arn} is not one.")
    return arn


def _timestamp(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValidationError.field(value, "startingPositionTimestamp", "Member must be a timestamp")
    return float(value)


def changes(body: dict[str, Any], kind: SourceKind, *, create: bool) -> dict[str, Any]:
    """The Mapping fields the request's members set (only those given), each checked on its own."""
    out: dict[str, Any] = {}
    for key in STREAM_ONLY if not kind.is_stream else QUEUE_ONLY:
        if _given(body.get(key)):
            raise unsupported(key)
    if (enabled := _bool(body, "Enabled", "enabled")) is not None:
        out["enabled"] = enabled
    if (size := parse.optional_int(body, "BatchSize", "batchSize", 1, 10000)) is not None:
        out["batch_size"] = size
    window = parse.optional_int(body, "MaximumBatchingWindowInSeconds", "maximumBatchingWindowInSeconds", 0, 300)
    if window is not None:
        out["batching_window_s"] = window
    if body.get("FilterCriteria") is not None:
        out["filters"] = _filters(body["FilterCriteria"])
    if body.get("FunctionResponseTypes") is not None:
        out["function_response_types"] = _response_types(body["FunctionResponseTypes"])
    if kind is SourceKind.SQS:
        if body.get("ScalingConfig") is not None:
            out["max_concurrency"] = _max_concurrency(body["ScalingConfig"])
        return out
    if body.get("DestinationConfig") is not None:
        out["on_failure"] = _on_failure(body["DestinationConfig"])
    ints = (("ParallelizationFactor", "parallelizationFactor", 1, 10, "parallelization_factor"),
            ("MaximumRetryAttempts", "maximumRetryAttempts", -1, 10000, "max_retry_attempts"),
            ("MaximumRecordAgeInSeconds", "maximumRecordAgeInSeconds", -1, 604800, "max_record_age_s"),
            ("TumblingWindowInSeconds", "tumblingWindowInSeconds", 0, 900, "tumbling_window_s"))
    for key, member, low, high, field in ints:
        value = parse.optional_int(body, key, member, low, high)
        if value is not None:
            out[field] = value
    if (bisect := _bool(body, "BisectBatchOnFunctionError", "bisectBatchOnFunctionError")) is not None:
        out["bisect_on_error"] = bisect
    if create:
        position = body.get("StartingPosition")
        if position is None:
            raise ValidationError("1 validation error detected: Value null at 'startingPosition' failed to satisfy "
                                  "constraint: Member must not be null.")
        if position not in POSITIONS:
            raise ValidationError.field(position, "startingPosition",
                                        "Member must satisfy enum value set: [LATEST, AT_TIMESTAMP, TRIM_HORIZON]")
        out["starting_position"] = position
        if body.get("StartingPositionTimestamp") is not None:
            out["starting_timestamp"] = _timestamp(body["StartingPositionTimestamp"])
    return out


def check(mapping: Mapping) -> Mapping:
    """The rules across members and source types, on the mapping as it would be stored."""
    kind = mapping.kind
    if mapping.batch_size > MAX_BATCH.get(kind, 10000):
        raise InvalidParameterValue(
            f"BatchSize must be between 1 and {MAX_BATCH[kind]} for this event source type.")
    if kind is SourceKind.SQS:
        if mapping.fifo and mapping.batch_size > 10:
            raise InvalidParameterValue("Batch size for FIFO queues must be between 1 and 10.")
        if mapping.batch_size > 10 and mapping.batching_window_s == 0:
            raise InvalidParameterValue(
                "Maximum batch window in seconds must be greater than 0 if maximum batch size is greater than 10")
        return mapping
    if mapping.starting_position == "AT_TIMESTAMP":
        if kind is SourceKind.DYNAMODB:
            raise InvalidParameterValue(f"Unsupported starting position for arn type: {mapping.source_arn}")
        if mapping.starting_timestamp is None:
            raise InvalidParameterValue("StartingPositionTimestamp must be set when StartingPosition is AT_TIMESTAMP.")
    if mapping.max_record_age_s not in (-1,) and mapping.max_record_age_s < 60:
        raise InvalidParameterValue("MaximumRecordAgeInSeconds must be -1 or between 60 and 604800.")
    if mapping.tumbling_window_s:
        raise InvalidParameterValue("lamina does not support TumblingWindowInSeconds yet.")
    return mapping


def new_mapping(body: dict[str, Any], uuid: str, now: float) -> tuple[Mapping, parse.FunctionRef]:
    """CreateEventSourceMapping: the mapping to store (state Creating) and the function it names."""
    ref = function_ref(body.get("FunctionName"))
    kind = source_kind(body.get("EventSourceArn"))
    given = changes(body, kind, create=True)
    mapping = Mapping(
        uuid=uuid, function=ref.name, qualifier=ref.qualifier, source_arn=body["EventSourceArn"], kind=kind,
        enabled=True, state=State.CREATING, state_reason=USER_ACTION if kind.is_stream else USER_INITIATED,
        batch_size=DEFAULT_BATCH[kind], batching_window_s=0, last_modified=now)
    return check(dataclasses.replace(mapping, **given)), ref


def updated(current: Mapping, body: dict[str, Any], now: float) -> tuple[Mapping, parse.FunctionRef | None]:
    """UpdateEventSourceMapping: the mapping after the given members (state Updating/Enabling/Disabling)."""
    ref = function_ref(body["FunctionName"]) if body.get("FunctionName") is not None else None
    given = changes(body, current.kind, create=False)
    out = dataclasses.replace(current, **given, last_modified=now)
    if ref is not None:
        out = dataclasses.replace(out, function=ref.name, qualifier=ref.qualifier)
    if out.enabled != current.enabled:
        state = State.ENABLING if out.enabled else State.DISABLING
    else:
        state = State.UPDATING
    return check(dataclasses.replace(out, state=state)), ref
