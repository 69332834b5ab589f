"""The state of one execution environment as its runtime drives it through the Runtime API.

Theory of operation: an environment starts in INIT, or in STANDBY when it is started ahead of need
(interpreter up, no function yet): ASSIGN gives it a function and moves it to INIT. Its runtime's first `GET /next` ends the init
phase (INIT -> IDLE: parked, waiting for work). The platform hands it one invocation (DELIVER:
IDLE -> INVOKING); the runtime answers with `/response` or `/error` (-> RESPONDED) and parks again
with `/next` (-> IDLE). `/init/error` is only legal during INIT. The process exiting ends
everything (-> DEAD). Anything not in the table is an InvalidStateTransition, which the Runtime API
answers with 403; validate a request before feeding the event, because transitions do not go back.
"""

from __future__ import annotations

import enum


class EnvState(enum.StrEnum):
    STANDBY = "standby"
    INIT = "init"
    IDLE = "idle"
    INVOKING = "invoking"
    RESPONDED = "responded"
    INIT_FAILED = "init-failed"
    DEAD = "dead"


class EnvEvent(enum.StrEnum):
    ASSIGN = "assign"
    NEXT = "next"
    DELIVER = "deliver"
    RESPONSE = "response"
    ERROR = "error"
    INIT_ERROR = "init-error"
    EXIT = "exit"


TRANSITIONS: dict[tuple[EnvState, EnvEvent], EnvState] = {
    (EnvState.STANDBY, EnvEvent.ASSIGN): EnvState.INIT,
    (EnvState.INIT, EnvEvent.NEXT): EnvState.IDLE,
    (EnvState.INIT, EnvEvent.INIT_ERROR): EnvState.INIT_FAILED,
    (EnvState.IDLE, EnvEvent.DELIVER): EnvState.INVOKING,
    (EnvState.INVOKING, EnvEvent.RESPONSE): EnvState.RESPONDED,
    (EnvState.INVOKING, EnvEvent.ERROR): EnvState.RESPONDED,
    (EnvState.RESPONDED, EnvEvent.NEXT): EnvState.IDLE,
}


class InvalidStateTransition(Exception):
    def __init__(self, state: EnvState, event: EnvEvent) -> None:
        super().__init__(f"State transition from {state} to {event} failed")
        self.state = state
        self.event = event


def transition(state: EnvState, event: EnvEvent) -> EnvState:
    """The next state, or InvalidStateTransition. EXIT is legal from anywhere."""
    if event is EnvEvent.EXIT:
        return EnvState.DEAD
    try:
        return TRANSITIONS[(state, event)]
    except KeyError:
        raise InvalidStateTransition(state, event) from None
