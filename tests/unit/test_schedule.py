"""Schedule expressions: parsing, validation, and next fire times (UTC)."""

from __future__ import annotations

import datetime as dt

import pytest

from lamina.events.schedule import InvalidSchedule, Rate, next_fire, parse


def ts(*args: int) -> float:
    return dt.datetime(*args, tzinfo=dt.timezone.utc).timestamp()


def when(expression: str, *after: int) -> dt.datetime | None:
    out = next_fire(parse(expression), ts(*after))
    return None if out is None else dt.datetime.fromtimestamp(out, tz=dt.timezone.utc).replace(tzinfo=None)


@pytest.mark.parametrize("expression,seconds", [
    ("rate(1 minute)", 60), ("rate(5 minutes)", 300), ("rate(1 hour)", 3600), ("rate(2 hours)", 7200),
    ("rate(1 day)", 86400), ("rate(7 days)", 604800),
])
def test_rates_parse_to_periods(expression, seconds):
    """rate(Value Unit) becomes a period in seconds."""
    assert parse(expression) == Rate(seconds)


@pytest.mark.parametrize("expression", [
    "rate(0 minutes)", "rate(1 minutes)", "rate(5 minute)", "rate(5 seconds)", "rate(-1 minutes)",
    "rate(5minutes)", "rate(x minutes)", "every 5 minutes", "",
    "cron(0 12 * * *)", "cron(0 12 * * ? * *)", "cron(0 12 * * * *)", "cron(0 12 ? * ? *)",
    "cron(60 12 * * ? *)", "cron(0 24 * * ? *)", "cron(0 0 32 * ? *)", "cron(0 0 0 * ? *)",
    "cron(0 0 * 13 ? *)", "cron(0 0 ? * 8 *)", "cron(0 0 ? * MON#6 *)", "cron(0 0 * * ? 1969)",
    "cron(0 0 * * ? 2200)", "cron(0/0 * * * ? *)", "cron(5-1 * * * ? *)", "cron(a * * * ? *)",
    "cron(0 0 32W * ? *)", "cron(0 0 ? * FOO *)",
])
def test_invalid_expressions_are_refused(expression):
    """Expressions EventBridge refuses raise InvalidSchedule."""
    with pytest.raises(InvalidSchedule):
        parse(expression)


def test_rate_counts_periods_from_its_anchor():
    """A rate fires at anchor + k * period, the first one after `after`."""
    anchor = ts(2024, 1, 1, 0, 0, 30)
    assert next_fire(Rate(300), anchor, anchor) == anchor + 300
    assert next_fire(Rate(300), anchor + 299, anchor) == anchor + 300
    assert next_fire(Rate(300), anchor + 300, anchor) == anchor + 600


def test_rate_after_a_long_downtime_skips_missed_ticks():
    """Asked after a day of downtime, a rate gives the next tick, not the missed ones."""
    anchor = ts(2024, 1, 1)
    assert next_fire(Rate(60), anchor + 86400 + 1, anchor) == anchor + 86400 + 60


def test_daily_cron():
    """cron(15 10 * * ? *) fires at 10:15 every day."""
    assert when("cron(15 10 * * ? *)", 2024, 3, 1, 9, 0) == dt.datetime(2024, 3, 1, 10, 15)
    assert when("cron(15 10 * * ? *)", 2024, 3, 1, 10, 15) == dt.datetime(2024, 3, 2, 10, 15)


def test_every_five_minutes_on_weekday_working_hours():
    """cron(0/5 8-17 ? * MON-FRI *) skips evenings and weekends."""
    assert when("cron(0/5 8-17 ? * MON-FRI *)", 2024, 3, 1, 8, 3) == dt.datetime(2024, 3, 1, 8, 5)  # Friday
    assert when("cron(0/5 8-17 ? * MON-FRI *)", 2024, 3, 1, 17, 55) == dt.datetime(2024, 3, 4, 8, 0)  # Monday


def test_first_monday_of_the_month():
    """cron(0 9 ? * 2#1 *) fires on the month's first Monday."""
    assert when("cron(0 9 ? * 2#1 *)", 2024, 3, 1) == dt.datetime(2024, 3, 4, 9, 0)
    assert when("cron(0 9 ? * MON#1 *)", 2024, 3, 4, 9, 0) == dt.datetime(2024, 4, 1, 9, 0)


