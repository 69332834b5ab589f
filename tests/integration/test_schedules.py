"""Schedules: the EventBridge API subset through boto3's `events` client and the AWS CLI, and rules
firing their Lambda targets (on a server whose schedule clock runs fast)."""

from __future__ import annotations

import json
import os
import subprocess
import time

import pytest
from botocore.exceptions import ClientError

from tests.conftest import make_zip
from tests.integration.conftest import ACCESS_KEY, SECRET_KEY, start_server, stop_server
from tests.integration.test_aws_cli import aws_cli

ROLE = "arn:aws:iam::000000000000:role/x"
ARN = "arn:aws:lambda:us-east-1:000000000000:function:"
APP = make_zip({"app.py": "import json\ndef handler(event, context):\n    print('EVENT ' + json.dumps(event))\n"})


def error(excinfo) -> tuple[str, int, str]:
    response = excinfo.value.response
    return response["Error"]["Code"], response["ResponseMetadata"]["HTTPStatusCode"], response["Error"]["Message"]


@pytest.fixture
def events(server):
    return server.client("events")


def test_rule_lifecycle(events, fname):
    """PutRule, DescribeRule, ListRules, Disable/EnableRule, targets, and DeleteRule refusing while targets exist."""
    arn = events.put_rule(Name=fname, ScheduleExpression="rate(5 minutes)", Description="d")["RuleArn"]
    assert arn == f"arn:aws:events:us-east-1:000000000000:rule/{fname}"
    rule = events.describe_rule(Name=fname)
    assert (rule["Name"], rule["ScheduleExpression"], rule["State"], rule["Description"]) == \
        (fname, "rate(5 minutes)", "ENABLED", "d")
    assert [r["Name"] for r in events.list_rules(NamePrefix=fname)["Rules"]] == [fname]
    events.disable_rule(Name=fname)
    assert events.describe_rule(Name=fname)["State"] == "DISABLED"
    events.enable_rule(Name=fname)
    assert events.describe_rule(Name=fname)["State"] == "ENABLED"
    out = events.put_targets(Rule=fname, Targets=[{"Id": "t1", "Arn": ARN + "somefn", "Input": '{"a": 1}'},
                                                  {"Id": "t2", "Arn": "arn:aws:sqs:us-east-1:000000000000:q"}])
    assert out["FailedEntryCount"] == 1 and out["FailedEntries"][0]["TargetId"] == "t2"
    assert events.list_targets_by_rule(Rule=fname)["Targets"] == [{"Id": "t1", "Arn": ARN + "somefn", "Input": '{"a": 1}'}]
    with pytest.raises(ClientError) as exc:
        events.delete_rule(Name=fname)
    assert error(exc) == ("ValidationException", 400, "Rule can't be deleted since it has targets.")
    assert events.remove_targets(Rule=fname, Ids=["t1"])["FailedEntryCount"] == 0
    events.delete_rule(Name=fname)
    with pytest.raises(ClientError) as exc:
        events.describe_rule(Name=fname)
    assert error(exc)[:2] == ("ResourceNotFoundException", 400)


@pytest.mark.parametrize("expression", ["rate(1 minutes)", "rate(0 minutes)", "cron(0 12 * * *)",
                                        "cron(0 12 * * * *)", "cron(0 25 * * ? *)", "every minute"])
def test_invalid_schedule_expressions(events, fname, expression):
    """Invalid expressions are a ValidationException."""
    with pytest.raises(ClientError) as exc:
        events.put_rule(Name=fname, ScheduleExpression=expression)
    assert error(exc) == ("ValidationException", 400, "Parameter ScheduleExpression is not valid.")


def test_missing_rule_errors(events, fname):
    """Operations on a missing rule are ResourceNotFoundException (DeleteRule is idempotent)."""
    for call in (lambda: events.enable_rule(Name=fname), lambda: events.list_targets_by_rule(Rule=fname),
                 lambda: events.put_targets(Rule=fname, Targets=[{"Id": "a", "Arn": ARN + "x"}])):
        with pytest.raises(ClientError) as exc:
            call()
        assert error(exc)[:2] == ("ResourceNotFoundException", 400)
    events.delete_rule(Name=fname)


def test_events_need_an_events_signature(server):
    """A request signed for another service is refused; one signed for events is answered."""
    import urllib.error
    import urllib.request

    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    def send(service: str) -> int:
        request = AWSRequest(method="POST", url=server.url + "/", data=b"{}", headers={
            "X-Amz-Target": "AWSEvents.ListRules", "Content-Type": "application/x-amz-json-1.1"})
        SigV4Auth(Credentials(ACCESS_KEY, SECRET_KEY), service, "us-east-1").add_auth(request)
        try:
            with urllib.request.urlopen(urllib.request.Request(request.url, data=b"{}", method="POST",
                                                               headers=dict(request.headers)), timeout=30) as r:
                return r.status
        except urllib.error.HTTPError as exc:
            return exc.code

    assert send("lambda") == 403
    assert send("events") == 200


