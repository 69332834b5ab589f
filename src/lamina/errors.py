"""The one error tree of lamina, and the AWS error types it maps to.

    LaminaError
    ├── ApiError                      an AWS-shaped error: http_status, aws_code, message key casing
    │   ├── ResourceNotFound          404
    │   ├── ResourceConflict          409
    │   ├── InvalidParameterValue     400
    │   ├── ValidationError           400 (framework-level: pattern, length, enum)
    │   ├── InvalidRequestContent     400
    │   ├── RequestTooLarge           413 (AWS sends RequestEntityTooLargeException)
    │   ├── PreconditionFailed        412
    │   ├── PolicyLengthExceeded      400
    │   ├── TooManyRequests           429
    │   ├── UnsupportedMediaType      415
    │   ├── AuthError                 403
    │   │   ├── MissingAuthenticationToken
    │   │   ├── IncompleteSignature
    │   │   ├── InvalidSignature
    │   │   └── UnrecognizedClient
    │   └── ServiceException          500
    └── SandboxError                  the platform could not start or drive an environment

Call sites pass facts; each class owns the AWS wording. `api/wire.py` is the only place that turns an
ApiError into an HTTP response.
"""

from __future__ import annotations

import enum


class LaminaError(Exception):
    """Root of every error lamina raises on purpose."""


class ApiError(LaminaError):
    http_status: int = 400
    aws_code: str = "ServiceException"
    #: "Message" or "message": botocore exposes the modeled member, and AWS bodies match the model.
    message_key: str = "message"
    #: "User" / "Service" for modeled Lambda errors; None for framework errors that carry no Type.
    error_type: str | None = "User"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def body(self) -> dict[str, object]:
        out: dict[str, object] = {}
        if self.error_type is not None:
            out["Type"] = self.error_type
        out[self.message_key] = self.message
        return out

    def headers(self) -> dict[str, str]:
        return {}


class ResourceNotFound(ApiError):
    http_status = 404
    aws_code = "ResourceNotFoundException"
    message_key = "Message"

    @classmethod
    def function(cls, arn: str) -> ResourceNotFound:
        return cls(f"Function not found: {arn}")

    @classmethod
    def alias(cls, arn: str) -> ResourceNotFound:
        """GetAlias, and the policy operations, on an alias that does not exist."""
        return cls(f"Cannot find alias arn: {arn}")

    @classmethod
    def alias_to_update(cls, arn: str) -> ResourceNotFound:
        """UpdateAlias on an alias that does not exist (AWS words this one differently)."""
        return cls(f"Alias not found: {arn}")

    @classmethod
    def layer_version(cls, arn: str) -> ResourceNotFound:
        return cls(f"Layer version {arn} does not exist.")

    @classmethod
    def resource(cls) -> ResourceNotFound:
        """The generic wording (GetLayerVersion, GetPolicy without a policy)."""
        return cls("The resource you requested does not exist.")

    @classmethod
    def no_policy(cls) -> ResourceNotFound:
        return cls("No policy is associated with the given resource.")

    @classmethod
    def no_policy_for(cls, arn: str) -> ResourceNotFound:
        """RemovePermission on a function that does not exist."""
        return cls(f"No policy found for: {arn}")

    @classmethod
    def statement(cls, sid: str) -> ResourceNotFound:
        return cls(f"Statement {sid} is not found in resource policy.")


class ResourceConflict(ApiError):
    http_status = 409
    aws_code = "ResourceConflictException"

    @classmethod
    def function_exists(cls, name: str) -> ResourceConflict:
        return cls(f"Function already exist: {name}")

    @classmethod
    def alias_exists(cls, arn: str) -> ResourceConflict:
        return cls(f"Alias already exists: {arn}")

    @classmethod
    def statement_exists(cls, sid: str) -> ResourceConflict:
        return cls(
            f"The statement id ({sid}) provided already exists. "
            "Please provide a new statement id, or remove the existing statement."
        )

    @classmethod
    def version_in_use(cls, aliases: list[str]) -> ResourceConflict:
        return cls(f"Unable to delete version because the following aliases reference it: [{', '.join(aliases)}]")


class InvalidParameterValue(ApiError):
    aws_code = "InvalidParameterValueException"

    @classmethod
    def too_many_layers(cls) -> InvalidParameterValue:
        return cls("Cannot reference more than 5 layers.")

    @classmethod
    def unzipped_too_large(cls, limit: int) -> InvalidParameterValue:
        return cls(f"Unzipped size must be smaller than {limit} bytes")

    @classmethod
    def bad_marker(cls, marker: str) -> InvalidParameterValue:
        return cls(f"Invalid marker: {marker}")

    @classmethod
    def no_tags(cls) -> InvalidParameterValue:
        return cls("An error occurred and the request cannot be processed.")

    @classmethod
    def too_many_tags(cls) -> InvalidParameterValue:
        return cls("Number of tags exceeds resource tag limit.")

    @classmethod
    def too_many_weights(cls) -> InvalidParameterValue:
        return cls("Number of items in AdditionalVersionWeights cannot be greater than 1")

    @classmethod
    def version_already_routed(cls, version: str) -> InvalidParameterValue:
        return cls(f"Invalid function version {version}. "
                   f"Function version {version} is already included in routing configuration.")

    @classmethod
    def latest_with_routing(cls) -> InvalidParameterValue:
        return cls("$LATEST is not supported for an alias pointing to more than 1 version")

    @classmethod
    def missing_layer(cls, arn: str) -> InvalidParameterValue:
        return cls(f"Layer version {arn} does not exist.")

    @classmethod
    def layer_conflict(cls, first_arn: str, second_arn: str) -> InvalidParameterValue:
        return cls(
            "Two different versions of the same layer are not allowed to be referenced in the same function. "
            f"{first_arn} and {second_arn} are versions of the same layer."
        )

    @classmethod
    def code_sha_mismatch(cls, given: str, current: str) -> InvalidParameterValue:
        return cls(
            f"CodeSHA256 ({given}) is different from current CodeSHA256 in $LATEST ({current}). "
            "Please try again with the CodeSHA256 in $LATEST."
        )

    @classmethod
    def qualified_tag_resource(cls) -> InvalidParameterValue:
        return cls("Tags on function aliases and versions are not supported. Please specify a function ARN.")

    @classmethod
    def latest_policy(cls) -> InvalidParameterValue:
        return cls("We currently do not support adding policies for $LATEST.")

    @classmethod
    def bad_principal(cls) -> InvalidParameterValue:
        return cls("The provided principal was invalid. Please check the principal and try again.")


