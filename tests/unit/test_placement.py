"""Concurrency decisions: account limit, reserved concurrency, the unreserved pool."""

from lamina.errors import ThrottleReason
from lamina.scheduler.placement import admit, min_unreserved, reservation_problem, unreserved_limit


def test_unreserved_functions_share_what_is_left():
    reserved = {"big": 300}
    assert unreserved_limit(1000, reserved) == 700
    assert admit("f", 1000, reserved, {}, 699) is None
    assert admit("f", 1000, reserved, {}, 700) is ThrottleReason.ACCOUNT


def test_a_reserved_function_is_capped_by_its_reservation_only():
    reserved = {"r": 2}
    assert admit("r", 1000, reserved, {"r": 1}, 998) is None
    assert admit("r", 1000, reserved, {"r": 2}, 0) is ThrottleReason.RESERVED


def test_reserved_zero_throttles_everything():
    assert admit("off", 1000, {"off": 0}, {}, 0) is ThrottleReason.RESERVED


def test_reservations_keep_the_unreserved_minimum():
    assert min_unreserved(1000) == 100 and min_unreserved(10) == 1
    assert reservation_problem("f", 900, 1000, {}) is None
    message = reservation_problem("f", 901, 1000, {})
    assert message and "below its minimum value of [100]" in message
    assert reservation_problem("f", 800, 1000, {"g": 150}) is not None
    assert reservation_problem("g", 200, 1000, {"g": 150}) is None  # replacing its own reservation


def test_metrics_render_per_function_counters_and_environment_states():
    from lamina.metrics import Metrics

    m = Metrics()
    m.invoked("f", 3.0, failed=False, cold=True)
    m.invoked("f", 700.0, failed=True, cold=False)
    m.throttled("g", 0.0)
    text = m.render({"f": 1}, {("f", "idle"): 2, ("", "standby"): 1})
    assert 'lamina_invocations_total{function="f"} 2' in text
    assert 'lamina_errors_total{function="f"} 1' in text
    assert 'lamina_cold_starts_total{function="f"} 1' in text
    assert 'lamina_throttles_total{function="g"} 1' in text
    assert 'lamina_concurrent_executions{function="f"} 1' in text
    assert 'lamina_environments{function="f",state="idle"} 2' in text
    assert 'lamina_duration_ms_bucket{function="f",le="5"} 1' in text
    assert 'lamina_duration_ms_bucket{function="f",le="+Inf"} 2' in text
    assert 'lamina_duration_ms_count{function="f"} 2' in text
