"""Java functions through boto3: handler code compiled against lamina's java-core jar, run by its client."""

from __future__ import annotations

import json
import shutil
import subprocess
import zipfile
from pathlib import Path

import pytest

from lamina.runtimes.registry import JAVA_CORE_JAR, RuntimeRegistry
from tests.conftest import make_zip

ROLE = "arn:aws:iam::000000000000:role/x"

SOURCES = {
    "example/Hello.java": r'''
package example;

import com.amazonaws.services.lambda.runtime.Context;
import com.amazonaws.services.lambda.runtime.RequestHandler;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

public class Hello implements RequestHandler<Map<String, Object>, Map<String, Object>> {
    private int count;

    @Override
    public Map<String, Object> handleRequest(Map<String, Object> event, Context context) {
        count++;
        context.getLogger().log("hello from java\n");
        Map<String, Object> out = new LinkedHashMap<>();
        out.put("event", event);
        out.put("request_id", context.getAwsRequestId());
        out.put("function_name", context.getFunctionName());
        out.put("version", context.getFunctionVersion());
        out.put("arn", context.getInvokedFunctionArn());
        out.put("memory", context.getMemoryLimitInMB());
        out.put("remaining", context.getRemainingTimeInMillis());
        out.put("log_group", context.getLogGroupName());
        out.put("count", count);
        out.put("user_var", System.getenv("USER_VAR"));
        return out;
    }
}
''',
    "example/Orders.java": r'''
package example;

import com.amazonaws.services.lambda.runtime.Context;
import java.util.List;

public class Orders {
    public static class Order {
        public String id;
        public List<Integer> items;
        private boolean rush;
        public void setRush(boolean rush) { this.rush = rush; }
        public boolean isRush() { return rush; }
    }

    public static class Total {
        public String id;
        public long total;
        public boolean rush;
    }

    public Total total(Order order, Context context) {
        Total t = new Total();
        t.id = order.id;
        for (int i : order.items) t.total += i;
        t.rush = order.isRush();
        return t;
    }

    public String shout(String text) {
        return text.toUpperCase();
    }

    public void fail(Object event) {
        throw new IllegalStateException("no stock");
    }
}
''',
    "example/Echo.java": r'''
package example;

import com.amazonaws.services.lambda.runtime.Context;
import com.amazonaws.services.lambda.runtime.RequestStreamHandler;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;

public class Echo implements RequestStreamHandler {
    @Override
    public void handleRequest(InputStream in, OutputStream out, Context context) throws IOException {
        out.write(in.readAllBytes());
    }
}
''',
}


@pytest.fixture(autouse=True)
def _delete_function_after(lam, fname):
    """Each test's function is deleted afterwards: the shared server's listings stay short."""
    yield
    try:
        lam.delete_function(FunctionName=fname)
    except lam.exceptions.ResourceNotFoundException:
        pass


def java_runtime() -> str:
    found = [r.id for r in RuntimeRegistry.discover().all() if r.family == "java"]
    if not found or shutil.which("javac") is None:
        pytest.skip("no JDK or lamina's java jars (make install builds them)")
    return found[0]


def compile_java(tmp: Path, sources: dict[str, str]) -> Path:
    src = tmp / "src"
    for name, text in sources.items():
        (src / name).parent.mkdir(parents=True, exist_ok=True)
        (src / name).write_text(text)
    classes = tmp / "classes"
    built = subprocess.run(["javac", "--release", "11", "-cp", str(JAVA_CORE_JAR), "-d", str(classes),
                            *[str(src / n) for n in sources]], capture_output=True, text=True, timeout=120)
    assert built.returncode == 0, built.stderr
    return classes


def as_jar(classes: Path) -> bytes:
    """The classes as a deployment package laid out like a JAR: classes at the root."""
    return make_zip({str(p.relative_to(classes)): p.read_bytes() for p in classes.rglob("*.class")})


@pytest.fixture(scope="module")
def java_zip(tmp_path_factory) -> bytes:
    java_runtime()
    return as_jar(compile_java(tmp_path_factory.mktemp("java"), SOURCES))


