"""Parse and validate Lambda API input at the edge: function names, ARNs, configuration members.

What botocore does not check on the client (maximums, patterns, enums) is checked here, with the
exact AWS error each violation gets. The output is typed commands; services never see raw JSON.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import functools
import json
import re
from typing import Any

from lamina.errors import InvalidParameterValue, ValidationError
from lamina.model import LATEST, ConfigChanges, LayerVersionRef

_NAME_ARN = re.compile(
    r"^(arn:(aws[a-zA-Z-]*)?:lambda:)?([a-z]{2}((-gov)|(-iso([a-z]?)))?-[a-z]+-\d{1}:)?(\d{12}:)?"
    r"(function:)?([a-zA-Z0-9-_]+)(:(\$LATEST|[a-zA-Z0-9-_]+))?$"
)
_ROLE = re.compile(r"^arn:(aws[a-zA-Z-]*)?:iam::\d{12}:role/?[a-zA-Z_0-9+=,.@\-_/]+$")
_ENV_KEY = re.compile(r"^[a-zA-Z]([a-zA-Z0-9_])+$")
_HANDLER = re.compile(r"^[^\s]+$")
_QUALIFIER = re.compile(r"^[a-zA-Z0-9$_-]+$")
LAYER_VERSION_ARN_PATTERN = (
    r"(arn:[a-zA-Z0-9-]+:lambda:[a-z]{2}((-gov)|(-iso(b?)))?-[a-z]+-\d{1}:\d{12}:layer:[a-zA-Z0-9-_]+:[0-9]+)"
    r"|(arn:[a-zA-Z0-9-]+:lambda:::awslayer:[a-zA-Z0-9-_]+)"
)
_LAYER_VERSION_ARN = re.compile(
    r"^arn:(?P<partition>[a-zA-Z0-9-]+):lambda:(?P<region>[a-z]{2}((-gov)|(-iso(b?)))?-[a-z]+-\d{1}):"
    r"(?P<account>\d{12}):layer:(?P<name>[a-zA-Z0-9-_]+):(?P<version>[0-9]+)$"
)
MAX_LAYERS = 5
RESERVED_ENV = frozenset({
    "_HANDLER", "_X_AMZN_TRACE_ID", "AWS_DEFAULT_REGION", "AWS_REGION", "AWS_EXECUTION_ENV",
    "AWS_LAMBDA_FUNCTION_NAME", "AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "AWS_LAMBDA_FUNCTION_VERSION",
    "AWS_LAMBDA_INITIALIZATION_TYPE", "AWS_LAMBDA_LOG_GROUP_NAME", "AWS_LAMBDA_LOG_STREAM_NAME",
    "AWS_ACCESS_KEY", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
    "AWS_LAMBDA_RUNTIME_API", "LAMBDA_TASK_ROOT", "LAMBDA_RUNTIME_DIR",
})
ENV_LIMIT_BYTES = 4096


@dataclasses.dataclass(frozen=True, slots=True)
class FunctionRef:
    name: str
    qualifier: str | None


@functools.lru_cache(maxsize=4096)  # pure, and the same names come back with every invoke
def function_ref(value: str, qualifier: str | None = None, member: str = "functionName") -> FunctionRef:
    """Split a function name, partial ARN or ARN (optionally `:qualifier`) into name and qualifier."""
    match = _NAME_ARN.match(value)
    if not match or len(value) > 256:
        raise ValidationError.field(
            value, member,
            "Member must satisfy regular expression pattern: "
            r"(arn:(aws[a-zA-Z-]*)?:lambda:)?([a-z]{2}((-gov)|(-iso([a-z]?)))?-[a-z]+-\d{1}:)?(\d{12}:)?"
            r"(function:)?([a-zA-Z0-9-_]+)(:(\$LATEST|[a-zA-Z0-9-_]+))?",
        )
    name, derived = match.group(10), match.group(12)
    if len(name) > 64:
        raise ValidationError.field(value, member, "Member must have length less than or equal to 64")
    if qualifier is not None:
        check_qualifier(qualifier)
    if derived and qualifier and derived != qualifier:
        raise InvalidParameterValue(
            "The derived qualifier from the function name does not match the specified qualifier."
        )
    return FunctionRef(name, derived or qualifier)


def check_qualifier(value: str) -> str:
    """The Qualifier member: a version, `$LATEST` or an alias name (existence is the service's concern)."""
    if len(value) > 128:
        raise ValidationError.field(value, "qualifier", "Member must have length less than or equal to 128")
    if not _QUALIFIER.match(value):
        raise ValidationError.field(value, "qualifier",
                                    "Member must satisfy regular expression pattern: (|[a-zA-Z0-9$_-]+)")
    return value


def unqualified_ref(value: str) -> FunctionRef:
    """Operations on the function itself (PublishVersion, aliases): the name may not carry a qualifier."""
    ref = function_ref(value)
    if ref.qualifier is not None:
        raise InvalidParameterValue("Function name cannot contain a qualifier for this operation.")
    return ref


def max_items(value: str | None, high: int) -> int | None:
    """The MaxItems query member (1..high)."""
    if value is None:
        return None
    if not value.isdigit() or not 1 <= int(value) <= high:
        raise ValidationError.field(value, "maxItems", f"Member must have value between 1 and {high}")
    return int(value)


def layer_version_ref(arn: str) -> LayerVersionRef:
    match = _LAYER_VERSION_ARN.match(arn) if len(arn) <= 140 else None
    if match is None:
        raise ValidationError(
            f"1 validation error detected: Value '[{arn}]' at 'layers' failed to satisfy constraint: "
            "Member must satisfy constraint: [Member must have length less than or equal to 140, "
            "Member must have length greater than or equal to 1, Member must satisfy regular expression "
            f"pattern: {LAYER_VERSION_ARN_PATTERN}, Member must not be null]"
        )
    return LayerVersionRef(arn, match["region"], match["account"], match["name"], int(match["version"]))


def layer_refs(value: Any) -> tuple[LayerVersionRef, ...] | None:
    """The Layers member of Create/UpdateFunctionConfiguration: at most five layer version ARNs."""
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(arn, str) for arn in value):
        raise ValidationError.field(value, "layers", "Member must be a list of strings")
    if len(value) > MAX_LAYERS:
        raise InvalidParameterValue.too_many_layers()
    return tuple(layer_version_ref(arn) for arn in value)


