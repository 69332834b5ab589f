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
