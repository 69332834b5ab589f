"""Concurrency limits through boto3: reserved concurrency, the account limit, 429s with Lambda's reasons."""

from __future__ import annotations

import concurrent.futures
import json
import time
import urllib.request

import pytest
from botocore.exceptions import ClientError

from tests.conftest import make_zip
from tests.integration.conftest import start_server, stop_server

ROLE = "arn:aws:iam::000000000000:role/x"
APP = "import time\ndef handler(event, context):\n    time.sleep(event.get('s', 0))\n    return 'ok'\n"


def create(lam, name):
    lam.create_function(FunctionName=name, Runtime="python3.11", Handler="app.handler", Role=ROLE,
                        Code={"ZipFile": make_zip({"app.py": APP})}, Timeout=30)
    return name


def invoke(lam, name, seconds=0.0):
    try:
        out = lam.invoke(FunctionName=name, Payload=json.dumps({"s": seconds}))
        return json.loads(out["Payload"].read())
    except ClientError as err:
        return err.response


def test_put_get_delete_function_concurrency(lam, fname):
    create(lam, fname)
    assert lam.get_function_concurrency(FunctionName=fname).get("ReservedConcurrentExecutions") is None
    before = lam.get_account_settings()["AccountLimit"]["UnreservedConcurrentExecutions"]
    out = lam.put_function_concurrency(FunctionName=fname, ReservedConcurrentExecutions=5)
    assert out["ReservedConcurrentExecutions"] == 5
    assert lam.get_function_concurrency(FunctionName=fname)["ReservedConcurrentExecutions"] == 5
    assert lam.get_account_settings()["AccountLimit"]["UnreservedConcurrentExecutions"] == before - 5
    assert lam.delete_function_concurrency(FunctionName=fname)["ResponseMetadata"]["HTTPStatusCode"] == 204
    assert lam.get_function_concurrency(FunctionName=fname).get("ReservedConcurrentExecutions") is None


def test_reserving_below_the_unreserved_minimum_is_refused(lam, fname):
    create(lam, fname)
    with pytest.raises(lam.exceptions.InvalidParameterValueException) as err:
        lam.put_function_concurrency(FunctionName=fname, ReservedConcurrentExecutions=950)
    assert "below its minimum value of [100]" in err.value.response["Error"]["Message"]


def test_unknown_function(lam):
    with pytest.raises(lam.exceptions.ResourceNotFoundException):
        lam.put_function_concurrency(FunctionName="no-such-fn", ReservedConcurrentExecutions=1)


def test_reserved_zero_throttles_every_invoke(lam, fname):
    create(lam, fname)
    lam.put_function_concurrency(FunctionName=fname, ReservedConcurrentExecutions=0)
    reply = invoke(lam, fname)
    assert reply["Error"]["Code"] == "TooManyRequestsException"
    assert reply["ResponseMetadata"]["HTTPStatusCode"] == 429
    assert reply["Reason"] == "ReservedFunctionConcurrentInvocationLimitExceeded"
    lam.delete_function_concurrency(FunctionName=fname)
    assert invoke(lam, fname) == "ok"


def test_a_function_at_its_reservation_throttles_the_extra_invoke(lam, fname):
    create(lam, fname)
    lam.put_function_concurrency(FunctionName=fname, ReservedConcurrentExecutions=1)
    invoke(lam, fname)  # warm
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        slow = pool.submit(invoke, lam, fname, 1.5)
        import time
        time.sleep(0.5)
        fast = pool.submit(invoke, lam, fname, 0)
        results = [slow.result(), fast.result()]
    assert results[0] == "ok"
    assert results[1]["Reason"] == "ReservedFunctionConcurrentInvocationLimitExceeded"


def test_account_limit_throttles_and_reservations_survive_a_restart(tmp_path):
    env = {"LAMINA_CONCURRENCY_LIMIT": "3"}
    srv = start_server(tmp_path / "data", tmp_path / "one.log", env)
    try:
        lam = srv.client()
        name = create(lam, "busy")
        with concurrent.futures.ThreadPoolExecutor(5) as pool:
            results = list(pool.map(lambda _: invoke(lam, name, 1.0), range(5)))
        throttled = [r for r in results if isinstance(r, dict)]
        assert len([r for r in results if r == "ok"]) == 3 and len(throttled) == 2
        assert all(r["Reason"] == "ConcurrentInvocationLimitExceeded" for r in throttled)
        other = create(lam, "reserved")
        lam.put_function_concurrency(FunctionName=other, ReservedConcurrentExecutions=2)
        assert lam.get_account_settings()["AccountLimit"]["UnreservedConcurrentExecutions"] == 1
        metrics = urllib.request.urlopen(srv.url + "/metrics").read().decode()
        assert "lamina_throttles_total{function=\"busy\"} 2" in metrics, metrics
        assert 'lamina_invocations_total{function="busy"} 3' in metrics
    finally:
        assert stop_server(srv) == 0
    again = start_server(tmp_path / "data", tmp_path / "two.log", env)
    try:
        lam = again.client()
        assert lam.get_function_concurrency(FunctionName="reserved")["ReservedConcurrentExecutions"] == 2
        lam.delete_function(FunctionName="reserved")
        assert lam.get_account_settings()["AccountLimit"]["UnreservedConcurrentExecutions"] == 3
    finally:
        assert stop_server(again) == 0


