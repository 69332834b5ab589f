"""Lambda's wire shapes: FunctionConfiguration, AliasConfiguration, layer versions; and the ONE mapper
from ApiError to a response."""

from __future__ import annotations

import base64
import json
from typing import Any

from lamina.http.server import Response

from lamina.errors import ApiError
from lamina.model import Alias, Arns, FunctionConfig, LayerVersion, aws_timestamp

JSON = "application/json"


def json_response(body: Any, status: int = 200, request_id: str = "", headers: dict[str, str] | None = None) -> Response:
    out = {"x-amzn-RequestId": request_id} if request_id else {}
    if headers:
        out.update(headers)
    return Response(json.dumps(body).encode(), status=status, content_type=JSON, headers=out)


def error_response(error: ApiError, request_id: str) -> Response:
    headers = {"x-amzn-RequestId": request_id, "x-amzn-ErrorType": error.aws_code, **error.headers()}
    return Response(json.dumps(error.body()).encode(), status=error.http_status, content_type=JSON, headers=headers)


def code_sha256_b64(hex_digest: str) -> str:
    return base64.b64encode(bytes.fromhex(hex_digest)).decode()


def function_configuration(config: FunctionConfig, arn: str, *, phase: str | None = None,
                           listing: bool = False) -> dict[str, Any]:
    """FunctionConfiguration as AWS renders it. `phase` is "create" or "update" for those responses."""
    out: dict[str, Any] = {
        "FunctionName": config.name,
        "FunctionArn": arn,
        "Runtime": config.runtime,
        "Role": config.role,
        "Handler": config.handler,
        "CodeSize": config.code_size,
        "Description": config.description,
        "Timeout": config.timeout_s,
        "MemorySize": config.memory_mb,
        "LastModified": aws_timestamp(config.last_modified),
        "CodeSha256": code_sha256_b64(config.code_sha256),
        "Version": config.version,
        "Environment": {"Variables": dict(config.environment)},
        "TracingConfig": {"Mode": config.tracing_mode},
        "RevisionId": config.revision_id,
        "PackageType": config.package_type,
        "Architectures": list(config.architectures),
        "EphemeralStorage": {"Size": config.ephemeral_storage_mb},
        "SnapStart": {"ApplyOn": "None", "OptimizationStatus": "Off"},
        "LoggingConfig": {"LogFormat": config.log_format, "LogGroup": config.log_group_name},
    }
    if config.layers:
        arns = _arns_of(arn)
        out["Layers"] = [{"Arn": arns.layer_version(layer.name, layer.version), "CodeSize": layer.code_size}
                         for layer in config.layers]
    if config.dead_letter_target_arn:
        out["DeadLetterConfig"] = {"TargetArn": config.dead_letter_target_arn}
    if config.kms_key_arn:
        out["KMSKeyArn"] = config.kms_key_arn
    if config.vpc_config:
        out["VpcConfig"] = config.vpc_config
    if listing:
        return out
    out["State"] = str(config.state)
    if phase == "create":
        out.update(State="Pending", StateReason="The function is being created.", StateReasonCode="Creating")
    elif phase == "update":
        out.update(LastUpdateStatus="InProgress", LastUpdateStatusReason="The function is being created.",
                   LastUpdateStatusReasonCode="Creating")
    elif config.last_update_status:
        out["LastUpdateStatus"] = config.last_update_status
    region = arn.split(":")[3]
    out["RuntimeVersionConfig"] = {"RuntimeVersionArn": f"arn:aws:lambda:{region}::runtime:{'0' * 64}"}
    return out


def _arns_of(arn: str) -> Arns:
    """The partition, region and account of an ARN already rendered for this request."""
    parts = arn.split(":")
    return Arns(region=parts[3], account=parts[4], partition=parts[1])


def alias_configuration(alias: Alias, arns: Arns) -> dict[str, Any]:
    out: dict[str, Any] = {
        "AliasArn": arns.function(alias.function_name, alias.name),
        "Name": alias.name,
        "FunctionVersion": alias.function_version,
        "Description": alias.description,
        "RevisionId": alias.revision_id,
    }
    if alias.routing:
        out["RoutingConfig"] = {"AdditionalVersionWeights": dict(alias.routing)}
    return out


def layer_version(layer: LayerVersion, arns: Arns, location: str) -> dict[str, Any]:
    """PublishLayerVersion / GetLayerVersion / GetLayerVersionByArn."""
    out: dict[str, Any] = {
        "Content": {"Location": location, "CodeSha256": code_sha256_b64(layer.code_sha256),
                    "CodeSize": layer.code_size},
        "LayerArn": arns.layer(layer.name),
        "LayerVersionArn": arns.layer_version(layer.name, layer.version),
        "Description": layer.description,
        "CreatedDate": aws_timestamp(layer.created),
        "Version": layer.version,
    }
    return _layer_optionals(out, layer)


def layer_versions_item(layer: LayerVersion, arns: Arns) -> dict[str, Any]:
    """An entry of ListLayerVersions, and ListLayers' LatestMatchingVersion."""
    out: dict[str, Any] = {
        "LayerVersionArn": arns.layer_version(layer.name, layer.version),
        "Version": layer.version,
        "Description": layer.description,
        "CreatedDate": aws_timestamp(layer.created),
    }
    return _layer_optionals(out, layer)


def _layer_optionals(out: dict[str, Any], layer: LayerVersion) -> dict[str, Any]:
    if layer.compatible_runtimes:
        out["CompatibleRuntimes"] = list(layer.compatible_runtimes)
    if layer.license_info is not None:
        out["LicenseInfo"] = layer.license_info
    if layer.compatible_architectures:
        out["CompatibleArchitectures"] = list(layer.compatible_architectures)
    return out
