"""The `jobrelay` command line against the real Docker daemon, as a real subprocess.

Every job runs through a router config naming a docker executor of this test session
(``cli-<run id>``), whose containers carry the session's sweep label: ``ps`` and
``gc`` then see only this session's containers, never another test's.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from conftest import IMAGE, RUN_ID, RUN_LABEL, containers_of_job, wait_terminal
from jobrelay import JobSpec
from jobrelay_docker import DockerExecutor

pytestmark = pytest.mark.docker

EXECUTOR = f"cli-{RUN_ID}"
CONFIG = f"""
default = "{EXECUTOR}"

[executors.{EXECUTOR}]
type = "docker"
pull_policy = "never"
stop_grace = 1
labels = {{ "{RUN_LABEL}" = "{RUN_ID}" }}
"""


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory, docker_api: docker.APIClient) -> Path:  # noqa: ARG001
    path = tmp_path_factory.mktemp("cli") / "router.toml"
    path.write_text(CONFIG)
    return path


def _env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key != "JOBRELAY_CONFIG"}
    env.update(extra or {})
    return env


def jobrelay(
    *args: str,
    timeout: float = 60,
    env: dict[str, str] | None = None,
    input_text: str | None = None,
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "jobrelay", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env=_env(env),
        stdin=None if input_text is not None else subprocess.DEVNULL,
        input=input_text,
    )


def start(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "jobrelay", *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(),
    )


def new_id() -> str:
    return f"cli-{uuid.uuid4().hex[:12]}"


def wait_running(api: docker.APIClient, job_id: str, count: int = 1, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        running = [c for c in containers_of_job(api, job_id) if c["State"] == "running"]
        if len(running) >= count:
            return
        time.sleep(0.05)
    pytest.fail(f"job {job_id} not running after {timeout}s")


def jobrelay_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("jobrelay")]


@pytest.fixture
def job_ids(docker_api: docker.APIClient) -> Iterator[list[str]]:
    """Job ids a test used; after it, none may have a container left."""
    ids: list[str] = []
    yield ids
    leftovers = [c["Names"] for job_id in ids for c in containers_of_job(docker_api, job_id)]
    assert leftovers == [], f"containers left behind: {leftovers}"


def test_run_streams_and_exits_with_the_jobs_code(config: Path, job_ids: list[str]) -> None:
    job_ids.append(job_id := new_id())
    proc = jobrelay(
        "run", "--config", str(config), "--job-id", job_id, "--name", "streams", IMAGE,
        "--", "sh", "-c", "echo out; echo err >&2; exit 3",
    )  # fmt: skip
    assert proc.returncode == 3, proc.stderr
    assert proc.stdout == "out\n"
    assert proc.stderr.startswith("err\n")
    assert jobrelay_lines(proc.stderr) == [
        f"jobrelay: job 'streams' failed (exit 3) on {EXECUTOR} [{proc.stderr.split('[')[1][:12]}]"
    ]


def test_run_executor_docker_quiet_true(job_ids: list[str]) -> None:
    job_ids.append(job_id := new_id())
    proc = jobrelay(
        "run", "--executor", "docker", "--quiet", "--pull", "never", "--job-id", job_id,
        "--label", f"{RUN_LABEL}={RUN_ID}", IMAGE, "--", "true",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert (proc.stdout, proc.stderr) == ("", "")


def test_timeout_exits_124_and_removes_the_container(config: Path, job_ids: list[str]) -> None:
    job_ids.append(job_id := new_id())
    started = time.monotonic()
    proc = jobrelay(
        "run", "--config", str(config), "--timeout", "1s", "--job-id", job_id, IMAGE,
        "--", "sleep", "30",
    )  # fmt: skip
    assert proc.returncode == 124, proc.stderr
    assert time.monotonic() - started < 20
    assert "timed_out" in proc.stderr


@pytest.mark.parametrize(
    ("image", "pull"),
    [
        ("jobrelay-test/not-there:latest", "never"),
        ("127.0.0.1:5000/jobrelay-test/nope:1", "missing"),
    ],
)
def test_wrong_image_is_one_line_and_125(config: Path, image: str, pull: str) -> None:
    started = time.monotonic()
    proc = jobrelay("run", "--config", str(config), "--pull", pull, "--name", "etl", image)
    assert proc.returncode == 125, proc.stderr
    assert time.monotonic() - started < 15
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith(f"jobrelay: job 'etl' could not be launched: {EXECUTOR}: ")
    assert "next candidate" not in proc.stderr


def test_unreachable_daemon_is_one_line_without_http_internals() -> None:
    started = time.monotonic()
    proc = jobrelay(
        "run",
        "--executor",
        "docker",
        "--name",
        "far",
        IMAGE,
        env={"DOCKER_HOST": "tcp://127.0.0.1:1"},
    )
    assert proc.returncode == 125, proc.stderr
    assert time.monotonic() - started < 15
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("jobrelay: job 'far' could not be launched: docker: ")
    for noise in (
        "HTTPConnectionPool",
        "urllib3",
        "Traceback",
        "NewConnectionError",
        "Max retries",
    ):
        assert noise not in proc.stderr


def test_network_flag_reaches_the_container(config: Path, job_ids: list[str]) -> None:
    job_ids.append(job_id := new_id())
    proc = jobrelay(
        "run", "--config", str(config), "--network", "none", "--job-id", job_id, IMAGE,
        "--", "ls", "/sys/class/net",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["lo"]


def test_volume_mounts(config: Path, tmp_path: Path, job_ids: list[str]) -> None:
    (tmp_path / "hello.txt").write_text("from the host\n")
    job_ids.append(job_id := new_id())
    proc = jobrelay(
        "run", "--config", str(config), "-v", f"{tmp_path}:/data:ro", "--job-id", job_id, IMAGE,
        "--", "cat", "/data/hello.txt",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "from the host\n"
    bad = jobrelay("run", "--config", str(config), "-v", "relative-dest", IMAGE, "--", "true")
    assert bad.returncode != 0
    assert len(bad.stderr.splitlines()) == 1
    assert "volumes[0]" in bad.stderr


def test_user_runs_as(config: Path, job_ids: list[str]) -> None:
    job_ids.append(job_id := new_id())
    proc = jobrelay(
        "run", "--config", str(config), "--user", "65534", "--job-id", job_id, IMAGE, "--", "id", "-u"
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "65534\n"


def test_stdin_goes_to_the_job(config: Path, job_ids: list[str], tmp_path: Path) -> None:
    job_ids.append(job_id := new_id())
    proc = jobrelay(
        "run", "--config", str(config), "--job-id", job_id, IMAGE, "cat", input_text="hi\n"
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "hi\n"
    assert [line for line in jobrelay_lines(proc.stderr) if "warning" in line] == []
    # As a user types it, from a shell pipe, with the default docker executor.
    job_ids.append(job_id := new_id())
    with subprocess.Popen(["echo", "hi"], stdout=subprocess.PIPE) as echo:
        piped = subprocess.run(
            [sys.executable, "-m", "jobrelay", "run", "--executor", "docker", "--pull", "never",
             "--job-id", job_id, IMAGE, "--", "cat"],
            stdin=echo.stdout, capture_output=True, text=True, timeout=60, check=False, env=_env(),
        )  # fmt: skip
    assert piped.returncode == 0, piped.stderr
    assert piped.stdout == "hi\n"
    assert jobrelay_lines(piped.stderr) == [
        f"jobrelay: job 'busybox' succeeded (exit 0) on docker [{piped.stderr.split('[')[1][:12]}]"
    ]
    # A file on stdin: a mebibyte arrives whole.
    source = tmp_path / "input.bin"
    source.write_bytes(bytes(range(256)) * 4096)
    job_ids.append(job_id := new_id())
    with source.open("rb") as stdin:
        counted = subprocess.run(
            [sys.executable, "-m", "jobrelay", "run", "--config", str(config), "--quiet",
             "--job-id", job_id, IMAGE, "--", "wc", "-c"],
            stdin=stdin, capture_output=True, text=True, timeout=60, check=False, env=_env(),
        )  # fmt: skip
    assert counted.returncode == 0, counted.stderr
    assert counted.stdout.strip() == str(1024 * 1024)
    assert counted.stderr == ""


@pytest.mark.parametrize(
    ("signals", "code", "name"),
    [
        ((signal.SIGINT,), 130, "SIGINT"),
        ((signal.SIGTERM,), 143, "SIGTERM"),
        ((signal.SIGINT, signal.SIGINT), 130, "SIGINT"),
    ],
)
def test_signal_cancels_cleans_up_and_prints_one_line(
    config: Path,
    docker_api: docker.APIClient,
    job_ids: list[str],
    signals: tuple[signal.Signals, ...],
    code: int,
    name: str,
) -> None:
    job_ids.append(job_id := new_id())
    proc = start(
        "run", "--config", str(config), "--stop-grace", "1", "--job-id", job_id,
        "--name", "sleepy", IMAGE, "--", "sleep", "30",
    )  # fmt: skip
    wait_running(docker_api, job_id)
    for signum in signals:
        proc.send_signal(signum)
        time.sleep(0.15)  # the second arrives while the first one's cleanup runs
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == code, err
    assert err.splitlines() == [f"jobrelay: {name}: cancelling job 'sleepy'"]
    assert out == ""


def test_sigterm_cancels_a_batch(
    config: Path, tmp_path: Path, docker_api: docker.APIClient, job_ids: list[str]
) -> None:
    ids = [new_id() for _ in range(3)]
    job_ids.extend(ids)
    batch = tmp_path / "jobs.toml"
    batch.write_text(
        "".join(
            f'[[jobs]]\nimage = "{IMAGE}"\njob_id = "{job_id}"\ncommand = ["sleep", "30"]\n\n'
            for job_id in ids
        )
    )
    proc = start("batch", str(batch), "--config", str(config), "--stop-grace", "1")
    for job_id in ids:
        wait_running(docker_api, job_id)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 143, err
    assert jobrelay_lines(err) == ["jobrelay: SIGTERM: cancelling the batch's jobs"]


def test_batch_on_docker_reports_each_job(config: Path, tmp_path: Path, job_ids: list[str]) -> None:
    ids = [new_id() for _ in range(3)]
    job_ids.extend(ids)
    batch = tmp_path / "jobs.toml"
    batch.write_text(
        f'[[jobs]]\nimage = "{IMAGE}"\nname = "ok"\njob_id = "{ids[0]}"\ncommand = "true"\n\n'
        f'[[jobs]]\nimage = "{IMAGE}"\nname = "bad"\njob_id = "{ids[1]}"\n'
        'command = ["sh", "-c", "echo broken >&2; exit 7"]\n\n'
        f'[[jobs]]\nimage = "{IMAGE}"\nname = "slow"\njob_id = "{ids[2]}"\n'
        'command = "sleep 30"\ntimeout = "1s"\n'
    )
    proc = jobrelay("batch", str(batch), "--config", str(config))
    assert proc.returncode == 1, proc.stderr
    rows = {line.split()[0]: line.split() for line in proc.stdout.splitlines()[1:4]}
    assert rows["ok"][2:5] == ["succeeded", "0", EXECUTOR]
    assert rows["bad"][2:5] == ["failed", "7", EXECUTOR]
    assert rows["slow"][2] == "timed_out"
    assert "bad: last lines of stderr:\n  | broken\n" in proc.stdout
    assert "1 succeeded, 1 failed, 1 timed out" in proc.stdout


def test_ps_logs_cancel_across_executors(
    config: Path, docker_api: docker.APIClient, job_ids: list[str]
) -> None:
    job_ids.append(job_id := new_id())
    runner = start(
        "run", "--config", str(config), "--job-id", job_id, IMAGE,
        "--", "sh", "-c", "echo started; sleep 30",
    )  # fmt: skip
    wait_running(docker_api, job_id)

    ps = jobrelay("ps", "--config", str(config))
    assert ps.returncode == 0, ps.stderr
    header, *rows = ps.stdout.splitlines()
    assert header.split() == ["EXECUTOR", "JOB", "ID", "STATE", "OWNER", "AGE", "EXECUTION"]
    mine = [row.split() for row in rows if job_id in row]
    assert len(mine) == 1
    assert mine[0][0] == EXECUTOR
    assert mine[0][2] == "running"

    deadline = time.monotonic() + 10
    logs = jobrelay("logs", "--config", str(config), job_id)
    while "started" not in logs.stdout and time.monotonic() < deadline:
        time.sleep(0.1)
        logs = jobrelay("logs", "--config", str(config), job_id)
    assert logs.returncode == 0, logs.stderr
    assert logs.stdout == "started\n"

    cancel = jobrelay("cancel", "--config", str(config), job_id)
    assert cancel.returncode == 0, cancel.stderr
    assert cancel.stdout.startswith(f"cancelled job '{job_id}' on {EXECUTOR} [")
    # The process that launched it sees it end, harvests it and cleans up.
    _, err = runner.communicate(timeout=30)
    assert runner.returncode == 130, err
    assert "cancelled" in err

    gone = jobrelay("logs", "--config", str(config), job_id)
    assert gone.returncode == 1
    assert gone.stderr == f"jobrelay: no workload of job '{job_id}' on {EXECUTOR}\n"


def test_logs_follow_until_the_job_ends(
    config: Path, docker_api: docker.APIClient, job_ids: list[str]
) -> None:
    job_ids.append(job_id := new_id())
    runner = start(
        "run", "--config", str(config), "--job-id", job_id, IMAGE,
        "--", "sh", "-c", "echo a; sleep 2; echo b >&2; echo c",
    )  # fmt: skip
    wait_running(docker_api, job_id)
    follow = jobrelay("logs", "--config", str(config), "-f", job_id)
    assert follow.returncode == 0, follow.stderr
    assert follow.stdout == "a\nc\n"
    assert follow.stderr == "b\n"
    runner.communicate(timeout=30)
    assert runner.returncode == 0


def test_gc_removes_finished_workloads_only(
    config: Path, docker_api: docker.APIClient, job_ids: list[str]
) -> None:
    done_id, live_id, theirs_id = new_id(), new_id(), new_id()
    job_ids.extend([done_id, live_id, theirs_id])
    labels = {RUN_LABEL: RUN_ID}
    with DockerExecutor(name=EXECUTOR, labels=labels, pull_policy="never", stop_grace=0) as ex:
        done = ex.launch(JobSpec(IMAGE, "true", job_id=done_id))
        live = ex.launch(JobSpec(IMAGE, "sleep 30", job_id=live_id))
        other = JobSpec(IMAGE, "true", job_id=theirs_id, labels={"jobrelay.owner": "elsewhere"})
        theirs = ex.launch(other)
        wait_terminal(ex, done)
        wait_terminal(ex, theirs)
        try:
            young = jobrelay("gc", "--config", str(config))  # default: older than 1h
            assert young.returncode == 0, young.stderr
            assert len(containers_of_job(docker_api, done_id)) == 1

            ps = jobrelay("ps", "--config", str(config))
            assert theirs_id not in ps.stdout
            assert done_id in ps.stdout
            everyone = jobrelay("ps", "--config", str(config), "--all-owners")
            assert any(
                theirs_id in row and "elsewhere" in row for row in everyone.stdout.splitlines()
            )

            proc = jobrelay("gc", "--config", str(config), "--older-than", "0")
            assert proc.returncode == 0, proc.stderr
            assert f"removed {EXECUTOR} {done_id} [" in proc.stdout
            assert containers_of_job(docker_api, done_id) == []
            assert [c["State"] for c in containers_of_job(docker_api, live_id)] == ["running"]
            assert len(containers_of_job(docker_api, theirs_id)) == 1  # another owner's

            proc = jobrelay("gc", "--config", str(config), "--older-than", "0", "--all-owners")
            assert proc.returncode == 0, proc.stderr
            assert containers_of_job(docker_api, theirs_id) == []
        finally:
            ex.cancel(live)
            ex.cleanup(live)
            ex.cleanup(theirs)


def test_logs_follow_stops_on_ctrl_c_and_the_job_goes_on(
    config: Path, docker_api: docker.APIClient, job_ids: list[str]
) -> None:
    job_ids.append(job_id := new_id())
    runner = start(
        "run", "--config", str(config), "--job-id", job_id, IMAGE,
        "--", "sh", "-c", "echo first; sleep 4; echo last",
    )  # fmt: skip
    wait_running(docker_api, job_id)
    follow = start("logs", "--config", str(config), "-f", job_id)
    assert follow.stdout is not None
    assert follow.stdout.readline() == "first\n"
    follow.send_signal(signal.SIGINT)
    _, err = follow.communicate(timeout=30)
    assert follow.returncode == 130, err
    assert err == "jobrelay: SIGINT: stopped following (the job goes on)\n"
    out, _ = runner.communicate(timeout=30)
    assert runner.returncode == 0
    assert out == "first\nlast\n"
