"""What a job sees and what we see of it, against the real daemon."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import docker
import pytest
import requests

from conftest import IMAGE, containers_of_job, make_executor, wait_running, wait_terminal
from jobrelay import Execution, JobSpec, JobState, LogLine, Resources
from jobrelay.errors import LaunchError, TransientExecutorError
from jobrelay_docker import DockerExecutor

pytestmark = pytest.mark.docker

Run = Callable[..., Execution]
MIB = 1024 * 1024


def test_stdout_and_stderr_come_from_their_streams(executor: DockerExecutor, run: Run) -> None:
    # Content that looks like the other stream must not fool the split.
    execution = run('echo "Warning: x"; echo ok >&2; echo "ERROR: on stdout"; echo "out?" >&2')
    wait_terminal(executor, execution)
    logs = executor.logs(execution)
    assert logs.stdout == "Warning: x\nERROR: on stdout\n"
    assert logs.stderr == "ok\nout?\n"
    assert not logs.truncated
    streamed = list(executor.stream_logs(execution))
    # Two pipes: the order within a stream holds, the interleaving is the daemon's.
    assert [line.text for line in streamed if line.stream == "stdout"] == [
        "Warning: x",
        "ERROR: on stdout",
    ]
    assert [line.text for line in streamed if line.stream == "stderr"] == ["ok", "out?"]
    assert len(streamed) == 4


def test_tail_applies_to_each_stream(executor: DockerExecutor, run: Run) -> None:
    # Ten stdout lines, then five on stderr: a daemon-side tail over both streams
    # would leave stdout empty.
    execution = run(
        "for i in 1 2 3 4 5 6 7 8 9 10; do echo o$i; done; for i in 1 2 3 4 5; do echo e$i >&2; done"
    )
    wait_terminal(executor, execution)
    tailed = executor.logs(execution, tail=2)
    assert (tailed.stdout, tailed.stderr) == ("o9\no10\n", "e4\ne5\n")
    assert tailed.truncated
    whole = executor.logs(execution, tail=100)
    assert whole.stdout.count("\n") == 10
    assert not whole.truncated
    assert executor.logs(execution, tail=0).stdout == ""
    with pytest.raises(ValueError, match="tail"):
        executor.logs(execution, tail=-1)


@pytest.mark.parametrize(
    ("script", "state", "code"),
    [
        ("exit 0", JobState.SUCCEEDED, 0),
        ("exit 1", JobState.FAILED, 1),
        ("exit 3", JobState.FAILED, 3),
        # A job that SIGKILLs itself (PID 1 cannot, so a child does): 137, not cancelled.
        ("sh -c 'kill -9 $$'; exit $?", JobState.FAILED, 137),
    ],
)
def test_exit_codes(
    executor: DockerExecutor, run: Run, script: str, state: JobState, code: int
) -> None:
    execution = run(script)
    status = wait_terminal(executor, execution)
    assert (status.state, status.exit_code) == (state, code)
    assert status.reason is None
    assert status.started_at is not None
    assert status.finished_at is not None
    batch = executor.statuses([execution])[execution.execution_id]
    assert (batch.state, batch.exit_code) == (state, code)
    result = executor.harvest(execution)
    assert (result.state, result.exit_code) == (state, code)
    assert result.duration is not None
    assert result.duration >= 0


def test_oom_killed_is_failed_with_reason(executor: DockerExecutor, run: Run) -> None:
    execution = run("tail /dev/zero", resources=Resources(memory=16))
    status = wait_terminal(executor, execution)
    assert status.state is JobState.FAILED
    assert status.reason == "oom-killed"
    assert status.exit_code == 137


def test_env_and_secrets_arrive_intact(executor: DockerExecutor, run: Run) -> None:
    env = {
        "QUOTED": "he said \"hi\"  and 'bye'",
        "SHELLISH": "$HOME `id` $(id) \\n ; | & *",
        "EMPTY": "",
    }
    execution = run(
        'printf "[%s]\\n" "$QUOTED" "$SHELLISH" "$EMPTY" "$TOKEN"',
        env=env,
        secrets={"TOKEN": "s3cr3t with spaces"},
    )
    wait_terminal(executor, execution)
    assert executor.logs(execution).stdout.splitlines() == [
        f"[{env['QUOTED']}]",
        f"[{env['SHELLISH']}]",
        "[]",
        "[s3cr3t with spaces]",
    ]


def test_secrets_are_masked_in_inspect(executor: DockerExecutor, run: Run) -> None:
    execution = run("exit 0", env={"PLAIN": "visible"}, secrets={"TOKEN": "s3cr3t-value"})
    data = executor.inspect(execution)
    assert "TOKEN=***" in data["Config"]["Env"]
    assert "PLAIN=visible" in data["Config"]["Env"]
    assert "s3cr3t-value" not in repr(data)
    assert "s3cr3t-value" not in repr(execution)


def test_argv_is_not_a_shell_and_entrypoint_is_honoured(executor: DockerExecutor, run: Run) -> None:
    execution = run(["a  b", "$HOME", "c;d"], entrypoint=["echo"])
    wait_terminal(executor, execution)
    assert executor.logs(execution).stdout == "a  b $HOME c;d\n"


def test_working_dir_is_honoured(executor: DockerExecutor, run: Run) -> None:
    execution = run("pwd", working_dir="/tmp")
    wait_terminal(executor, execution)
    assert executor.logs(execution).stdout == "/tmp\n"


def test_limits_are_in_the_host_config(run: Run, docker_api: docker.APIClient) -> None:
    execution = run("exit 0", resources=Resources(cpu=0.5, memory="48Mi"))
    host_config = docker_api.inspect_container(execution.execution_id)["HostConfig"]
    assert host_config["NanoCpus"] == 500_000_000
    assert host_config["Memory"] == 48 * MIB
    assert host_config["MemorySwap"] == 48 * MIB  # no swap beyond the limit
    assert host_config["DeviceRequests"] in (None, [])


def test_network_none(docker_api: docker.APIClient) -> None:  # noqa: ARG001
    with make_executor(network="none") as executor:
        assert not executor.capabilities().networking
        execution = executor.launch(JobSpec(IMAGE, ["ls", "/sys/class/net"]))
        try:
            wait_terminal(executor, execution)
            assert executor.inspect(execution)["HostConfig"]["NetworkMode"] == "none"
            assert executor.logs(execution).stdout.split() == ["lo"]
        finally:
            executor.cleanup(execution)


def test_labels(executor: DockerExecutor, run: Run, docker_api: docker.APIClient) -> None:
    execution = run("exit 0", labels={"team": "data", "jobrelay.job-id": "forged"}, name="labelled")
    labels = docker_api.inspect_container(execution.execution_id)["Config"]["Labels"]
    assert labels["team"] == "data"
    assert labels["jobrelay.job-id"] == execution.job_id  # ours win over the job's
    assert labels["jobrelay.job-name"] == "labelled"
    assert labels["jobrelay.executor"] == executor.name
    assert labels["jobrelay-test.run"]  # the executor's own labels
    assert docker_api.inspect_container(execution.execution_id)["Name"] == (
        f"/jobrelay-{execution.job_id}"
    )


def test_start_failure_leaves_no_container(
    executor: DockerExecutor, docker_api: docker.APIClient
) -> None:
    job = JobSpec(IMAGE, ["no-such-command-here"], job_id=f"t-{uuid.uuid4().hex[:12]}")
    with pytest.raises(LaunchError, match="no-such-command-here") as info:
        executor.launch(job)
    assert info.value.job_id == job.job_id
    assert containers_of_job(docker_api, job.job_id) == []
    with pytest.raises(docker.errors.NotFound):
        docker_api.inspect_container(f"jobrelay-{job.job_id}")


def test_bad_create_is_a_launch_error(
    executor: DockerExecutor, docker_api: docker.APIClient
) -> None:
    job = JobSpec(IMAGE, ["true"], resources=Resources(memory=1))  # below the daemon's minimum
    with pytest.raises(LaunchError, match=r"[Mm]emory"):
        executor.launch(job)
    assert containers_of_job(docker_api, job.job_id) == []


def test_same_job_id_twice_is_one_container(
    executor: DockerExecutor, run: Run, docker_api: docker.APIClient
) -> None:
    first = run("sleep 600")
    job = JobSpec(IMAGE, ["sh", "-c", "sleep 600"], job_id=first.job_id)
    again = executor.launch(job)
    assert again.execution_id == first.execution_id
    assert len(containers_of_job(docker_api, first.job_id)) == 1


def test_concurrent_launches_make_one_container(
    executor: DockerExecutor, launched: list[Execution], docker_api: docker.APIClient
) -> None:
    job = JobSpec(IMAGE, ["sh", "-c", "sleep 600"], job_id=f"t-{uuid.uuid4().hex[:12]}")
    results: list[Execution] = []
    errors: list[BaseException] = []

    def launch() -> None:
        try:
            results.append(executor.launch(job))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=launch) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    launched.extend(results)
    assert errors == []
    assert len({execution.execution_id for execution in results}) == 1
    assert len(containers_of_job(docker_api, job.job_id)) == 1


def test_relaunch_after_cancel_returns_the_cancelled_execution(
    executor: DockerExecutor, run: Run, docker_api: docker.APIClient
) -> None:
    first = run("sleep 600")
    executor.cancel(first)
    again = executor.launch(JobSpec(IMAGE, ["sh", "-c", "sleep 600"], job_id=first.job_id))
    assert again.execution_id == first.execution_id
    assert executor.status(again).state is JobState.CANCELLED
    assert len(containers_of_job(docker_api, first.job_id)) == 1


def test_stream_logs_follows_a_quiet_running_job(docker_api: docker.APIClient) -> None:  # noqa: ARG001
    # Silent for longer than the API timeout: following must not time out.
    with make_executor(timeout=1) as executor:
        execution = executor.launch(
            JobSpec(IMAGE, ["sh", "-c", "echo one; sleep 2; echo two >&2; echo -n three"])
        )
        try:
            wait_running(executor, execution)
            started = time.monotonic()
            lines = list(executor.stream_logs(execution))
            assert time.monotonic() - started >= 1
            # Two seconds apart, so the order across streams is certain here.
            assert [(line.stream, line.text) for line in lines][:2] == [
                ("stdout", "one"),
                ("stderr", "two"),
            ]
            assert sorted((line.stream, line.text) for line in lines[2:]) == [("stdout", "three")]
            assert all(isinstance(line, LogLine) for line in lines)
            assert executor.status(execution).state is JobState.SUCCEEDED
        finally:
            executor.cleanup(execution)


def test_lost_answer_to_create_leaves_no_container(
    executor: DockerExecutor,
    docker_api: docker.APIClient,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The daemon does the work, then the answer is lost: the call looks like a timeout.
    api = executor._client()
    real = api.create_container

    def done_but_unanswered(*args: Any, **kwargs: Any) -> Any:
        real(*args, **kwargs)
        raise requests.exceptions.ReadTimeout("read timed out")

    monkeypatch.setattr(api, "create_container", done_but_unanswered)
    job = JobSpec(IMAGE, ["sleep", "600"], job_id=f"t-{uuid.uuid4().hex[:12]}")
    with pytest.raises(TransientExecutorError, match="no answer") as info:
        executor.launch(job)
    assert info.value.job_id == job.job_id
    assert containers_of_job(docker_api, job.job_id) == []
    monkeypatch.undo()
    # The retry the core policy would make starts from a clean slate.
    execution = executor.launch(job)
    try:
        wait_running(executor, execution)
        assert len(containers_of_job(docker_api, job.job_id)) == 1
    finally:
        executor.cancel(execution)
        executor.cleanup(execution)


def test_lost_answer_to_start_finds_the_started_container(
    executor: DockerExecutor,
    docker_api: docker.APIClient,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The start took effect but its answer was lost: the launch looks and returns it.
    api = executor._client()
    real = api.start

    def done_but_unanswered(*args: Any, **kwargs: Any) -> Any:
        real(*args, **kwargs)
        raise requests.exceptions.ReadTimeout("read timed out")

    monkeypatch.setattr(api, "start", done_but_unanswered)
    job = JobSpec(IMAGE, ["sleep", "600"], job_id=f"t-{uuid.uuid4().hex[:12]}")
    execution = executor.launch(job)
    try:
        monkeypatch.undo()
        assert executor.status(execution).state is JobState.RUNNING
        assert [c["Id"] for c in containers_of_job(docker_api, job.job_id)] == [
            execution.execution_id
        ]
        assert executor.launch(job).execution_id == execution.execution_id
    finally:
        executor.cancel(execution)
        executor.cleanup(execution)


def test_unanswered_start_leaves_a_container_the_retried_launch_starts(
    executor: DockerExecutor,
    docker_api: docker.APIClient,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The start never reached the daemon, nor did the clean-up after it: the created
    # container is this executor's own, so the retried launch starts it, never
    # leaving a job PENDING for ever nor making a second container.
    api = executor._client()

    def unanswered(*_: Any, **__: Any) -> Any:
        raise requests.exceptions.ConnectionError("connection refused")

    monkeypatch.setattr(api, "start", unanswered)
    monkeypatch.setattr(api, "remove_container", unanswered)
    monkeypatch.setattr(api, "inspect_container", unanswered)
    job = JobSpec(IMAGE, ["sh", "-c", "exit 4"], job_id=f"t-{uuid.uuid4().hex[:12]}")
    with pytest.raises(TransientExecutorError, match="no answer"):
        executor.launch(job)
    [left] = containers_of_job(docker_api, job.job_id)
    assert left["State"] == "created"
    monkeypatch.undo()
    execution = executor.launch(job)
    try:
        assert execution.execution_id == left["Id"]
        result = executor.harvest(execution)
        assert (result.state, result.exit_code) == (JobState.FAILED, 4)
    finally:
        executor.cleanup(execution)


def test_a_stale_runtime_task_gets_a_fresh_container(
    executor: DockerExecutor,
    docker_api: docker.APIClient,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # After a daemon was killed during a start, its runtime may keep the task: the
    # daemon then refuses that container's start for good ("already exists"), so
    # the launch replaces the container rather than failing the job.
    api = executor._client()
    real = api.start
    refused: list[str] = []

    def stale_once(container: str, *args: Any, **kwargs: Any) -> Any:
        if not refused:
            refused.append(container)
            response = requests.Response()
            response.status_code = 500
            raise docker.errors.APIError(
                "failed", response=response, explanation=f"task {container}: already exists"
            )
        return real(container, *args, **kwargs)

    monkeypatch.setattr(api, "start", stale_once)
    job = JobSpec(IMAGE, ["sh", "-c", "echo fresh; exit 6"], job_id=f"t-{uuid.uuid4().hex[:12]}")
    execution = executor.launch(job)
    try:
        assert refused != [execution.execution_id]
        result = executor.harvest(execution)
        assert (result.exit_code, result.logs.stdout) == (6, "fresh\n")
        assert containers_of_job(docker_api, job.job_id) == []
    finally:
        executor.cleanup(execution)