def test_memory_budget_evicts_idle_environments_instead_of_refusing(tmp_path):
    """With room for a few environments only, each new function evicts the least valuable idle one."""
    srv = start_server(tmp_path / "data", tmp_path / "budget.log",
                       {"LAMINA_MEMORY_BUDGET_MB": "80", "LAMINA_PREWARM": "0"})
    try:
        lam = srv.client()
        for i in range(8):
            name = create(lam, f"fn{i}")
            assert invoke(lam, name) == "ok"
        metrics = urllib.request.urlopen(srv.url + "/metrics").read().decode()
        live = sum(float(line.split()[-1]) for line in metrics.splitlines()
                   if line.startswith("lamina_environments{"))
        assert 1 <= live <= 5, metrics
        assert invoke(lam, "fn0") == "ok"  # an evicted function simply starts again
    finally:
        assert stop_server(srv) == 0


SLOW_INIT = "import time\ntime.sleep(1.0)\ndef handler(event, context):\n    time.sleep(2.0)\n    return 'ok'\n"


def test_a_function_scaling_out_does_not_hold_back_another_functions_first_environment(tmp_path):
    """One environment may start at a time (LAMINA_MAX_STARTING=1): while a function with slow inits has
    invocations waiting for four more environments, another function's first environment takes the next
    start that frees instead of waiting for all four (~1 s, not ~5)."""
    srv = start_server(tmp_path / "data", tmp_path / "fair.log", {"LAMINA_MAX_STARTING": "1", "LAMINA_PREWARM": "0"})
    try:
        lam = srv.client()
        lam.create_function(FunctionName="slow", Runtime="python3.11", Handler="app.handler", Role=ROLE,
                            Code={"ZipFile": make_zip({"app.py": SLOW_INIT})}, Timeout=30)
        quick = create(lam, "quick")
        with concurrent.futures.ThreadPoolExecutor(6) as pool:
            slow = [pool.submit(lam.invoke, FunctionName="slow", Payload=b"{}") for _ in range(5)]
            time.sleep(0.4)  # the first of the slow function's environments is in its init
            started = time.monotonic()
            assert invoke(lam, quick) == "ok"
            waited = time.monotonic() - started
            assert all(f.result()["StatusCode"] == 200 for f in slow)
        assert waited < 2.5, waited
    finally:
        assert stop_server(srv) == 0


def _standbys(srv) -> int:
    metrics = urllib.request.urlopen(srv.url + "/metrics").read().decode()
    return sum(int(float(line.split()[-1])) for line in metrics.splitlines()
               if line.startswith('lamina_environments{function="",state="standby"}'))


def _until(check, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.1)
    return False


def test_standbys_taken_in_a_burst_are_replaced_once_it_is_over(tmp_path):
    """While invocations wait for environments, a taken standby is not replaced at once (it would be taken
    straight away, at a higher cost than a start for the function); after the burst, they are all back."""
    srv = start_server(tmp_path / "data", tmp_path / "burst.log")
    try:
        lam = srv.client()
        lam.create_function(FunctionName="burst", Runtime="python3.11", Handler="app.handler", Role=ROLE,
                            Code={"ZipFile": make_zip({"app.py": SLOW_INIT})}, Timeout=30)
        assert _until(lambda: _standbys(srv) >= 2, 10), _standbys(srv)  # CreateFunction warmed the runtime
        ready = _standbys(srv)
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            calls = [pool.submit(lam.invoke, FunctionName="burst", Payload=b"{}") for _ in range(8)]
            time.sleep(0.5)  # every invocation waits (1-s inits): the standbys taken are not replaced yet
            slots = [slot for slot in (tmp_path / "data" / "work" / "slots").iterdir()  # one per standby started
                     if not slot.name.endswith("-opt")]  # (and its /opt slot)
            assert len(slots) == ready, (len(slots), ready)
            assert all(c.result()["StatusCode"] == 200 for c in calls)
        assert _until(lambda: _standbys(srv) >= ready, 5), (_standbys(srv), ready)
    finally:
        assert stop_server(srv) == 0



def test_the_dispatch_window_queues_quick_invocations_without_holding_back_slow_ones(tmp_path):
    """LAMINA_DISPATCH_WINDOW=1: a sub-millisecond function's warm invocations beyond the window wait their
    turn (none refused or lost); a function that sleeps still runs side by side (its invocations stop
    counting after 10 ms, and a slow pace keeps it out of the window)."""
    srv = start_server(tmp_path / "data", tmp_path / "window.log", {"LAMINA_DISPATCH_WINDOW": "1"})
    try:
        lam = srv.client()
        quick, slow = create(lam, "quick"), create(lam, "slow")

        def call(name: str, seconds: float = 0.0) -> str:
            out = lam.invoke(FunctionName=name, Payload=json.dumps({"s": seconds}))
            assert out["StatusCode"] == 200 and json.loads(out["Payload"].read()) == "ok"
            return out["ResponseMetadata"]["RequestId"]

        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda _: call(quick), range(8)))
            for _ in range(3):
                call(quick)  # warm and fast: the function's pace is learned from its fastest invocations
            assert len(set(pool.map(lambda _: call(quick), range(64)))) == 64
            list(pool.map(lambda _: call(slow, 1.0), range(6)))
            started = time.monotonic()
            list(pool.map(lambda _: call(slow, 1.0), range(6)))
            assert time.monotonic() - started < 2.5  # side by side, not one after the other
        metrics = urllib.request.urlopen(srv.url + "/metrics").read().decode()
        assert 'lamina_invocations_total{function="quick"} 75' in metrics
        assert "lamina_throttles_total" not in metrics or 'throttles_total{function="quick"}' not in metrics
    finally:
        assert stop_server(srv) == 0
