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


class ResourceConflict(ApiError):
    http_status = 409
    aws_code = "ResourceConflictException"

    @classmethod
    def function_exists(cls, name: str) -> ResourceConflict:
        return cls(f"Function already exist: {name}")


class InvalidParameterValue(ApiError):
    aws_code = "InvalidParameterValueException"


class ValidationError(ApiError):
    aws_code = "ValidationException"
    error_type = None

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
