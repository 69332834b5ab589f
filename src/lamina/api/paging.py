"""Opaque pagination tokens of the JSON-protocol APIs lamina speaks besides Lambda's (CloudWatch Logs,
EventBridge): a position (a row offset or id) in URL-safe base64. A CloudWatch Logs stream token may carry
a direction prefix (`f/`, `b/`), which the position ignores."""

from __future__ import annotations

import base64
from collections.abc import Callable


def token(position: int) -> str:
    return base64.urlsafe_b64encode(str(position).encode()).decode()


def position(value: str | None, invalid: Callable[[str], Exception]) -> int:
    """The position a token names (0 without one); `invalid(message)` is raised for a malformed token."""
    if not value:
        return 0
    try:
        return int(base64.urlsafe_b64decode(value.split("/")[-1].encode()).decode())
    except ValueError as exc:
        raise invalid("The specified nextToken is invalid.") from exc
