"""What the Runtime API's two invocation operations do, whichever wire they came by (HTTP: server.py;
frames: frames.py): settle a runtime's result, and say what a runtime is told with an event."""

from __future__ import annotations

from lamina.model import Invocation
from lamina.scheduler.environment import MAX_RESPONSE_BYTES, Environment


def event_fields(environment: Environment, invocation: Invocation) -> tuple[str, str, str, str, str, str]:
    """What the runtime is told with an event: request id, deadline (epoch ms), invoked ARN, trace id,
    client context and Cognito identity ("" when there is none); HTTP sends them as headers."""
    return (invocation.request_id, str(environment.deadline_ms()), invocation.invoked_arn, invocation.trace_id,
            invocation.client_context or "", invocation.cognito_identity or "")


def accept_result(environment: Environment, request_id: str, kind: str, body: bytes, detail: str | None,
                  too_large: bool = False) -> tuple[int, str, str] | None:
    """A runtime's `/response` (`detail`: its content type) or `/error` (`detail`: its error type) for
    `request_id`: None once the invocation has it, else why not (status, error type, message)."""
    if not environment.check_request(request_id):
        return 400, "InvalidRequestID", "Invalid request ID"
    if too_large or len(body) > MAX_RESPONSE_BYTES:
        environment.too_large()
        return 413, "RequestEntityTooLarge", f"Exceeded maximum allowed payload size ({MAX_RESPONSE_BYTES} bytes)."
    if kind == "response":
        environment.respond(request_id, body, detail or "")
    else:
        environment.fail(request_id, body, detail)
    return None
