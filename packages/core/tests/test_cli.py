"""The `jobrelay` command line, run as a real subprocess on the mock executor."""

from __future__ import annotations

import os
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

MOCK_NOTE = "using the mock executor (nothing really runs)"


def jobrelay(
    *args: str,
    timeout: float = 60,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    stdin: int | None = subprocess.DEVNULL,
    input_text: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run `python -m jobrelay ARGS` to its end; stdin is /dev/null unless given."""
    environment = {key: value for key, value in os.environ.items() if key != "JOBRELAY_CONFIG"}
    environment.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "jobrelay", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        cwd=cwd,
        env=environment,
        stdin=None if input_text is not None else stdin,
        input=input_text,
    )


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "router.toml"
    path.write_text(CONFIG)
    return path


def test_version() -> None:
    proc = jobrelay("--version")
    assert proc.returncode == 0
    assert proc.stdout.strip() == "jobrelay 0.1.0"


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
    assert "job 'busybox' failed (exit 3) on mock [" in proc.stderr


def test_run_without_executor_says_it_uses_the_mock(tmp_path: Path) -> None:
    proc = jobrelay(
        "run", "--label", "mock.stdout=hello from jobrelay", "busybox", "--", "true", cwd=tmp_path
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "hello from jobrelay\n"
    first, second = proc.stderr.splitlines()
    assert MOCK_NOTE in first
    assert "succeeded (exit 0) on mock" in second


def test_quiet_run_prints_only_the_jobs_output() -> None:
    proc = jobrelay("run", "--quiet", "--executor", "mock", "--label", "mock.stdout=out", "busybox")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "out\n"
    assert proc.stderr == ""


def test_run_uses_jobrelay_config_from_the_environment(config: Path, tmp_path: Path) -> None:
    proc = jobrelay(
        "run", "--memory", "16Gi", "busybox", cwd=tmp_path, env={"JOBRELAY_CONFIG": str(config)}
    )
    assert proc.returncode == 0, proc.stderr
    assert "on big [" in proc.stderr
    assert MOCK_NOTE not in proc.stderr


def test_run_uses_jobrelay_toml_in_the_working_directory(tmp_path: Path) -> None:
    (tmp_path / "jobrelay.toml").write_text(CONFIG)
    proc = jobrelay("run", "--name", "test-x", "busybox", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "on small [" in proc.stderr
    assert MOCK_NOTE not in proc.stderr


def test_run_with_config_routes(config: Path) -> None:
    proc = jobrelay("run", "--config", str(config), "--memory", "16Gi", "busybox")
    assert proc.returncode == 0, proc.stderr
    assert "on big [" in proc.stderr


def test_docker_memory_spelling_is_binary(config: Path) -> None:
    # 9g is 9216 MiB (> 8192): docker's units are binary, so the big executor takes it.
    proc = jobrelay("route", "--config", str(config), "--memory", "9g", "busybox")
    assert proc.stdout.splitlines()[0] == "big\tlarge memory", proc.stderr
    proc = jobrelay("route", "--config", str(config), "--memory", "8192m", "busybox")
    assert proc.stdout.splitlines()[0] == "small\tdefault", proc.stderr


def test_launch_failure_exits_125_with_one_line_naming_the_job() -> None:
    proc = jobrelay(
        "run", "--executor", "mock", "--name", "etl-nightly", "--label", "mock.fail-launch=boom",
        "busybox",
    )  # fmt: skip
    assert proc.returncode == 125, proc.stderr
    assert proc.stderr.splitlines() == [
        "jobrelay: job 'etl-nightly' could not be launched: mock: boom"
    ]


def test_lost_job_exits_1() -> None:
    proc = jobrelay("run", "--executor", "mock", "--label", "mock.lost=true", "busybox")
    assert proc.returncode == 1, proc.stderr
    assert "lost" in proc.stderr


def test_stdin_that_cannot_be_passed_is_said_once() -> None:
    proc = jobrelay(
        "run", "--executor", "mock", "--label", "mock.stdout=x", "busybox", "cat", input_text="hi\n"
    )
    assert proc.returncode == 0, proc.stderr
    warnings = [line for line in proc.stderr.splitlines() if "stdin" in line]
    expected = (
        "jobrelay: warning: stdin is not passed to job 'busybox': "
        "the mock executor cannot attach input to a job"
    )
    assert warnings == [expected]


def test_no_stdin_warning_for_dev_null() -> None:
    proc = jobrelay("run", "--executor", "mock", "busybox", "cat")
    assert proc.returncode == 0, proc.stderr
    assert "stdin" not in proc.stderr


def test_route_explain(config: Path) -> None:
    proc = jobrelay(
        "route", "--config", str(config), "--memory", "16Gi", "--timeout", "90m", "--explain",
        "busybox",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    first, rule, header, *rows = proc.stdout.splitlines()
    assert first == "big\tlarge memory"
    assert rule == "rule: memory_mb > 8192"
    assert header.split() == ["CANDIDATE", "AVAILABLE", "PER", "HOUR", "FOR", "1:30:00", "DETAIL"]
    cells = {row.split()[0]: row.split() for row in rows}
    assert cells["big"][1] == "chosen"
    assert cells["big"][-2:] == ["large", "memory"]


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


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["run", "--executor", "nope", "busybox"], "no executor named 'nope'"),
        (["run", "--env", "NOEQUALS", "busybox"], "expected KEY=VALUE"),
        (["run", "--memory", "lots", "busybox"], "resources.memory"),
        (["run", "--timeout", "soon", "busybox"], "expected a duration"),
        (["run", "--timeout=-5s", "busybox"], "expected a duration"),
        (["run", "--pull", "sometimes", "busybox"], "expected always, missing or never"),
        (["run", "--stop-grace", "x", "busybox"], "expected a duration"),
        (["run", "--executor", "mock", "-v", "/tmp:/data", "busybox"], "--volume: the 'mock'"),
        (["run", "--executor", "mock", "--user", "1000", "busybox"], "--user: the 'mock'"),
        (["run", "--executor", "mock", "--network", "none", "busybox"], "--network: the 'mock'"),
        (["run", "--executor", "mock", "--pull", "never", "busybox"], "--pull: the 'mock'"),
        (["run", "--config", "/does/not/exist.toml", "busybox"], "not found"),
        (["run", "Not An Image"], "image"),
        (["route", "--config", "/does/not/exist.toml", "busybox"], "not found"),
        (["batch", "/does/not/exist.toml"], "not found"),
        (["ps", "--config", "/does/not/exist.toml"], "not found"),
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


def test_unsupported_flag_in_a_config_names_the_executor(config: Path) -> None:
    proc = jobrelay("run", "--config", str(config), "--user", "1000", "busybox")
    assert proc.returncode == 2
    assert "--user: the 'mock' executor (configured as 'small') has no 'user' setting" in (
        proc.stderr
    )


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


@pytest.mark.parametrize(
    "secret_args",
    [
        ["--secret", "TOKEN=s3cr3t-canary-cli-7781"],
        ["--secret", "s3cr3t-canary-cli-7781"],
        ["--secret=s3cr3t-canary-cli-7781"],
        ["--secret", "=s3cr3t-canary-cli-7781"],
    ],
)
def test_secret_never_printed(secret_args: list[str]) -> None:
    canary = "s3cr3t-canary-cli-7781"
    proc = jobrelay(
        "run", "--executor", "mock", *secret_args, "--label", "mock.exit-code=2",
        "--label", f"mock.stderr=leaked {canary}", "busybox",
    )  # fmt: skip
    assert proc.returncode == 2
    assert canary not in proc.stdout + proc.stderr


def test_secret_in_a_launch_error_is_masked() -> None:
    canary = "s3cr3t-canary-cli-9924"
    proc = jobrelay(
        "run", "--executor", "mock", "--secret", f"TOKEN={canary}",
        "--label", f"mock.fail-launch=daemon said TOKEN={canary}", "busybox",
    )  # fmt: skip
    assert proc.returncode == 125
    assert canary not in proc.stderr
    assert "TOKEN=***" in proc.stderr


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
        capture_output=True, text=True, check=False, timeout=60, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "kept\n"
    assert proc.stderr.startswith("also kept\n")


PRICED = """
default = "cheap"

[executors.cheap]
type = "mock"
cost_per_hour = "0.40"
currency = "EUR"

[executors.dear]
type = "mock"
cost_per_hour = "2.50"
currency = "EUR"

[executors.off]
type = "mock"
enabled = false
cost_per_hour = "0.10"
currency = "EUR"

[[rules]]
condition = "memory_mb > 1024"
executor = ["dear", "cheap", "off"]
prefer = "cheapest"
reason = "big job"
"""


def test_route_explain_prices_every_candidate(tmp_path: Path) -> None:
    path = tmp_path / "priced.toml"
    path.write_text(PRICED)
    proc = jobrelay(
        "route", "--config", str(path), "--memory", "2Gi", "--timeout", "90m", "--explain", "busybox"
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == "cheap\tbig job"
    rows = {line.split()[0]: line.split()[1:] for line in lines[3:]}
    assert rows["cheap"] == ["chosen", "0.4000", "EUR", "0.6000", "EUR", "big", "job"]
    assert rows["dear"][:5] == ["yes", "2.5000", "EUR", "3.7500", "EUR"]
    assert rows["off"] == ["no", "0.1000", "EUR", "0.1500", "EUR", "disabled"]


def test_batch_summary_shows_spend(tmp_path: Path) -> None:
    config = tmp_path / "priced.toml"
    config.write_text(PRICED)
    batch = tmp_path / "jobs.toml"
    batch.write_text('[[jobs]]\nimage = "busybox"\nlabels = { "mock.duration" = "1" }\n')
    proc = jobrelay("batch", str(batch), "--config", str(config), "--quiet")
    assert proc.returncode == 0, proc.stderr
    # one second at 0.40 EUR an hour
    assert proc.stdout.splitlines()[-1].endswith("; spent 0.0001 EUR")


def test_library_logs_only_with_debug() -> None:
    args = ("run", "--executor", "mock", "--label", "mock.fail-launch=boom", "busybox")
    quiet = jobrelay(*args)
    assert quiet.stderr.splitlines() == [
        "jobrelay: job 'busybox' could not be launched: mock: boom"
    ]
    debug = jobrelay("--debug", *args)
    assert debug.returncode == 125
    assert any(line.startswith("jobrelay: jobrelay.router: ") for line in debug.stderr.splitlines())


def test_an_untranslated_backend_error_is_still_one_line(tmp_path: Path) -> None:
    (tmp_path / "broken_lister.py").write_text(
        "from jobrelay_mock import MockExecutor\n\n"
        "class BrokenLister(MockExecutor):\n"
        "    def list_managed(self):\n"
        "        raise RuntimeError('socket went away')\n"
    )
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); del sys.argv[1]\n"
        "import jobrelay\n"
        "jobrelay.register_executor('broken', 'broken_lister:BrokenLister')\n"
        "from jobrelay._cli import main\n"
        "raise SystemExit(main())\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path), "ps", "--executor", "broken"],
        capture_output=True, text=True, check=False, timeout=60, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert proc.returncode == 1
    assert proc.stderr.splitlines() == [
        "jobrelay: unexpected RuntimeError: socket went away (--debug shows the traceback)"
    ]


def test_mock_jobs_run_on_simulated_time_in_batch(tmp_path: Path) -> None:
    # An hour of mock time must not be an hour of wall time (the subprocess would hit
    # its 60 s limit first).
    batch = tmp_path / "jobs.toml"
    batch.write_text(
        '[[jobs]]\nimage = "busybox"\nname = "long"\nlabels = { "mock.duration" = "3600" }\n'
        '[[jobs]]\nimage = "busybox"\nname = "short"\nlabels = { "mock.duration" = "5" }\n'
    )
    proc = jobrelay("batch", str(batch), "--executor", "mock")
    assert proc.returncode == 0, proc.stderr
    assert "long" in proc.stdout


def test_budget_from_the_config_files_runner_table(tmp_path: Path) -> None:
    config = tmp_path / "jobrelay.toml"
    config.write_text(
        'default = "mock"\n[runner]\nbudget = "1.5 USD"\n'
        '[executors.mock]\ntype = "mock"\ncost_per_hour = "1"\n'
    )
    batch = tmp_path / "jobs.toml"
    batch.write_text(
        "".join(f'[[jobs]]\nimage = "busybox"\nname = "j{i}"\ntimeout = "1h"\n' for i in range(3))
    )
    proc = jobrelay("batch", str(batch), "--config", str(config), "--max-workers", "1")
    assert proc.returncode != 0
    assert "budget exhausted" in proc.stdout + proc.stderr
    bad = tmp_path / "bad.toml"
    bad.write_text('default = "mock"\n[runner]\nbudjet = "1 USD"\n[executors.mock]\n')
    proc = jobrelay("batch", str(batch), "--config", str(bad))
    assert proc.returncode == 2
    assert "[runner] takes only" in proc.stderr
