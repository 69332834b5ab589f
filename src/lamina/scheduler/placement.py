"""Pure concurrency decisions: admit an invocation, or throttle it with Lambda's reason.

Lambda's model: an account-wide limit of concurrent executions; a function may reserve part of it
(ReservedConcurrentExecutions), which both guarantees and caps that function; every function without
a reservation shares what is left (the unreserved pool), which may not be reserved below a minimum.
"""

from __future__ import annotations

from collections.abc import Mapping

from lamina.errors import ThrottleReason


def min_unreserved(account_limit: int) -> int:
    """AWS keeps 100 unreserved; a small local limit keeps a tenth (so reservations stay possible)."""
    return min(100, account_limit // 10)


def unreserved_limit(account_limit: int, reserved: Mapping[str, int]) -> int:
    return account_limit - sum(reserved.values())


def admit(function: str, account_limit: int, reserved: Mapping[str, int], in_flight: Mapping[str, int],
          unreserved_in_flight: int) -> ThrottleReason | None:
    """None to run it now, or why it is throttled."""
    if function in reserved:
        return None if in_flight.get(function, 0) < reserved[function] else ThrottleReason.RESERVED
    if unreserved_in_flight < unreserved_limit(account_limit, reserved):
        return None
    return ThrottleReason.ACCOUNT


def reservation_problem(function: str, value: int, account_limit: int, reserved: Mapping[str, int]) -> str | None:
    """AWS's message when reserving `value` for `function` would leave too little unreserved."""
    others = sum(v for name, v in reserved.items() if name != function)
    floor = min_unreserved(account_limit)
    if account_limit - others - value < floor:
        return (
            "Specified ReservedConcurrentExecutions for function decreases account's "
            f"UnreservedConcurrentExecution below its minimum value of [{floor}]."
        )
    return None
