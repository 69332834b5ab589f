"""Which runtimes can be started ahead of need (standby), and the Java command line that goes with it."""

from pathlib import Path

from lamina.runtimes.registry import JAVA_CORE_JAR, JAVA_ENV_LIB, JAVA_RUNTIME_JAR, STANDBY_EXEC, Runtime
from lamina.sandbox.base import Layout, SandboxSpec, command_for

JARS = ((JAVA_RUNTIME_JAR, JAVA_RUNTIME_JAR.name), (JAVA_CORE_JAR, JAVA_CORE_JAR.name))
LAYOUT = Layout(task_root="/var/task", runtime_dir="/var/runtime", lang_dir="/var/lang", opt_dir="/opt",
                tmp_dir="/tmp")


def test_lambdas_own_clients_can_wait_for_a_function():
    for family in ("python", "nodejs", "ruby"):
        assert Runtime(f"{family}-x", family, Path("/usr/bin/x")).can_standby
    assert not Runtime("provided.al2023", "provided").can_standby  # without lamina-standby


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


def test_a_custom_runtimes_standby_runs_lamina_standby_then_the_bootstrap(tmp_path):
    runtime = Runtime("provided.al2023", "provided", runtime_files=((STANDBY_EXEC, STANDBY_EXEC.name),))
    assert runtime.can_standby

    def spec(env: dict[str, str]) -> SandboxSpec:
        return SandboxSpec(env_id="e", uid=1, code_dir=tmp_path, runtime=runtime, env=env, tmp_mb=512,
                           memory_mb=128)

    assert command_for(runtime, LAYOUT, spec({"LAMINA_STANDBY": "1"})) == ["/var/runtime/lamina-standby"]
    assert command_for(runtime, LAYOUT, spec({})) == ["/var/task/bootstrap"]
