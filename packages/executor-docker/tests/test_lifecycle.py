"""Cancel, harvest, cleanup, reconcile and the extras, against the real daemon."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import docker
import pytest

from conftest import (
    IMAGE,
    RUN_LABELS,
    containers_of_job,
    make_executor,
    wait_running,
    wait_terminal,
)
from jobrelay import Execution, JobSpec, JobState
from jobrelay.errors import ExecutorError
from jobrelay_docker import DockerExecutor, ExecResult

pytestmark = pytest.mark.docker

Run = Callable[..., Execution]


def test_cancel_is_seen_from_another_process(executor: DockerExecutor, run: Run) -> None:
    execution = run("sleep 600")
    wait_running(executor, execution)
    executor.cancel(execution)
    status = executor.status(execution)
    assert (status.state, status.exit_code, status.reason) == (JobState.CANCELLED, 137, "cancelled")
    assert executor.statuses([execution])[execution.execution_id].state is JobState.CANCELLED
    # A fresh interpreter knows only the ids, and reads the cancellation from the daemon.
    code = textwrap.dedent(
        f"""
        from datetime import datetime, timezone
        from jobrelay import Execution
        from jobrelay_docker import DockerExecutor
        execution = Execution("docker", {execution.execution_id!r}, {execution.job_id!r},
                              datetime.now(timezone.utc))
        with DockerExecutor() as executor:
            print(executor.status(execution).state.value,
                  executor.statuses([execution])[execution.execution_id].state.value)
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.split() == ["cancelled", "cancelled"]


def test_cancel_honours_stop_grace_then_kills(executor: DockerExecutor, run: Run) -> None:
    # The job traps SIGTERM and exits 0 itself: still CANCELLED, since we stopped it.
    execution = run("trap 'echo got TERM; exit 0' TERM; while true; do sleep 0.1; done")
    wait_running(executor, execution)
    executor.cancel(execution)
    status = executor.status(execution)
    assert (status.state, status.exit_code) == (JobState.CANCELLED, 0)
    assert "got TERM" in executor.logs(execution).stdout
    # PID 1 ignoring SIGTERM is killed after stop_grace (1s here).
    stubborn = run("sleep 600")
    wait_running(executor, stubborn)
    executor.cancel(stubborn)
    status = executor.status(stubborn)
    assert (status.state, status.exit_code) == (JobState.CANCELLED, 137)


def test_cancel_a_paused_container(
    executor: DockerExecutor, run: Run, docker_api: docker.APIClient
) -> None:
    execution = run("sleep 600")
    wait_running(executor, execution)
    docker_api.pause(execution.execution_id)
    assert executor.status(execution).reason == "paused"
    executor.cancel(execution)
    assert executor.status(execution).state is JobState.CANCELLED


def test_harvest_waits_for_the_end(executor: DockerExecutor, run: Run) -> None:
    execution = run("sleep 1; echo done")
    result = executor.harvest(execution)
    assert result.state is JobState.SUCCEEDED
    assert result.logs.stdout == "done\n"
    assert result.duration is not None
    assert result.duration >= 0.9


@pytest.mark.parametrize(
    ("config", "script", "kept"),
    [
        ({}, "exit 0", False),
        ({}, "exit 2", False),
        ({"remove_on_harvest": False}, "exit 0", True),
        ({"keep_failed": True}, "exit 2", True),
        ({"keep_failed": True}, "exit 0", False),
    ],
)
def test_harvest_removal_policy(
    docker_api: docker.APIClient, config: dict[str, Any], script: str, kept: bool
) -> None:
    with make_executor(**config) as executor:
        execution = executor.launch(JobSpec(IMAGE, ["sh", "-c", script]))
        try:
            result = executor.harvest(execution)
            assert result.status.exit_code == int(script.rsplit(maxsplit=1)[-1])
            assert bool(containers_of_job(docker_api, execution.job_id)) is kept
            if kept:  # harvesting again still reads the kept container
                assert executor.harvest(execution).status == result.status
            else:  # and a removed one is never reported a success
                assert executor.harvest(execution).state is JobState.LOST
        finally:
            executor.cleanup(execution)


