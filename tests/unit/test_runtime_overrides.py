"""LAMINA_RUNTIMES: interpreters named by hand beside the ones found on the host."""

import sys
from pathlib import Path

import pytest

from lamina.runtimes.registry import RuntimeRegistry, parse_overrides


def test_parse_overrides():
    assert parse_overrides("nodejs22.x=/opt/n/node, python3.12=/x/py") == {"nodejs22.x": "/opt/n/node",
                                                                           "python3.12": "/x/py"}
    assert parse_overrides("") == {}
    with pytest.raises(ValueError):
        parse_overrides("nodejs22.x")


def test_a_python_override_is_used_and_bound_from_its_prefix():
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    registry = RuntimeRegistry.discover({f"python{version}": sys.executable})
    runtime = registry.get(f"python{version}")
    assert runtime is not None and runtime.interpreter == Path(sys.executable).resolve()


def test_overrides_that_do_not_fit_are_refused():
    with pytest.raises(ValueError, match="only pythonX.Y and nodejsNN.x"):
        RuntimeRegistry.discover({"ruby3.3": sys.executable})
    with pytest.raises(ValueError, match="not an executable"):
        RuntimeRegistry.discover({"python3.12": "/nonexistent/python"})
