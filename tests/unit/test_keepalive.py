"""Keep-alive policy decisions (pure)."""

from lamina.scheduler.keepalive import IdleHistogram, keepalive_s, prewarm_s, reuse_value


def fill(gaps):
    h = IdleHistogram()
    for gap in gaps:
        h.add(gap)
    return h


def test_fixed_policy_ignores_history():
    assert keepalive_s(fill([900] * 50), 600, "fixed") == 600


def test_too_little_history_falls_back_to_the_fixed_window():
    assert keepalive_s(fill([900] * 3), 600, "histogram") == 600


def test_a_function_called_every_15_minutes_stays_warm():
    assert keepalive_s(fill([900] * 50), 600, "histogram") >= 900


def test_a_bursty_function_is_let_go_early():
    assert keepalive_s(fill([1.0] * 100), 600, "histogram") == 66.0


def test_gaps_beyond_four_hours_fall_back():
    assert keepalive_s(fill([5 * 3600] * 20), 600, "histogram") == 600


def test_value_prefers_busy_small_environments():
    busy = reuse_value(10, 600, rate_per_s=1.0, memory_mb=128)
    quiet = reuse_value(10, 600, rate_per_s=1 / 3600, memory_mb=128)
    big = reuse_value(10, 600, rate_per_s=1.0, memory_mb=1024)
    assert busy > big > 0 and busy > quiet
    assert reuse_value(700, 600, 1.0, 128) == 0.0


def test_prewarm_only_for_functions_whose_gaps_are_all_long():
    assert prewarm_s(fill([900] * 50), "histogram") == 900 * 0.85
    assert prewarm_s(fill([30] * 50), "histogram") == 0.0
    assert prewarm_s(fill([900] * 40 + [5] * 10), "histogram") == 0.0  # 20% short gaps
    assert prewarm_s(fill([900] * 50), "fixed") == 0.0
    assert prewarm_s(fill([900] * 3), "histogram") == 0.0
