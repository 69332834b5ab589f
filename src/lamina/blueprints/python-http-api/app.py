"""A Function URL handler (payload format 2.0): a tiny JSON API with two routes."""

import json


def handler(event, context):
    method = event["requestContext"]["http"]["method"]
    path = event.get("rawPath", "/")
    if method == "GET" and path == "/hello":
        name = (event.get("queryStringParameters") or {}).get("name", "world")
        return _json(200, {"message": f"hello, {name}"})
    if method == "POST" and path == "/echo":
        return _json(200, {"you_sent": json.loads(event.get("body") or "null")})
    return _json(404, {"error": f"no route for {method} {path}"})


def _json(status, body):
    return {"statusCode": status, "headers": {"content-type": "application/json"}, "body": json.dumps(body)}