def test_aws_cli_put_rule_and_targets(server, tmp_path, fname):
    """`aws events put-rule --schedule-expression 'rate(5 minutes)'` and put-targets work unchanged."""
    env = dict(os.environ, AWS_ACCESS_KEY_ID=ACCESS_KEY, AWS_SECRET_ACCESS_KEY=SECRET_KEY,
               AWS_DEFAULT_REGION="us-east-1", AWS_PAGER="")

    def aws(*args):
        done = subprocess.run([*aws_cli(), "--endpoint-url", server.url, "events", *args], capture_output=True,
                              text=True, env=env, cwd=tmp_path, timeout=60)
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout) if done.stdout.strip() else {}

    assert aws("put-rule", "--name", fname, "--schedule-expression", "rate(5 minutes)")["RuleArn"].endswith(fname)
    out = aws("put-targets", "--rule", fname, "--targets", f"Id=1,Arn={ARN}{fname}")
    assert out["FailedEntryCount"] == 0
    assert aws("list-targets-by-rule", "--rule", fname)["Targets"] == [{"Id": "1", "Arn": ARN + fname}]
    assert aws("describe-rule", "--name", fname)["ScheduleExpression"] == "rate(5 minutes)"


@pytest.fixture(scope="module")
def fast_server(tmp_path_factory):
    """A server whose schedules run 120 times faster: rate(1 minute) fires every half second."""
    base = tmp_path_factory.mktemp("fast")
    srv = start_server(base / "data", base / "server.log", {"LAMINA_SCHEDULE_SPEEDUP": "120"})
    yield srv
    assert stop_server(srv) == 0, srv.output()


def fired(server, name: str) -> list[dict]:
    logs = server.client("logs")
    try:
        found = logs.filter_log_events(logGroupName=f"/aws/lambda/{name}", filterPattern="EVENT")["events"]
    except ClientError:
        return []
    return [json.loads(e["message"].split("EVENT ", 1)[1]) for e in found if "EVENT " in e["message"]]


def test_a_rate_rule_invokes_its_target_with_the_scheduled_event(fast_server, fname):
    """An enabled rate rule invokes its Lambda target asynchronously with the scheduled-event shape;
    a disabled one does not; Input replaces the event."""
    lam, events = fast_server.client(), fast_server.client("events")
    lam.create_function(FunctionName=fname, Runtime="python3.11", Handler="app.handler", Role=ROLE,
                        Code={"ZipFile": APP})
    events.put_rule(Name=fname, ScheduleExpression="rate(1 minute)")
    events.put_targets(Rule=fname, Targets=[{"Id": "fn", "Arn": ARN + fname}])
    deadline = time.monotonic() + 30
    while len(fired(fast_server, fname)) < 2 and time.monotonic() < deadline:
        time.sleep(0.5)
    got = fired(fast_server, fname)
    assert len(got) >= 2
    event = got[0]
    assert event["detail-type"] == "Scheduled Event" and event["source"] == "aws.events"
    assert event["version"] == "0" and event["detail"] == {} and event["account"] == "000000000000"
    assert event["region"] == "us-east-1"
    assert event["resources"] == [f"arn:aws:events:us-east-1:000000000000:rule/{fname}"]
    assert event["time"].endswith("Z") and len(event["time"]) == 20

    events.disable_rule(Name=fname)
    time.sleep(2.5)  # let the flush of the last fires settle
    count = len(fired(fast_server, fname))
    time.sleep(2.5)
    assert len(fired(fast_server, fname)) == count

    events.put_targets(Rule=fname, Targets=[{"Id": "fn", "Arn": ARN + fname, "Input": '{"custom": true}'}])
    events.enable_rule(Name=fname)
    deadline = time.monotonic() + 30
    while not any(e.get("custom") for e in fired(fast_server, fname)) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert any(e == {"custom": True} for e in fired(fast_server, fname))
    events.disable_rule(Name=fname)


@pytest.mark.parametrize("expression", ["cron(15 10 * * ? *)", "cron(0/5 8-17 ? * MON-FRI *)", "cron(0 9 ? * 2#1 *)",
                                        "cron(0 0 L * ? *)", "cron(0 0 15W * ? 2030-2040)", "rate(1 day)"])
def test_valid_schedule_expressions(events, fname, expression):
    """The documented expression forms are accepted and described back unchanged."""
    events.put_rule(Name=fname, ScheduleExpression=expression, State="DISABLED")
    assert events.describe_rule(Name=fname)["ScheduleExpression"] == expression
    events.delete_rule(Name=fname)
