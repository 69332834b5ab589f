"""Which runtimes can be started ahead of need (standby), and the Java command line that goes with it."""

from pathlib import Path

from lamina.runtimes.registry import JAVA_CORE_JAR, JAVA_ENV_LIB, JAVA_RUNTIME_JAR, Runtime
from lamina.sandbox.base import Layout, command_for

JARS = ((JAVA_RUNTIME_JAR, JAVA_RUNTIME_JAR.name), (JAVA_CORE_JAR, JAVA_CORE_JAR.name))
LAYOUT = Layout(task_root="/var/task", runtime_dir="/var/runtime", lang_dir="/var/lang", opt_dir="/opt",
                tmp_dir="/tmp")


def test_lambdas_own_clients_can_wait_for_a_function():
    for family in ("python", "nodejs", "ruby"):
        assert Runtime(f"{family}-x", family, Path("/usr/bin/x")).can_standby
    assert not Runtime("provided.al2023", "provided").can_standby  # the bootstrap is the function's own


def test_a_jvm_waits_only_with_the_library_that_sets_its_environment():
    java = Path("/usr/lib/jvm/j/bin/java")
    assert not Runtime("java17", "java", java, None, JARS).can_standby
    assert Runtime("java17", "java", java, None, JARS + ((JAVA_ENV_LIB, JAVA_ENV_LIB.name),)).can_standby


def test_the_library_is_beside_the_jars_not_on_the_class_path():
    runtime = Runtime("java17", "java", Path("/usr/lib/jvm/j/bin/java"), None,
                      JARS + ((JAVA_ENV_LIB, JAVA_ENV_LIB.name),))
    argv = command_for(runtime, LAYOUT)
    classpath = argv[argv.index("-cp") + 1]
    assert classpath == f"/var/runtime/{JAVA_RUNTIME_JAR.name}:/var/runtime/{JAVA_CORE_JAR.name}"
    assert argv[-1] == "lamina.runtime.Bootstrap"
