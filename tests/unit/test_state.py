"""The environment state table, exhaustively: every event from every state."""

import pytest

from lamina.runtime_api.state import TRANSITIONS, EnvEvent, EnvState, InvalidStateTransition, transition


@pytest.mark.parametrize("state", list(EnvState))
@pytest.mark.parametrize("event", list(EnvEvent))
def test_every_event_from_every_state(state, event):
    """An event is legal only where the table says so (EXIT always is)."""
    if event is EnvEvent.EXIT:
        assert transition(state, event) is EnvState.DEAD
    elif (state, event) in TRANSITIONS:
        assert transition(state, event) is TRANSITIONS[(state, event)]
    else:
        with pytest.raises(InvalidStateTransition):
            transition(state, event)


def test_the_invoke_cycle():
    """init -> next -> deliver -> response -> next is the normal life of an environment."""
    s = EnvState.INIT
    for event, expected in [(EnvEvent.NEXT, EnvState.IDLE), (EnvEvent.DELIVER, EnvState.INVOKING),
                            (EnvEvent.RESPONSE, EnvState.RESPONDED), (EnvEvent.NEXT, EnvState.IDLE),
                            (EnvEvent.DELIVER, EnvState.INVOKING), (EnvEvent.ERROR, EnvState.RESPONDED)]:
        s = transition(s, event)
        assert s is expected


def test_init_error_only_during_init():
    assert transition(EnvState.INIT, EnvEvent.INIT_ERROR) is EnvState.INIT_FAILED
    with pytest.raises(InvalidStateTransition):
        transition(EnvState.IDLE, EnvEvent.INIT_ERROR)