def test_third_friday():
    """FRI#3 is the third Friday."""
    assert when("cron(0 0 ? * 6#3 *)", 2024, 3, 1) == dt.datetime(2024, 3, 15)


def test_last_day_of_month():
    """L in day-of-month is the month's last day, February of a leap year included."""
    assert when("cron(0 0 L * ? *)", 2024, 2, 1) == dt.datetime(2024, 2, 29)
    assert when("cron(0 0 L * ? *)", 2023, 2, 1) == dt.datetime(2023, 2, 28)
    assert when("cron(30 23 L * ? *)", 2024, 4, 30, 23, 30) == dt.datetime(2024, 5, 31, 23, 30)


def test_last_weekday_of_month():
    """LW is the last Monday-to-Friday day of the month."""
    assert when("cron(0 0 LW * ? *)", 2024, 3, 1) == dt.datetime(2024, 3, 29)  # the 31st is a Sunday


def test_nearest_weekday():
    """nW is the weekday nearest day n, without leaving the month."""
    assert when("cron(0 0 15W * ? *)", 2024, 6, 1) == dt.datetime(2024, 6, 14)  # 15th Saturday -> Friday
    assert when("cron(0 0 16W * ? *)", 2024, 6, 1) == dt.datetime(2024, 6, 17)  # 16th Sunday -> Monday
    assert when("cron(0 0 1W * ? *)", 2024, 6, 1) == dt.datetime(2024, 6, 3)  # 1st Saturday -> Monday 3rd
    assert when("cron(0 0 31W * ? *)", 2024, 8, 1) == dt.datetime(2024, 8, 30)  # 31st Saturday -> Friday


def test_last_weekday_of_a_kind():
    """6L in day-of-week is the month's last Friday; L alone is Saturday."""
    assert when("cron(0 0 ? * 6L *)", 2024, 3, 1) == dt.datetime(2024, 3, 29)
    assert when("cron(0 0 ? * FRIL *)", 2024, 3, 30) == dt.datetime(2024, 4, 26)
    assert when("cron(0 0 ? * L *)", 2024, 3, 1) == dt.datetime(2024, 3, 2)


def test_day_of_week_names_and_numbers_agree():
    """1 is Sunday and SUN is 1."""
    assert when("cron(0 12 ? * 1 *)", 2024, 3, 1) == when("cron(0 12 ? * SUN *)", 2024, 3, 1) == dt.datetime(2024, 3, 3, 12)


def test_month_names_and_lists():
    """JAN-DEC names, lists and ranges in the month field."""
    assert when("cron(0 0 1 JAN,JUL ? *)", 2024, 2, 1) == dt.datetime(2024, 7, 1)
    assert when("cron(0 0 1 2-3 ? *)", 2024, 3, 1, 0, 0) == dt.datetime(2025, 2, 1)


def test_year_field():
    """The year field limits fires to its years; past years mean no fire at all."""
    assert when("cron(0 0 1 1 ? 2030)", 2024, 5, 1) == dt.datetime(2030, 1, 1)
    assert when("cron(0 0 1 1 ? 2020-2022)", 2024, 5, 1) is None
    assert when("cron(0 0 1 1 ? 2024/2)", 2024, 5, 1) == dt.datetime(2026, 1, 1)


def test_day_31_skips_short_months():
    """Day 31 waits for a month that has one."""
    assert when("cron(0 0 31 * ? *)", 2024, 4, 1) == dt.datetime(2024, 5, 31)


def test_feb_29_waits_for_a_leap_year():
    """cron(0 0 29 2 ? *) after 2024's leap day is 2028."""
    assert when("cron(0 0 29 2 ? *)", 2024, 3, 1) == dt.datetime(2028, 2, 29)


def test_cron_fires_on_whole_minutes_strictly_after():
    """A cron asked mid-minute gives the next whole minute that matches."""
    assert when("cron(* * * * ? *)", 2024, 3, 1, 10, 0, 30) == dt.datetime(2024, 3, 1, 10, 1)
    assert when("cron(* * * * ? *)", 2024, 12, 31, 23, 59, 59) == dt.datetime(2025, 1, 1, 0, 0)
