"""Runs on a schedule (an EventBridge rule with rate(...) or cron(...)): a nightly-report style job."""

from datetime import datetime


def handler(event, context):
    fired_at = datetime.fromisoformat(event.get("time", "1970-01-01T00:00:00Z").replace("Z", "+00:00"))
    rule = (event.get("resources") or ["manual run"])[0]
    print(f"job started for {rule} at {fired_at.isoformat()}")
    return {"rule": rule, "fired_at": fired_at.isoformat(), "status": "done"}
