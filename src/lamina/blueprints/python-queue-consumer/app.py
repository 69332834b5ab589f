"""Consumes an SQS batch and reports partial failures (FunctionResponseTypes: ReportBatchItemFailures)."""

import json


def handler(event, context):
    failures = []
    for record in event.get("Records", []):
        try:
            process(json.loads(record["body"]))
        except Exception as exc:  # one bad message must not fail the whole batch
            print(f"message {record['messageId']} failed: {exc}")
            failures.append({"itemIdentifier": record["messageId"]})
    return {"batchItemFailures": failures}


def process(message):
    if "order_id" not in message:
        raise ValueError("no order_id")
    print(f"processed order {message['order_id']}")
