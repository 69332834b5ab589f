"""What the CLI prints when a call fails: the AWS error code, its message, and a one-line hint.

Pure: exception in, lines out (the click plumbing lives in cli.py).
"""

from __future__ import annotations

from dataclasses import dataclass

HINTS: dict[str, str] = {
    "ResourceNotFoundException": "check the name: `aws --endpoint-url URL lambda list-functions` lists what exists",
    "ResourceConflictException": "the resource exists or is busy: wait for it, or update it instead of creating it",
    "InvalidParameterValueException": "a request member has a value lamina (as AWS) refuses; the message says which",
    "ValidationException": "a request member is out of range or malformed; the message says which",
    "TooManyRequestsException": "concurrency is exhausted: retry, or raise LAMINA_CONCURRENCY_LIMIT / "
                                "the function's reserved concurrency",
    "RequestEntityTooLargeException": "keep direct uploads under 50 MB zipped (use layers for the rest)",
    "CodeStorageExceededException": "delete old versions or layers to free code storage",
    "UnrecognizedClientException": "the access key is not lamina's: `lamina serve` prints its key pair, "
                                   "also kept in DATA_DIR/credentials.json",
    "InvalidSignatureException": "the secret key does not match lamina's, or the clock is off by more than 15 minutes",
    "IncompleteSignatureException": "sign requests with SigV4 (any AWS SDK or the AWS CLI does)",
    "MissingAuthenticationTokenException": "sign requests with SigV4 (any AWS SDK or the AWS CLI does)",
    "AccessDeniedException": "the caller may not do this; check the function's resource policy",
    "ServiceException": "lamina failed internally: its log (the `lamina serve` output) has the traceback",
    "UnknownOperationException": "lamina does not implement this operation yet: see docs/api-compat.md",
}
CONNECT_HINT = "is `lamina serve` running there? (`make run` starts it on http://127.0.0.1:9001)"


@dataclass(frozen=True, slots=True)
class Explained:
    headline: str  # "ResourceNotFoundException: Function not found: …"
    hint: str | None


def explain(exc: BaseException) -> Explained | None:
    """The code, message and hint for an error the CLI should report plainly; None for anything else."""
    from botocore.exceptions import ClientError, EndpointConnectionError, NoCredentialsError, ParamValidationError

    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        code = error.get("Code") or "Error"
        message = error.get("Message") or str(exc)
        return Explained(f"{code}: {message}", HINTS.get(code))
    if isinstance(exc, ParamValidationError):  # refused by the SDK before it was sent
        report = str(exc.kwargs.get("report", exc)).strip().replace("\n", "; ")
        return Explained(f"invalid request: {report}", "fix that value (lamina.json, the template or the flag)")
    if isinstance(exc, EndpointConnectionError):
        return Explained(f"cannot connect to {exc.kwargs.get('endpoint_url', 'lamina')}", CONNECT_HINT)
    if isinstance(exc, NoCredentialsError):
        return Explained("no credentials", "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY to lamina's key pair")
    if isinstance(exc, ConnectionRefusedError) or (
            isinstance(exc, OSError) and isinstance(getattr(exc, "reason", None), ConnectionRefusedError)):
        return Explained("connection refused", CONNECT_HINT)
    return None


def lines(explained: Explained) -> list[str]:
    out = [f"error: {explained.headline}"]
    if explained.hint:
        out.append(f"hint: {explained.hint}")
    return out
