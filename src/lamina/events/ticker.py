"""Scheduled rules firing: a pure table of next fire times (`Timetable`) and the thin asyncio loop
(`Ticker`) that app.py runs as a background task.

The timetable only ever computes the next fire time after "now", so a rule whose ticks were missed
(server down, machine asleep) fires once at its next tick, never in a burst.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import uuid
from collections.abc import Callable

from lamina.api import parse as api_parse
from lamina.clock import Clock
from lamina.errors import ApiError
from lamina.events import schedule
from lamina.model import InvocationType
from lamina.service.invoke import InvokeRequest, InvokeService
from lamina.store.schedules import Rule, ScheduleStore

log = logging.getLogger("lamina.events")


class Timetable:
    """Next fire time per enabled rule; `sync` with the stored rules, `due(now)` pops what fires."""

    def __init__(self) -> None:
        self._next: dict[str, tuple[Rule, float]] = {}

    def sync(self, rules: list[Rule], now: float) -> None:
        current: dict[str, tuple[Rule, float]] = {}
        for rule in rules:
            if rule.state != "ENABLED":
                continue
            known = self._next.get(rule.name)
            if known is not None and known[0] == rule:
                current[rule.name] = known
                continue
            at = schedule.next_fire(schedule.parse(rule.expression), now, rule.anchor)
            if at is not None:
                current[rule.name] = (rule, at)
        self._next = current

    def due(self, now: float) -> list[tuple[Rule, float]]:
        """Rules due at `now` with their scheduled time; each gets its next time after `now`."""
        fired = []
        for name, (rule, at) in list(self._next.items()):
            if at <= now:
                fired.append((rule, at))
                after = schedule.next_fire(schedule.parse(rule.expression), now, rule.anchor)
                if after is None:
                    del self._next[name]
                else:
                    self._next[name] = (rule, after)
        return fired

    def next_time(self) -> float | None:
        return min((at for _, at in self._next.values()), default=None)


def scheduled_event(rule_arn: str, account: str, region: str, at: float) -> dict[str, object]:
    """The EventBridge scheduled event (lambda-spec 8.7)."""
    return {
        "version": "0", "id": str(uuid.uuid4()), "detail-type": "Scheduled Event", "source": "aws.events",
        "account": account, "time": dt.datetime.fromtimestamp(at, tz=dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": region, "resources": [rule_arn], "detail": {},
    }


class ScaledClock:
    """The schedule's clock: `speedup` times faster than `base` from the moment it is made (tests)."""

    def __init__(self, base: Clock, speedup: float) -> None:
        self._base = base
        self._speedup = speedup
        self._origin = base.time()
        self._mono = base.monotonic()

    def time(self) -> float:
        return self._origin + (self._base.monotonic() - self._mono) * self._speedup

    def monotonic(self) -> float:
        return self._mono + (self._base.monotonic() - self._mono) * self._speedup


class Ticker:
    """Fires due rules' targets as Event invocations. `run()` is the background task."""

    def __init__(self, store: ScheduleStore, invoker: InvokeService, clock: Clock, account: str, region: str,
                 rule_arn: Callable[[str], str], speedup: float = 1.0) -> None:
        self._store = store
        self._invoker = invoker
        self._clock = clock
        self._account = account
        self._region = region
        self._rule_arn = rule_arn
        self._speedup = speedup
        self.timetable = Timetable()

    async def run(self) -> None:
        while True:
            now = self._clock.time()
            self.timetable.sync(self._store.rules(), now)
            for rule, at in self.timetable.due(now):
                await self.fire(rule, at)
            upcoming = self.timetable.next_time()
            wait = 1.0 if upcoming is None else (upcoming - now) / self._speedup
            await asyncio.sleep(min(max(wait, 0.01), 1.0))  # at most 1 s, so rule changes are seen

    async def fire(self, rule: Rule, at: float) -> None:
        arn = self._rule_arn(rule.name)
        default = json.dumps(scheduled_event(arn, self._account, self._region, at)).encode()
        for target in self._store.targets(rule.name):
            payload = target.input.encode() if target.input is not None else default
            try:
                ref = api_parse.function_ref(target.arn)
                await self._invoker.invoke(InvokeRequest(ref.name, ref.qualifier, payload, InvocationType.EVENT))
            except ApiError as exc:  # a deleted function: EventBridge reports a failed invocation and goes on
                log.warning("schedule_target_failed rule=%s target=%s error=%s", rule.name, target.arn, exc.message)