def new_function_name(value: Any) -> str:
    """CreateFunction: a plain name or an ARN without qualifier."""
    if not isinstance(value, str):
        raise ValidationError.field(value, "functionName", "Member must not be null")
    ref = function_ref(value)
    if ref.qualifier is not None:
        raise InvalidParameterValue("Function name cannot contain a qualifier for this operation.")
    return ref.name


def optional_int(body: dict[str, Any], key: str, member: str, low: int, high: int) -> int | None:
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValidationError.field(value, member, "Member must be an integer")
    if value < low:
        raise ValidationError.field(value, member, f"Member must have value greater than or equal to {low}")
    if value > high:
        raise ValidationError.field(value, member, f"Member must have value less than or equal to {high}")
    return value


def required_int(body: dict[str, Any], key: str, member: str, low: int, high: int = 2**31 - 1) -> int:
    value = optional_int(body, key, member, low, high)
    if value is None:
        raise ValidationError.field(None, member, "Member must not be null")
    return value


def _str(body: dict[str, Any], key: str, member: str, max_len: int, pattern: re.Pattern[str] | None = None) -> str | None:
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValidationError.field(value, member, "Member must be a string")
    if len(value) > max_len:
        raise ValidationError.field(value, member, f"Member must have length less than or equal to {max_len}")
    if pattern is not None and not pattern.match(value):
        raise ValidationError.field(value, member, f"Member must satisfy regular expression pattern: {pattern.pattern}")
    return value


def environment(body: dict[str, Any]) -> dict[str, str] | None:
    env = body.get("Environment")
    if env is None:
        return None
    variables = (env or {}).get("Variables") or {}
    if not isinstance(variables, dict):
        raise ValidationError.field(variables, "environment.variables", "Member must be a map")
    for key, value in variables.items():
        if not _ENV_KEY.match(key):
            raise ValidationError.field(
                "[" + ", ".join(variables) + "]", "environment.variables",
                "Member must satisfy constraint: [Member must satisfy regular expression pattern: "
                "[a-zA-Z]([a-zA-Z0-9_])+]",
            )
        if not isinstance(value, str):
            raise ValidationError.field(value, f"environment.variables.{key}", "Member must be a string")
    reserved = sorted(k for k in variables if k in RESERVED_ENV)
    if reserved:
        raise InvalidParameterValue(
            "Lambda was unable to configure your environment variables because the environment variables "
            "you have provided contains reserved keys that are currently not supported for modification. "
            f"Reserved keys used in this request: {', '.join(reserved)}"
        )
    measured = json.dumps(variables, separators=(",", ":"))
    if len(measured.encode()) > ENV_LIMIT_BYTES:
        raise InvalidParameterValue(
            "Lambda was unable to configure your environment variables because the environment variables "
            f"you have provided exceeded the 4KB limit. String measured: {measured}"
        )
    return dict(variables)


