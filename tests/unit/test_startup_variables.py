"""Which of a function's variables its runtime's interpreter reads only as it starts."""

from lamina.runtimes.registry import Runtime


def names(family: str, env: dict[str, str]) -> list[str]:
    return Runtime(f"{family}-x", family).startup_variables(env)


def test_each_family_names_its_own():
    env = {"PYTHONPATH": "v", "PYTHONWARNINGS": "ignore", "NODE_OPTIONS": "--x", "RUBYOPT": "-w",
           "RUBY_GC_HEAP_INIT_SLOTS": "1", "GEM_PATH": "g", "JAVA_TOOL_OPTIONS": "-Xss1m", "PATHX": "p",
           "MY_PYTHON": "not a prefix", "AWS_LAMBDA_FUNCTION_NAME": "f"}
    assert names("python", env) == ["PYTHONPATH", "PYTHONWARNINGS"]
    assert names("nodejs", env) == ["NODE_OPTIONS"]
    assert names("ruby", env) == ["GEM_PATH", "RUBYOPT", "RUBY_GC_HEAP_INIT_SLOTS"]
    assert names("java", env) == ["JAVA_TOOL_OPTIONS"]
    assert names("provided", env) == []


def test_a_plain_function_has_none():
    assert names("python", {"AWS_LAMBDA_FUNCTION_NAME": "f", "_HANDLER": "app.handler", "OTHER": "x"}) == []
