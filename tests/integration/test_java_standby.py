"""Java functions start from standby JVMs: the JVM and the client's HTTP stack are started before any
function needs them, then take the function's variables into System.getenv() (and the environment of the
processes the function starts). The JVM's heap is sized at start (-Xmx from MemorySize), so a standby
serves only functions of its size; CreateFunction and a change of MemorySize start them at that size."""

from __future__ import annotations

import json
import time

import pytest

from lamina.runtimes.registry import JAVA_ENV_LIB
from tests.integration.conftest import serving
from tests.integration.test_java import as_jar, compile_java, java_runtime

ROLE = "arn:aws:iam::000000000000:role/x"

SOURCE = r'''
package example;

import java.io.ByteArrayOutputStream;
import java.lang.management.ManagementFactory;
import java.util.LinkedHashMap;
import java.util.Map;

public class Env {
    private static final long AGE_AT_LOAD_MS = System.currentTimeMillis()
            - ManagementFactory.getRuntimeMXBean().getStartTime();

    public Map<String, Object> handleRequest(Map<String, Object> event) throws Exception {
        Map<String, Object> out = new LinkedHashMap<>();
        out.put("var", System.getenv("USER_VAR"));
        out.put("inMap", System.getenv().get("USER_VAR"));
        out.put("standbyFlag", System.getenv("LAMINA_STANDBY"));
        out.put("function", System.getenv("AWS_LAMBDA_FUNCTION_NAME"));
        out.put("handler", System.getenv("_HANDLER"));
        Process child = new ProcessBuilder("/bin/sh", "-c", "printf %s \"$USER_VAR\"").start();
        ByteArrayOutputStream seen = new ByteArrayOutputStream();
        child.getInputStream().transferTo(seen);
        child.waitFor();
        out.put("child", seen.toString("UTF-8"));
        out.put("maxHeapMb", Runtime.getRuntime().maxMemory() / 1048576);
        out.put("ageAtLoadMs", AGE_AT_LOAD_MS);
        return out;
    }
}
'''


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with serving(tmp_path_factory, "java-standby", {"LAMINA_PREWARM": "2"}) as srv:
        yield srv


@pytest.fixture(scope="module")
def code(tmp_path_factory) -> bytes:
    java_runtime()
    return as_jar(compile_java(tmp_path_factory.mktemp("java-env"), {"example/Env.java": SOURCE}))


def _invoke(lam, name: str) -> dict:
    out = lam.invoke(FunctionName=name, Payload=b"{}", LogType="Tail")
    body = json.loads(out["Payload"].read())
    assert "FunctionError" not in out, body
    return body


def test_standby_jvm_takes_the_functions_environment(server, code):
    lam = server.client()
    isolated = "sandbox: bwrap" in server.output()
    lam.create_function(FunctionName="java-env", Runtime=java_runtime(), Handler="example.Env::handleRequest",
                        Role=ROLE, MemorySize=384, Timeout=20, Code={"ZipFile": code},
                        Environment={"Variables": {"USER_VAR": "first"}})
    time.sleep(3.0)  # CreateFunction started standby JVMs of 384 MB
    first = _invoke(lam, "java-env")
    assert first["var"] == first["inMap"] == first["child"] == "first", first
    assert first["standbyFlag"] is None and first["function"] == "java-env", first
    assert first["handler"] == "example.Env::handleRequest", first
    assert 290 <= first["maxHeapMb"] <= 330, first  # -Xmx 85% of 384 MB
    if not isolated or not JAVA_ENV_LIB.is_file():
        return  # standby sandboxes need the isolated sandbox (root, bubblewrap, cgroups) and, for Java, the lib
    assert first["ageAtLoadMs"] > 1000, first  # the JVM was up before the function was assigned to it

    lam.update_function_configuration(FunctionName="java-env", MemorySize=768,
                                      Environment={"Variables": {"USER_VAR": "second"}})
    time.sleep(3.0)  # the 384 MB standbys are stopped, 768 MB ones started
    second = _invoke(lam, "java-env")
    assert second["var"] == second["inMap"] == second["child"] == "second", second
    assert 600 <= second["maxHeapMb"] <= 660, second  # -Xmx 85% of 768 MB
    assert second["ageAtLoadMs"] > 1000, second