def _create(lam, name: str, handler: str, code: bytes, **kw) -> None:
    lam.create_function(FunctionName=name, Runtime=java_runtime(), Handler=handler, Role=ROLE, MemorySize=512,
                        Timeout=10, Code={"ZipFile": code}, **kw)


def test_java_request_handler_with_map_input(lam, fname, java_zip):
    """`package.Class` implementing RequestHandler gets a Map and a Context with Lambda's getters."""
    _create(lam, fname, "example.Hello", java_zip, Environment={"Variables": {"USER_VAR": "u"}})
    out = lam.invoke(FunctionName=fname, Payload=json.dumps({"a": [1, 2.5, "x", None, True]}))
    body = json.loads(out["Payload"].read())
    assert "FunctionError" not in out, body
    assert body["event"] == {"a": [1, 2.5, "x", None, True]}
    assert body["request_id"] == out["ResponseMetadata"]["RequestId"]
    assert body["function_name"] == fname and body["version"] == "$LATEST"
    assert body["arn"].endswith(f":function:{fname}") and body["memory"] == 512
    assert 0 < body["remaining"] <= 10000 and body["log_group"] == f"/aws/lambda/{fname}"
    assert body["user_var"] == "u" and body["count"] == 1
    assert json.loads(lam.invoke(FunctionName=fname, Payload=b"{}")["Payload"].read())["count"] == 2


def test_java_method_handler_maps_pojos(lam, fname, java_zip):
    """`package.Class::method` maps the event to a POJO and the POJO result back to JSON."""
    _create(lam, fname, "example.Orders::total", java_zip)
    out = lam.invoke(FunctionName=fname, Payload=json.dumps({"id": "o1", "items": [1, 2, 3], "rush": True}))
    assert json.loads(out["Payload"].read()) == {"id": "o1", "total": 6, "rush": True}


def test_java_string_input(lam, fname, java_zip):
    """A String parameter receives the event's JSON string."""
    _create(lam, fname, "example.Orders::shout", java_zip)
    out = lam.invoke(FunctionName=fname, Payload=json.dumps("hi"))
    assert json.loads(out["Payload"].read()) == "HI"


def test_java_stream_handler_from_zip_with_lib(lam, fname, tmp_path):
    """A zip with lib/*.jar: the RequestStreamHandler class comes from the jar and echoes raw bytes."""
    java_runtime()
    classes = compile_java(tmp_path, {"example/Echo.java": SOURCES["example/Echo.java"]})
    jar = tmp_path / "echo.jar"
    with zipfile.ZipFile(jar, "w") as archive:
        for p in classes.rglob("*.class"):
            archive.write(p, str(p.relative_to(classes)))
    _create(lam, fname, "example.Echo", make_zip({"lib/echo.jar": jar.read_bytes()}))
    out = lam.invoke(FunctionName=fname, Payload=b'{"raw": [1,2]}')
    assert out["Payload"].read() == b'{"raw": [1,2]}'


def test_java_error_shape(lam, fname, java_zip):
    """A thrown exception comes back as {errorMessage, errorType: class name, stackTrace}."""
    _create(lam, fname, "example.Orders::fail", java_zip)
    out = lam.invoke(FunctionName=fname, Payload=b"{}")
    body = json.loads(out["Payload"].read())
    assert out["FunctionError"] == "Unhandled"
    assert body["errorMessage"] == "no stock" and body["errorType"] == "java.lang.IllegalStateException"
    assert any("example.Orders.fail" in line for line in body["stackTrace"])


def test_java_class_not_found_is_an_init_error(lam, fname, java_zip):
    """An unknown class fails init with java.lang.ClassNotFoundException."""
    _create(lam, fname, "example.Nope::handle", java_zip)
    out = lam.invoke(FunctionName=fname, Payload=b"{}")
    body = json.loads(out["Payload"].read())
    assert out["FunctionError"] == "Unhandled"
    assert body["errorType"] == "java.lang.ClassNotFoundException" and "example.Nope" in body["errorMessage"]
