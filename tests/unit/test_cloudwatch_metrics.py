"""The CBOR codec (checked against botocore's own serializer and parser) and the AWS/Lambda metric math."""

from __future__ import annotations

import math
from datetime import datetime, timezone

import botocore.session
import pytest
from botocore import parsers, serialize

from lamina.api.cloudwatch import unflatten
from lamina.cloudwatch import cbor, engine
from lamina.cloudwatch.engine import Invocation, Selector, Throttle


def test_cbor_round_trips_what_cloudwatch_sends():
    value = {"a": [1, -2, 2**40, 1.5, "é", b"\x00\xff", True, False, None],
             "t": datetime(2026, 11, 27, 3, 0, tzinfo=timezone.utc), "m": {"k": {"n": []}}}
    assert cbor.decode(cbor.encode(value)) == value


def test_cbor_reads_botocores_request_and_botocore_reads_lamina_s_answer():
    model = botocore.session.get_session().get_service_model("cloudwatch")
    operation = model.operation_model("GetMetricData")
    start = datetime(2026, 11, 27, 2, 0, tzinfo=timezone.utc)
    request = serialize.create_serializer("smithy-rpc-v2-cbor").serialize_to_request({
        "MetricDataQueries": [{"Id": "q", "MetricStat": {"Metric": {"Namespace": "AWS/Lambda", "MetricName": "Duration",
                               "Dimensions": [{"Name": "FunctionName", "Value": "f"}]}, "Period": 60, "Stat": "p99"}}],
        "StartTime": start, "EndTime": datetime(2026, 11, 27, 3, 0, tzinfo=timezone.utc)}, operation)
    decoded = cbor.decode(request["body"])
    assert decoded["StartTime"] == start
    assert decoded["MetricDataQueries"][0]["MetricStat"]["Stat"] == "p99"

    body = cbor.encode({"MetricDataResults": [{"Id": "q", "Label": "Duration", "Timestamps": [start],
                                               "Values": [1.25], "StatusCode": "Complete"}], "Messages": []})
    parsed = parsers.create_parser("smithy-rpc-v2-cbor").parse(
        {"status_code": 200, "headers": {"smithy-protocol": "rpc-v2-cbor"}, "body": body}, operation.output_shape)
    assert parsed["MetricDataResults"][0]["Values"] == [1.25]
    assert parsed["MetricDataResults"][0]["Timestamps"][0].timestamp() == start.timestamp()


def test_cbor_half_floats_and_indefinite_lengths():
    assert cbor.decode(bytes([0xF9, 0x3C, 0x00])) == 1.0
    assert math.isinf(cbor.decode(bytes([0xF9, 0x7C, 0x00])))
    assert cbor.decode(bytes([0x9F, 0x01, 0x02, 0xFF])) == [1, 2]
    assert cbor.decode(bytes([0xBF, 0x61, 0x61, 0x01, 0xFF])) == {"a": 1}
    with pytest.raises(cbor.CborError):
        cbor.decode(bytes([0x62, 0x61]))


RECORDS = [
    Invocation("f", "1", end_s=60.5, duration_ms=400, failed=False),   # runs 60.1–60.5
    Invocation("f", "1", end_s=60.6, duration_ms=300, failed=True),    # runs 60.3–60.6: overlaps the first
    Invocation("f", "2", end_s=130.0, duration_ms=100, failed=False),
    Invocation("g", "1", end_s=61.0, duration_ms=50, failed=False),
]


def test_invocations_errors_and_duration_per_period():
    f = Selector("f")
    assert engine.series("Invocations", "Sum", f, RECORDS, [], 0, 180, 60) == [(60, 2.0), (120, 1.0)]
    assert engine.series("Errors", "Sum", f, RECORDS, [], 0, 180, 60) == [(60, 1.0), (120, 0.0)]
    assert engine.series("Errors", "Average", f, RECORDS, [], 0, 180, 60)[0] == (60, 0.5)
    assert engine.series("Duration", "Maximum", f, RECORDS, [], 0, 180, 60) == [(60, 400.0), (120, 100.0)]
    assert engine.series("Duration", "p50", f, RECORDS, [], 0, 180, 60)[0] == (60, 300.0)
    assert engine.series("Invocations", "Sum", Selector(), RECORDS, [], 0, 180, 60)[0] == (60, 3.0)
    assert engine.series("Invocations", "Sum", Selector("f", "2"), RECORDS, [], 0, 180, 60) == [(120, 1.0)]


def test_concurrency_is_the_peak_overlap_and_throttles_count():
    assert engine.series("ConcurrentExecutions", "Maximum", Selector("f"), RECORDS, [], 0, 180, 60) == [
        (60, 2.0), (120, 1.0)]
    assert engine.series("ConcurrentExecutions", "Maximum", Selector(), RECORDS, [], 0, 180, 60)[0] == (60, 2.0)
    throttles = [Throttle("f", 61), Throttle("f", 62), Throttle("g", 63)]
    assert engine.series("Throttles", "Sum", Selector("f"), [], throttles, 0, 180, 60) == [(60, 2.0)]


def test_bad_queries_say_why():
    for metric, stat, period in (("Duration", "Median", 60), ("Duration", "p101", 60), ("Duration", "Sum", 90),
                                 ("Memory", "Sum", 60)):
        with pytest.raises(engine.MetricQueryError):
            engine.series(metric, stat, Selector(), RECORDS, [], 0, 180, period)
    with pytest.raises(engine.MetricQueryError):
        Selector.of([("Region", "x")])
    assert Selector.of([("Resource", "f:3")]) == Selector("f", "3")


def test_query_protocol_parameters_unflatten():
    params = unflatten([("MetricDataQueries.member.1.Id", "a"),
                        ("MetricDataQueries.member.1.MetricStat.Metric.Dimensions.member.1.Name", "FunctionName"),
                        ("MetricDataQueries.member.2.Id", "b"), ("Statistics.member.1", "Sum")])
    assert params == {"MetricDataQueries": [{"Id": "a", "MetricStat": {"Metric": {"Dimensions": [
        {"Name": "FunctionName"}]}}}, {"Id": "b"}], "Statistics": ["Sum"]}
