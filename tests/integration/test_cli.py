"""The lamina command line: doctor and runtimes."""

import hashlib
from pathlib import Path

from click.testing import CliRunner

from lamina.cli import main


def test_doctor_prints_each_protection_and_the_runtimes():
    result = CliRunner().invoke(main, ["doctor"])
    assert result.exit_code == 0, result.output
    assert "sandbox driver:" in result.output
    for name in ("unprivileged uid per environment", "private /tmp", "pid, ipc, uts namespaces",
                 "memory limit = MemorySize", "CPU = MemorySize / 1769 vCPUs", "pids limit"):
        assert name in result.output
    assert "python3.11" in result.output or "python3." in result.output


def test_doctor_leaves_no_cgroup_behind(tmp_path, monkeypatch):
    """The probe makes lamina's parent cgroup for the data directory to see what it may do; with no server
    on that directory, it removes it again (a host would otherwise keep one per directory probed)."""
    data = tmp_path / "data"
    monkeypatch.setenv("LAMINA_DATA_DIR", str(data))
    result = CliRunner().invoke(main, ["doctor"])
    assert result.exit_code == 0, result.output
    parent = "lamina-" + hashlib.sha256(str(data.resolve() / "work").encode()).hexdigest()[:12]
    root = Path("/sys/fs/cgroup")
    assert not (root / parent).exists() and not list(root.glob(f"*/{parent}"))


def test_doctor_with_the_process_driver_says_what_is_not_enforced():
    result = CliRunner().invoke(main, ["doctor", "--sandbox", "process"])
    assert result.exit_code == 0
    assert result.output.count("NOT enforced") >= 5


def test_runtimes_lists_provided():
    result = CliRunner().invoke(main, ["runtimes"])
    assert result.exit_code == 0
    assert "provided.al2023" in result.output
