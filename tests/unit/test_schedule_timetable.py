"""The schedule timetable: which rules fire at a moment, without replaying missed ticks."""

from __future__ import annotations

from lamina.events.ticker import Timetable, scheduled_event
from lamina.store.schedules import Rule

T0 = 1_700_000_000.0


def rule(name: str = "r", expression: str = "rate(1 minute)", state: str = "ENABLED") -> Rule:
    return Rule(name, expression, state, None, T0)


def test_a_rate_rule_fires_once_per_period():
    """A rate(1 minute) rule is due a minute after its anchor, then a minute later."""
    table = Timetable()
    table.sync([rule()], T0)
    assert table.due(T0 + 59) == []
    assert [at for _, at in table.due(T0 + 60)] == [T0 + 60]
    assert table.due(T0 + 61) == []
    assert [at for _, at in table.due(T0 + 120)] == [T0 + 120]


def test_missed_ticks_fire_once_not_in_a_burst():
    """After an hour without looking, a rate(1 minute) rule fires once, then resumes its period."""
    table = Timetable()
    table.sync([rule()], T0)
    assert len(table.due(T0 + 3600 + 30)) == 1
    assert table.due(T0 + 3600 + 59) == []
    assert len(table.due(T0 + 3660)) == 1


def test_a_restart_does_not_replay():
    """A fresh timetable (a restarted server) schedules from now, not from the anchor."""
    table = Timetable()
    table.sync([rule()], T0 + 86400 + 1)
    assert table.due(T0 + 86400 + 1) == []
    assert table.next_time() == T0 + 86400 + 60


def test_disabled_and_deleted_rules_do_not_fire():
    """Disabled rules are left out; a rule gone from the store is forgotten."""
    table = Timetable()
    table.sync([rule("a"), rule("b", state="DISABLED")], T0)
    assert [r.name for r, _ in table.due(T0 + 60)] == ["a"]
    table.sync([], T0 + 61)
    assert table.due(T0 + 120) == [] and table.next_time() is None


def test_a_changed_expression_is_rescheduled():
    """Changing a rule's expression recomputes its next time."""
    table = Timetable()
    table.sync([rule(expression="rate(1 hour)")], T0)
    assert table.next_time() == T0 + 3600
    table.sync([rule(expression="rate(5 minutes)")], T0 + 10)
    assert table.next_time() == T0 + 300


def test_scheduled_event_shape():
    """The scheduled event has EventBridge's members (lambda-spec 8.7)."""
    event = scheduled_event("arn:aws:events:us-east-1:000000000000:rule/r", "000000000000", "us-east-1", T0)
    assert event["detail-type"] == "Scheduled Event" and event["source"] == "aws.events"
    assert event["time"] == "2023-11-14T22:13:20Z"
    assert event["resources"] == ["arn:aws:events:us-east-1:000000000000:rule/r"] and event["detail"] == {}
    assert set(event) == {"version", "id", "detail-type", "source", "account", "time", "region", "resources", "detail"}
