"""EventBridge schedule expressions, pure: parse `rate(...)` / six-field `cron(...)`, and the next fire
time after a moment (UTC, seconds since the epoch). No clock, no I/O: the asyncio loop in
`events/scheduler.py` asks `next_fire` and sleeps.

Theory of operation: a rate fires every `period_s` counted from its anchor (when the rule got the
expression); a cron fires at the first whole minute after `after` whose minute, hour, month, year and
day (day-of-month or day-of-week: exactly one of them is `?`) all match. Asking for the fire time after
"now" (never after the last fire) is what keeps ticks missed while the server was down from being
replayed in a burst.
"""

from __future__ import annotations

import calendar
import dataclasses
import datetime as dt
import re

MONTHS = {m: i for i, m in enumerate(
    ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"], start=1)}
DAYS = {d: i for i, d in enumerate(["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"], start=1)}
YEAR_MIN, YEAR_MAX = 1970, 2199
_RATE = re.compile(r"^rate\((\d+) (minute|minutes|hour|hours|day|days)\)$")
_UNIT_S = {"minute": 60, "hour": 3600, "day": 86400}


class InvalidSchedule(ValueError):
    """The expression is not a valid EventBridge schedule expression."""


@dataclasses.dataclass(frozen=True, slots=True)
class Rate:
    period_s: int


@dataclasses.dataclass(frozen=True, slots=True)
class Cron:
    minutes: frozenset[int]
    hours: frozenset[int]
    months: frozenset[int]
    years: frozenset[int]
    #: Day of month: None when `?`; else a set of days, and/or "L" (last), "LW" (last weekday),
    #: "<n>W" (the weekday nearest day n).
    dom: frozenset[int] | None
    dom_special: str | None
    #: Day of week (1 = SUN): None when `?`; else a set of days, or "<d>L" (last d of the month),
    #: or "<d>#<k>" (k-th d of the month).
    dow: frozenset[int] | None
    dow_special: str | None


Schedule = Rate | Cron


def parse(expression: str) -> Schedule:
    """Parse a schedule expression; raise InvalidSchedule when it is not one EventBridge accepts."""
    text = expression.strip() if isinstance(expression, str) else ""
    if text.startswith("rate("):
        m = _RATE.match(text)
        if not m:
            raise InvalidSchedule(expression)
        value, unit = int(m.group(1)), m.group(2)
        if value < 1 or (value == 1) != (not unit.endswith("s")):
            raise InvalidSchedule(expression)
        return Rate(value * _UNIT_S[unit.rstrip("s")])
    if text.startswith("cron(") and text.endswith(")"):
        fields = text[5:-1].split()
        if len(fields) != 6:
            raise InvalidSchedule(expression)
        try:
            return _cron(fields)
        except (ValueError, KeyError) as exc:
            raise InvalidSchedule(expression) from exc
    raise InvalidSchedule(expression)


def _number(token: str, names: dict[str, int] | None) -> int:
    upper = token.upper()
    if names and upper in names:
        return names[upper]
    if not token.isdigit():
        raise ValueError(token)
    return int(token)


def _field(text: str, low: int, high: int, names: dict[str, int] | None = None) -> frozenset[int]:
    """`, - * /` lists: `*`, `a`, `a-b`, `*/n`, `a/n`, `a-b/n`."""
    values: set[int] = set()
    for part in text.split(","):
        base, slash, step_text = part.partition("/")
        step = int(step_text) if slash else 1
        if slash and (not step_text.isdigit() or step < 1):
            raise ValueError(part)
        if base == "*":
            start, end = low, high
        elif "-" in base:
            a, _, b = base.partition("-")
            start, end = _number(a, names), _number(b, names)
        else:
            start = _number(base, names)
            end = high if slash else start
        if not (low <= start <= high and low <= end <= high) or start > end:
            raise ValueError(part)
        values.update(range(start, end + 1, step))
    return frozenset(values)


def _cron(fields: list[str]) -> Cron:
    minute, hour, dom, month, dow, year = fields
    if (dom == "?") == (dow == "?"):
        raise ValueError("exactly one of day-of-month and day-of-week must be ?")
    dom_set: frozenset[int] | None = None
    dom_special: str | None = None
    if dom != "?":
        upper = dom.upper()
        if upper in ("L", "LW"):
            dom_special = upper
        elif re.fullmatch(r"\d{1,2}W", upper):
            if not 1 <= int(upper[:-1]) <= 31:
                raise ValueError(dom)
            dom_special = upper
        else:
            dom_set = _field(dom, 1, 31)
    dow_set: frozenset[int] | None = None
    dow_special: str | None = None
    if dow != "?":
        upper = dow.upper()
        if upper == "L":  # the last day of the week: Saturday
            dow_set = frozenset({7})
        elif m := re.fullmatch(r"(\w{1,3})L", upper):
            dow_special = f"{_day(m.group(1))}L"
        elif m := re.fullmatch(r"(\w{1,3})#([1-5])", upper):
            dow_special = f"{_day(m.group(1))}#{m.group(2)}"
        else:
            dow_set = _field(dow, 1, 7, DAYS)
    return Cron(
        minutes=_field(minute, 0, 59), hours=_field(hour, 0, 23), months=_field(month, 1, 12, MONTHS),
        years=_field(year, YEAR_MIN, YEAR_MAX), dom=dom_set, dom_special=dom_special,
        dow=dow_set, dow_special=dow_special,
    )


def _day(token: str) -> int:
    value = _number(token, DAYS)
    if not 1 <= value <= 7:
        raise ValueError(token)
    return value


def aws_weekday(day: dt.date) -> int:
    """1 = Sunday ... 7 = Saturday, as cron's day-of-week counts."""
    return (day.weekday() + 1) % 7 + 1


def _nearest_weekday(year: int, month: int, day: int) -> int:
    last = calendar.monthrange(year, month)[1]
    day = min(day, last)
    weekday = dt.date(year, month, day).weekday()  # Mon=0
    if weekday == 5:  # Saturday: Friday before, unless that leaves the month
        return day - 1 if day > 1 else day + 2
    if weekday == 6:  # Sunday: Monday after, unless that leaves the month
        return day + 1 if day < last else day - 2
    return day


def day_matches(cron: Cron, day: dt.date) -> bool:
    """Whether `day` is one of the cron's days (month and year are checked separately)."""
    last = calendar.monthrange(day.year, day.month)[1]
    if cron.dom is not None:
        return day.day in cron.dom
    if cron.dom_special == "L":
        return day.day == last
    if cron.dom_special == "LW":
        return day.day == _nearest_weekday(day.year, day.month, last)
    if cron.dom_special is not None:  # nW
        return day.day == _nearest_weekday(day.year, day.month, int(cron.dom_special[:-1]))
    weekday = aws_weekday(day)
    if cron.dow is not None:
        return weekday in cron.dow
    special = cron.dow_special or ""
    if special.endswith("L"):
        return weekday == int(special[:-1]) and day.day + 7 > last
    want, _, nth = special.partition("#")
    return weekday == int(want) and (day.day - 1) // 7 + 1 == int(nth)


def next_fire(schedule: Schedule, after: float, anchor: float = 0.0) -> float | None:
    """The first fire time strictly after `after`; None when a cron has no future time (its years
    are past). A rate counts periods from `anchor`."""
    if isinstance(schedule, Rate):
        if after < anchor:
            return anchor + schedule.period_s
        periods = int((after - anchor) // schedule.period_s) + 1
        return anchor + periods * schedule.period_s
    return _next_cron(schedule, after)


def _next_cron(cron: Cron, after: float) -> float | None:
    start = dt.datetime.fromtimestamp(int(after // 60) * 60 + 60, tz=dt.timezone.utc)
    day = start.date()
    minutes = sorted(cron.minutes)
    hours = sorted(cron.hours)
    while day.year <= YEAR_MAX:
        if day.year not in cron.years:
            day = dt.date(day.year + 1, 1, 1)
            continue
        if day.month not in cron.months:
            day = dt.date(day.year + 1, 1, 1) if day.month == 12 else dt.date(day.year, day.month + 1, 1)
            continue
        if day_matches(cron, day):
            first = start if day == start.date() else None
            for hour in hours:
                if first is not None and hour < first.hour:
                    continue
                for minute in minutes:
                    if first is not None and hour == first.hour and minute < first.minute:
                        continue
                    moment = dt.datetime(day.year, day.month, day.day, hour, minute, tzinfo=dt.timezone.utc)
                    return moment.timestamp()
        day += dt.timedelta(days=1)
    return None
