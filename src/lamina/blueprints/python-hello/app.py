"""A starter Python function: greets whoever the event names."""

import logging

logger = logging.getLogger()
logger.setLevel(logging.INFO)


def handler(event, context):
    name = event.get("name", "world")
    logger.info("greeting %s", name)
    return {"message": f"hello, {name}", "request_id": context.aws_request_id}