@pytest.fixture
def unmanaged(docker_api: docker.APIClient) -> Iterator[Execution]:
    """A container the test starts itself, without jobrelay's labels (already exited)."""
    container = docker_api.create_container(
        IMAGE, ["true"], name=f"unmanaged-{uuid.uuid4().hex[:8]}", labels=dict(RUN_LABELS)
    )
    docker_api.start(container["Id"])
    docker_api.wait(container["Id"])
    yield Execution("docker-test", container["Id"], "not-ours", datetime.now(timezone.utc))
    docker_api.remove_container(container["Id"], force=True)


def test_unmanaged_containers_are_never_touched(
    executor: DockerExecutor, unmanaged: Execution, docker_api: docker.APIClient
) -> None:
    assert executor.status(unmanaged).state is JobState.LOST
    assert executor.statuses([unmanaged])[unmanaged.execution_id].state is JobState.LOST
    assert executor.harvest(unmanaged).state is JobState.LOST
    with pytest.raises(ExecutorError, match=r"jobrelay\.managed=true"):
        executor.cancel(unmanaged)
    with pytest.raises(ExecutorError, match=r"jobrelay\.managed=true"):
        executor.cleanup(unmanaged)
    with pytest.raises(ExecutorError, match="no jobrelay container"):
        executor.inspect(unmanaged)
    assert unmanaged.execution_id not in {e.execution_id for e in executor.list_managed()}
    assert docker_api.inspect_container(unmanaged.execution_id)["State"]["Status"] == "exited"


def test_cleanup_orphans(unmanaged: Execution, docker_api: docker.APIClient) -> None:
    with make_executor(name=f"docker-orphans-{uuid.uuid4().hex[:6]}") as executor:
        finished = executor.launch(JobSpec(IMAGE, ["true"]))
        running = executor.launch(JobSpec(IMAGE, ["sleep", "600"]))
        try:
            wait_terminal(executor, finished)
            wait_running(executor, running)
            listed = {e.execution_id: e for e in executor.list_managed()}
            assert set(listed) == {finished.execution_id, running.execution_id}
            assert listed[finished.execution_id].job_id == finished.job_id
            # Nothing has been finished for an hour yet.
            assert executor.cleanup_orphans(timedelta(hours=1)) == []
            removed = executor.cleanup_orphans(0)
            assert [e.execution_id for e in removed] == [finished.execution_id]
            assert executor.status(finished).state is JobState.LOST
            assert executor.status(running).state is JobState.RUNNING
            assert docker_api.inspect_container(unmanaged.execution_id)  # survived
            with pytest.raises(ValueError, match="older_than"):
                executor.cleanup_orphans(-1)
        finally:
            executor.cancel(running)
            executor.cleanup(running)
            executor.cleanup(finished)


def test_list_managed_is_per_executor(executor: DockerExecutor, run: Run) -> None:
    mine = run("sleep 600")
    with make_executor(name="docker-someone-else") as other:
        assert mine.execution_id not in {e.execution_id for e in other.list_managed()}
    assert mine.execution_id in {e.execution_id for e in executor.list_managed()}


