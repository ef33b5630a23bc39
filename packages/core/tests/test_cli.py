"""The `jobrelay` command line, run as a real subprocess on the mock executor."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

CONFIG = """
default = "small"
fallback = ["spare"]

[executors.small]
type = "mock"
max_concurrent = 4

[executors.big]
type = "mock"

[executors.spare]
type = "mock"
enabled = false

[[rules]]
condition = "memory_mb > 8192"
executor = "big"
reason = "large memory"
priority = 10

[[rules]]
condition = "name.startswith('test-')"
executor = "small"
reason = "test job"
priority = 20
"""


def jobrelay(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "jobrelay", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "router.toml"
    path.write_text(CONFIG)
    return path


def test_run_passes_exit_code_and_splits_streams() -> None:
    proc = jobrelay(
        "run",
        "--executor",
        "mock",
        "--label",
        "mock.stdout=Warning: x",
        "--label",
        "mock.stderr=ok",
        "--label",
        "mock.exit-code=3",
        "busybox",
        "--",
        "sh",
        "-c",
        "exit 3",
    )
    assert proc.returncode == 3, proc.stderr
    assert proc.stdout == "Warning: x\n"
    assert proc.stderr.startswith("ok\n")
    assert "failed (exit 3)" in proc.stderr


def test_run_success_on_default_executor() -> None:
    proc = jobrelay("run", "--label", "mock.stdout=hello from jobrelay", "busybox", "--", "true")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "hello from jobrelay\n"
    assert "succeeded (exit 0) on mock" in proc.stderr


def test_run_with_config_routes(config: Path) -> None:
    proc = jobrelay("run", "--config", str(config), "--memory", "16Gi", "busybox")
    assert proc.returncode == 0, proc.stderr
    assert "on big [" in proc.stderr


def test_route_explain(config: Path) -> None:
    proc = jobrelay("route", "--config", str(config), "--memory", "16Gi", "--explain", "busybox")
    assert proc.returncode == 0, proc.stderr
    first, *rest = proc.stdout.splitlines()
    assert first == "big\tlarge memory"
    assert "  chosen: big (large memory)" in rest
    assert any("memory_mb > 8192" in line for line in rest)


def test_route_default_and_skips(config: Path) -> None:
    proc = jobrelay("route", "--config", str(config), "--explain", "busybox")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[0] == "small\tdefault"


def test_executors_lists_mock_with_distribution(config: Path) -> None:
    proc = jobrelay("executors", "--config", str(config))
    assert proc.returncode == 0, proc.stderr
    rows = [line.split() for line in proc.stdout.splitlines()]
    assert rows[0] == ["NAME", "DISTRIBUTION", "VERSION", "TARGET"]
    assert ["mock", "jobrelay-mock", "0.1.0", "jobrelay_mock:MockExecutor"] in rows
    available = {row[0]: row[1] for row in rows if row and row[0] in {"small", "big", "spare"}}
    assert available == {"small": "yes", "big": "yes", "spare": "no"}


def test_batch_runs_jobs_and_reports(tmp_path: Path) -> None:
    batch = tmp_path / "jobs.toml"
    batch.write_text(
        """
[[jobs]]
image = "busybox"
name = "ok-1"
labels = { "mock.stdout" = "one", "mock.duration" = "2" }

[[jobs]]
image = "busybox"
name = "bad"
job_id = "bad-job"
labels = { "mock.exit-code" = "4" }

[[jobs]]
image = "busybox"
command = "echo three"
resources = { memory = "1Gi" }
"""
    )
    proc = jobrelay("batch", str(batch), "--executor", "mock")
    assert proc.returncode == 1, proc.stderr
    assert "2 succeeded, 1 failed" in proc.stdout
    bad_row = next(line for line in proc.stdout.splitlines() if line.startswith("bad-job"))
    assert bad_row.split()[1:4] == ["mock", "failed", "4"]
    assert "queued" in proc.stderr
    assert "running" in proc.stderr


def test_batch_all_succeed_exits_zero(tmp_path: Path) -> None:
    batch = tmp_path / "jobs.toml"
    batch.write_text('[[jobs]]\nimage = "busybox"\n\n[[jobs]]\nimage = "alpine:3"\n')
    proc = jobrelay("batch", str(batch))
    assert proc.returncode == 0, proc.stderr
    assert "2 succeeded, 0 failed" in proc.stdout


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["run", "--executor", "nope", "busybox"], "no executor named 'nope'"),
        (["run", "--env", "NOEQUALS", "busybox"], "expected KEY=VALUE"),
        (["run", "--memory", "lots", "busybox"], "resources.memory"),
        (["run", "--config", "/does/not/exist.toml", "busybox"], "not found"),
        (["run", "Not An Image"], "image"),
        (["route", "--config", "/does/not/exist.toml", "busybox"], "not found"),
        (["batch", "/does/not/exist.toml"], "not found"),
        (["frobnicate"], "invalid choice"),
    ],
)
def test_bad_input_exits_2_with_one_line(args: list[str], needle: str) -> None:
    proc = jobrelay(*args)
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert needle in lines[0]
    assert "Traceback" not in proc.stderr


def test_rule_that_does_not_compile_exits_2(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(
        'default = "m"\n[executors.m]\ntype = "mock"\n'
        '[[rules]]\ncondition = "__import__(\'os\')"\nexecutor = "m"\n'
    )
    proc = jobrelay("route", "--config", str(path), "busybox")
    assert proc.returncode == 2, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert "Traceback" not in proc.stderr


def test_secret_never_printed() -> None:
    canary = "s3cr3t-canary-cli-7781"
    proc = jobrelay("run", "--secret", f"TOKEN={canary}", "--label", "mock.exit-code=2", "busybox")
    assert proc.returncode == 2
    assert canary not in proc.stdout + proc.stderr


def test_run_prints_harvested_output_when_the_stream_gives_nothing(tmp_path: Path) -> None:
    plugin = tmp_path / "silent_stream.py"
    plugin.write_text(
        "from jobrelay_mock import MockExecutor\n\n"
        "class SilentStream(MockExecutor):\n"
        "    def stream_logs(self, execution):\n"
        "        return iter(())\n"
    )
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); del sys.argv[1]\n"
        "import jobrelay\n"
        "jobrelay.register_executor('silent', 'silent_stream:SilentStream')\n"
        "from jobrelay._cli import main\n"
        "raise SystemExit(main())\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path), "run", "--executor", "silent",
         "--label", "mock.stdout=kept", "--label", "mock.stderr=also kept", "busybox"],
        capture_output=True, text=True, check=False, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "kept\n"
    assert proc.stderr.startswith("also kept\n")
