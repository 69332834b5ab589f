"""Settings precedence: defaults < LAMINA_* environment < flags."""

from pathlib import Path

import pytest

from lamina.config import load


def test_defaults():
    c = load({})
    assert (c.host, c.port, c.data_dir, c.account_id) == ("127.0.0.1", 9001, Path(".lamina"), "000000000000")


def test_environment_then_flags():
    env = {"LAMINA_PORT": "9100", "LAMINA_HOST": "0.0.0.0", "LAMINA_DATA_DIR": "/tmp/x"}
    c = load(env)
    assert (c.port, c.host, c.data_dir) == (9100, "0.0.0.0", Path("/tmp/x"))
    assert load(env, port=9200, host=None).port == 9200
    assert c.base_url == "http://127.0.0.1:9100"


def test_bad_values_are_reported_with_their_name():
    with pytest.raises(ValueError, match="LAMINA_PORT"):
        load({"LAMINA_PORT": "many"})
    with pytest.raises(ValueError, match="sandbox"):
        load({"LAMINA_SANDBOX": "docker"})
    with pytest.raises(ValueError, match="reserve_loop_cpu must be auto, on or off"):
        load({"LAMINA_RESERVE_LOOP_CPU": "yes"})
    assert load({"LAMINA_RESERVE_LOOP_CPU": "on"}).reserve_loop_cpu == "on"