def test_statuses_is_one_list_call(
    executor: DockerExecutor, run: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    executions = [run("exit 0"), run("exit 4"), run("sleep 600")]
    for execution in executions[:2]:
        wait_terminal(executor, execution)
    api = executor._client()
    calls: list[str] = []
    for method in ("containers", "inspect_container", "logs"):
        real = getattr(api, method)

        def spy(*args: Any, _real: Any = real, _name: str = method, **kwargs: Any) -> Any:
            calls.append(_name)
            return _real(*args, **kwargs)

        monkeypatch.setattr(api, method, spy)
    batch = executor.statuses(executions)
    assert calls == ["containers"]
    assert [batch[e.execution_id].state for e in executions] == [
        JobState.SUCCEEDED,
        JobState.FAILED,
        JobState.RUNNING,
    ]
    assert batch[executions[1].execution_id].exit_code == 4


def test_exec(executor: DockerExecutor, run: Run) -> None:
    execution = run("sleep 600")
    wait_running(executor, execution)
    result = executor.exec(execution, ["sh", "-c", "echo out; echo err >&2; exit 4"])
    assert result == ExecResult(exit_code=4, stdout="out\n", stderr="err\n")
    assert executor.exec(execution, "id -u", user="nobody").stdout == "65534\n"
    assert executor.exec(execution, "pwd", workdir="/tmp").stdout == "/tmp\n"
    with pytest.raises(ValueError, match="cmd"):
        executor.exec(execution, [])
    executor.cancel(execution)
    with pytest.raises(ExecutorError, match="not running"):
        executor.exec(execution, ["true"])


def test_operations_on_a_removed_container(executor: DockerExecutor, run: Run) -> None:
    execution = run("exit 0")
    wait_terminal(executor, execution)
    executor.cleanup(execution)
    assert executor.status(execution).state is JobState.LOST
    with pytest.raises(ExecutorError, match="no jobrelay container"):
        executor.logs(execution)
    with pytest.raises(ExecutorError, match="no jobrelay container"):
        list(executor.stream_logs(execution))
    executor.cancel(execution)
    executor.cleanup(execution)
    assert containers_of_job(executor._client(), execution.job_id) == []


def orphan_container(docker_api: docker.APIClient, executor: DockerExecutor) -> Execution:
    """What a launcher that died between create and start leaves behind."""
    job_id = f"t-{uuid.uuid4().hex[:12]}"
    labels = {
        **RUN_LABELS,
        "jobrelay.managed": "true",
        "jobrelay.job-id": job_id,
        "jobrelay.job-name": "orphan",
        "jobrelay.executor": executor.name,
        "jobrelay.owner": "a-dead-launcher",
    }
    container = docker_api.create_container(
        IMAGE, ["sleep", "600"], name=f"jobrelay-{job_id}", labels=labels
    )
    return Execution(executor.name, container["Id"], job_id, datetime.now(timezone.utc))


def test_a_container_nobody_starts_fails_after_start_grace(
    docker_api: docker.APIClient,
) -> None:
    with make_executor(start_grace=1) as executor:
        orphan = orphan_container(docker_api, executor)
        assert executor.status(orphan).state is JobState.PENDING
        assert executor.statuses([orphan])[orphan.execution_id].state is JobState.PENDING
        [listed] = [e for e in executor.list_managed() if e.job_id == orphan.job_id]
        assert listed.metadata["owner"] == "a-dead-launcher"
        # harvest does not wait for ever: the grace runs out and the reason says why.
        result = executor.harvest(orphan)
        assert result.state is JobState.FAILED
        assert result.status.reason is not None
        assert "never started" in result.status.reason
        assert executor.statuses([orphan])[orphan.execution_id].state is JobState.LOST
        assert containers_of_job(docker_api, orphan.job_id) == []


def test_a_relaunch_replaces_an_abandoned_created_container(
    docker_api: docker.APIClient,
) -> None:
    with make_executor(start_grace=1) as executor:
        orphan = orphan_container(docker_api, executor)
        # Younger than the grace: its launcher may be about to start it, so the
        # relaunch waits; then it is abandoned, removed, and the job runs once.
        relaunched = executor.launch(JobSpec(IMAGE, ["sh", "-c", "exit 5"], job_id=orphan.job_id))
        assert relaunched.execution_id != orphan.execution_id
        assert executor.status(orphan).state is JobState.LOST
        result = executor.harvest(relaunched)
        assert (result.state, result.exit_code) == (JobState.FAILED, 5)
        assert containers_of_job(docker_api, orphan.job_id) == []


def test_a_container_cancelled_before_it_started(
    executor: DockerExecutor, docker_api: docker.APIClient
) -> None:
    orphan = orphan_container(docker_api, executor)
    executor.cancel(orphan)
    status = executor.status(orphan)
    assert (status.state, status.reason) == (JobState.CANCELLED, "cancelled before it started")
    assert docker_api.inspect_container(orphan.execution_id)["State"]["Status"] == "created"
    # A relaunch of the job settles on the cancelled container, never starts it.
    again = executor.launch(JobSpec(IMAGE, ["sleep", "600"], job_id=orphan.job_id))
    assert again.execution_id == orphan.execution_id
    assert executor.harvest(orphan).state is JobState.CANCELLED
    assert containers_of_job(docker_api, orphan.job_id) == []