def config_changes(body: dict[str, Any]) -> ConfigChanges:
    storage = body.get("EphemeralStorage")
    tracing = (body.get("TracingConfig") or {}).get("Mode")
    if tracing is not None and tracing not in ("Active", "PassThrough"):
        raise ValidationError.field(tracing, "tracingConfig.mode",
                                    "Member must satisfy enum value set: [Active, PassThrough]")
    logging = body.get("LoggingConfig") or {}
    log_format = logging.get("LogFormat")
    if log_format is not None and log_format not in ("JSON", "Text"):
        raise ValidationError.field(log_format, "loggingConfig.logFormat",
                                    "Member must satisfy enum value set: [JSON, Text]")
    layers = layer_refs(body.get("Layers"))
    return ConfigChanges(
        runtime=_str(body, "Runtime", "runtime", 64),
        handler=_str(body, "Handler", "handler", 128, _HANDLER),
        role=_str(body, "Role", "role", 2048, _ROLE),
        description=_str(body, "Description", "description", 256),
        timeout_s=optional_int(body, "Timeout", "timeout", 1, 900),
        memory_mb=optional_int(body, "MemorySize", "memorySize", 128, 10240),
        ephemeral_storage_mb=optional_int(storage, "Size", "ephemeralStorage.size", 512, 10240) if storage else None,
        environment=environment(body),
        tracing_mode=tracing,
        layers=layers,
        log_format=log_format,
        log_group=logging.get("LogGroup"),
        dead_letter_target_arn=(body.get("DeadLetterConfig") or {}).get("TargetArn"),
        kms_key_arn=body.get("KMSKeyArn"),
        vpc_config=body.get("VpcConfig"),
        revision_id=body.get("RevisionId"),
    )


def zip_file(code: Any, member: str = "ZipFile") -> bytes:
    """The base64 ZipFile of Code (or UpdateFunctionCode's body); other sources are refused."""
    if not isinstance(code, dict):
        raise InvalidParameterValue("Please provide a source for function code.")
    if code.get("ImageUri"):
        raise InvalidParameterValue("lamina does not run container-image functions (PackageType Image).")
    if code.get("S3Bucket") or code.get("S3Key"):
        raise InvalidParameterValue("lamina takes code as ZipFile only; S3Bucket/S3Key are not supported yet.")
    raw = code.get(member)
    if not isinstance(raw, str) or not raw:
        raise InvalidParameterValue("Please provide a source for function code.")
    try:
        return base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidParameterValue(
            "Could not unzip uploaded file. Please check your file, then try to upload again."
        ) from exc


def s3_location(code: Any) -> tuple[str, str] | None:
    """Code.S3Bucket/S3Key (S3ObjectVersion is ignored: lamina's buckets keep no versions), or None
    when the code comes as ZipFile."""
    if not isinstance(code, dict) or not (code.get("S3Bucket") or code.get("S3Key")):
        return None
    bucket, key = code.get("S3Bucket"), code.get("S3Key")
    if not isinstance(bucket, str) or not isinstance(key, str) or not bucket or not key:
        raise InvalidParameterValue("Please provide a source for function code.")
    if code.get("ZipFile"):
        raise InvalidParameterValue("Please do not provide other FunctionCode parameters when providing a "
                                    "ZipFile.")
    return bucket, key


def invoke_qualifier(ref: FunctionRef) -> str:
    return ref.qualifier or LATEST


def flag(body: dict[str, Any], key: str, member: str) -> bool:
    value = body.get(key, False)
    if not isinstance(value, bool):
        raise ValidationError.field(value, member, "Member must be a boolean")
    return value


def optional_str(body: dict[str, Any], key: str, member: str, max_len: int,
                 pattern: re.Pattern[str] | None = None) -> str | None:
    return _str(body, key, member, max_len, pattern)


def required_str(body: dict[str, Any], key: str, member: str, max_len: int,
                 pattern: re.Pattern[str] | None = None, pattern_text: str | None = None) -> str:
    value = body.get(key)
    if value is None:
        raise ValidationError.null(member)
    if not isinstance(value, str):
        raise ValidationError.field(value, member, "Member must be a string")
    if len(value) > max_len:
        raise ValidationError.field(value, member, f"Member must have length less than or equal to {max_len}")
    if pattern is not None and not pattern.match(value):
        raise ValidationError.field(
            value, member, f"Member must satisfy regular expression pattern: {pattern_text or pattern.pattern}")
    return value