class ValidationError(ApiError):
    aws_code = "ValidationException"
    error_type = None

    @classmethod
    def null(cls, member: str) -> ValidationError:
        return cls(f"1 validation error detected: Value null at '{member}' failed to satisfy constraint: "
                   "Member must not be null")

    @classmethod
    def field(cls, value: object, member: str, constraint: str) -> ValidationError:
        return cls(
            f"1 validation error detected: Value '{value}' at '{member}' failed to satisfy "
            f"constraint: {constraint}"
        )


class InvalidRequestContent(ApiError):
    aws_code = "InvalidRequestContentException"


class RequestTooLarge(ApiError):
    http_status = 413
    aws_code = "RequestEntityTooLargeException"
    error_type = None


class PreconditionFailed(ApiError):
    http_status = 412
    aws_code = "PreconditionFailedException"

    @classmethod
    def revision(cls) -> PreconditionFailed:
        return cls(
            "The Revision Id provided does not match the latest Revision Id. "
            "Call the GetFunction/GetAlias API to retrieve the latest Revision Id"
        )

    @classmethod
    def layer_policy_revision(cls) -> PreconditionFailed:
        return cls(
            "The Revision Id provided does not match the latest Revision Id. "
            "Call the GetLayerPolicy API to retrieve the latest Revision Id"
        )


class PolicyLengthExceeded(ApiError):
    aws_code = "PolicyLengthExceededException"

    @classmethod
    def size(cls, size: int, limit: int) -> PolicyLengthExceeded:
        return cls(f"The final policy size ({size}) is bigger than the limit ({limit}).")


class ThrottleReason(enum.StrEnum):
    ACCOUNT = "ConcurrentInvocationLimitExceeded"
    RESERVED = "ReservedFunctionConcurrentInvocationLimitExceeded"


class TooManyRequests(ApiError):
    http_status = 429
    aws_code = "TooManyRequestsException"

    def __init__(self, reason: ThrottleReason, retry_after_s: int = 1) -> None:
        super().__init__("Rate Exceeded.")
        self.reason = reason
        self.retry_after_s = retry_after_s

    def body(self) -> dict[str, object]:
        return {"Reason": str(self.reason), "Type": "User", "message": self.message}

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after_s)}


class UnsupportedMediaType(ApiError):
    http_status = 415
    aws_code = "UnsupportedMediaTypeException"


class ServiceException(ApiError):
    http_status = 500
    aws_code = "ServiceException"
    message_key = "Message"
    error_type = "Service"


class AuthError(ApiError):
    http_status = 403
    error_type = None


class MissingAuthenticationToken(AuthError):
    aws_code = "MissingAuthenticationTokenException"

    def __init__(self, message: str = "Missing Authentication Token") -> None:
        super().__init__(message)


class IncompleteSignature(AuthError):
    aws_code = "IncompleteSignatureException"


class InvalidSignature(AuthError):
    aws_code = "InvalidSignatureException"

    def __init__(
        self,
        message: str = (
            "The request signature we calculated does not match the signature you provided. "
            "Check your AWS Secret Access Key and signing method. "
            "Consult the service documentation for details."
        ),
    ) -> None:
        super().__init__(message)


class UnrecognizedClient(AuthError):
    aws_code = "UnrecognizedClientException"

    def __init__(self, message: str = "The security token included in the request is invalid.") -> None:
        super().__init__(message)


class Json11Error(ApiError):
    """Errors of the JSON 1.1 services on lamina's port (Logs, EventBridge): the code in `__type`."""

    error_type = None

    def body(self) -> dict[str, object]:
        return {"__type": self.aws_code, "message": self.message}


class SandboxError(LaminaError):
    """An execution environment could not be started or driven."""


class FunctionErrorType(enum.StrEnum):
    """Error types the platform itself reports for an invocation (RIE's fatalerror set)."""

    EXIT = "Runtime.ExitError"
    INVALID_ENTRYPOINT = "Runtime.InvalidEntrypoint"
    UNKNOWN = "Runtime.Unknown"
    TIMEOUT = "Sandbox.Timedout"
    SANDBOX_FAILURE = "Sandbox.Failure"
    RESPONSE_TOO_LARGE = "Function.ResponseSizeTooLarge"
    OUT_OF_MEMORY = "Runtime.OutOfMemory"
