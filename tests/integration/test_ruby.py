"""Ruby functions through boto3: lamina's own Ruby runtime client in a real environment."""

from __future__ import annotations

import base64
import json
import shutil

import pytest

from tests.conftest import make_zip

ROLE = "arn:aws:iam::000000000000:role/x"

pytestmark = pytest.mark.skipif(shutil.which("ruby") is None, reason="no ruby on this host")

RUBY_APP = r'''
require 'json'
COUNT = [0]
puts "init output"

def handler(event:, context:)
  COUNT[0] += 1
  puts "hello from ruby #{JSON.generate(event)}"
  {
    "event" => event, "request_id" => context.aws_request_id, "function_name" => context.function_name,
    "version" => context.function_version, "arn" => context.invoked_function_arn,
    "memory" => context.memory_limit_in_mb, "remaining" => context.get_remaining_time_in_millis,
    "deadline_ms" => context.deadline_ms, "log_group" => context.log_group_name,
    "log_stream" => context.log_stream_name, "count" => COUNT[0], "user_var" => ENV["USER_VAR"],
  }
end

def boom(event:, context:)
  raise ArgumentError, "boom"
end

module Shop
  class Cart
    def self.total(event:, context:)
      event["items"].sum
    end
  end
end
'''


@pytest.fixture(autouse=True)
def _delete_function_after(lam, fname):
    """Each test's function is deleted afterwards: the shared server's listings stay short."""
    yield
    try:
        lam.delete_function(FunctionName=fname)
    except lam.exceptions.ResourceNotFoundException:
        pass


def _ruby_runtime(lam) -> str:
    from lamina.runtimes.registry import RuntimeRegistry

    found = [r.id for r in RuntimeRegistry.discover().all() if r.family == "ruby"]
    if not found:
        pytest.skip("no ruby runtime registered")
    return found[0]


def _create(lam, name: str, handler: str, files: dict[str, str], **kw) -> None:
    lam.create_function(FunctionName=name, Runtime=_ruby_runtime(lam), Handler=handler, Role=ROLE,
                        Code={"ZipFile": make_zip(files)}, **kw)


def test_ruby_handler_gets_event_and_context(lam, fname):
    """`file.method` is called with event: and context:, and the context carries Lambda's fields."""
    _create(lam, fname, "app.handler", {"app.rb": RUBY_APP}, Environment={"Variables": {"USER_VAR": "u"}})
    out = lam.invoke(FunctionName=fname, Payload=json.dumps({"a": [1, 2]}), LogType="Tail")
    body = json.loads(out["Payload"].read())
    assert "FunctionError" not in out, body
    assert body["event"] == {"a": [1, 2]}
    assert body["request_id"] == out["ResponseMetadata"]["RequestId"]
    assert body["function_name"] == fname and body["version"] == "$LATEST"
    assert body["arn"].endswith(f":function:{fname}")
    assert body["memory"] == "128" and 0 < body["remaining"] <= 3000
    assert body["log_group"] == f"/aws/lambda/{fname}" and body["log_stream"]
    assert body["user_var"] == "u" and body["count"] == 1
    log = base64.b64decode(out["LogResult"]).decode()
    assert "hello from ruby" in log and "REPORT RequestId" in log
    again = json.loads(lam.invoke(FunctionName=fname, Payload=b"{}")["Payload"].read())
    assert again["count"] == 2  # warm reuse keeps module state


def test_ruby_error_shape(lam, fname):
    """A raised exception comes back as {errorMessage, errorType: Function<Class>, stackTrace}."""
    _create(lam, fname, "app.boom", {"app.rb": RUBY_APP})
    out = lam.invoke(FunctionName=fname, Payload=b"{}")
    body = json.loads(out["Payload"].read())
    assert out["FunctionError"] == "Unhandled"
    assert body["errorMessage"] == "boom" and body["errorType"] == "Function<ArgumentError>"
    assert any("app.rb" in line for line in body["stackTrace"])


def test_ruby_class_method_handler(lam, fname):
    """`file.Module::Class.method` calls a class method."""
    _create(lam, fname, "app.Shop::Cart.total", {"app.rb": RUBY_APP})
    out = lam.invoke(FunctionName=fname, Payload=json.dumps({"items": [1, 2, 3]}))
    assert json.loads(out["Payload"].read()) == 6


def test_ruby_init_error(lam, fname):
    """A missing file is an init error reported as Init<LoadError>."""
    _create(lam, fname, "missing.handler", {"app.rb": RUBY_APP})
    out = lam.invoke(FunctionName=fname, Payload=b"{}")
    body = json.loads(out["Payload"].read())
    assert out["FunctionError"] == "Unhandled"
    assert body["errorType"] == "Init<LoadError>", body
