"""A job's standard input: ``JobSpec(stdin=True)`` and ``send_stdin``, on the real daemon."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import docker
import pytest

from conftest import IMAGE, RUN_LABELS, TLS_URL, client_tls, make_executor, wait_terminal
from jobrelay import Capabilities, Execution, JobSpec, JobState, StdinFeeder
from jobrelay.errors import ExecutorError
from jobrelay_docker import DockerExecutor

pytestmark = pytest.mark.docker

Run = Callable[..., Execution]
MIB = 1024 * 1024


def _send_within(
    executor: DockerExecutor, execution: Execution, chunks: object, limit: float
) -> None:
    """``send_stdin`` in a thread: the test fails, rather than hangs, if it never returns."""
    errors: list[BaseException] = []

    def send() -> None:
        try:
            executor.send_stdin(execution, chunks)  # type: ignore[arg-type]
        except BaseException as exc:  # noqa: BLE001 - handed to the test thread
            errors.append(exc)

    sender = threading.Thread(target=send, daemon=True)
    sender.start()
    sender.join(limit)
    assert not sender.is_alive(), f"send_stdin still running after {limit}s"
    if errors:
        raise errors[0]


def test_docker_announces_stdin(executor: DockerExecutor) -> None:
    assert isinstance(executor, StdinFeeder)
    assert executor.capabilities().stdin
    assert not Capabilities().stdin


def test_chunks_reach_cat_and_come_back_on_stdout(
    executor: DockerExecutor, run: Run, docker_api: docker.APIClient
) -> None:
    execution = run(["cat"], stdin=True)
    config = docker_api.inspect_container(execution.execution_id)["Config"]
    assert (config["OpenStdin"], config["StdinOnce"]) == (True, True)
    chunks = [b"one\n", b"", b"two ", bytearray(b"three\n"), memoryview(b"no newline")]
    _send_within(executor, execution, iter(chunks), 30)
    result = executor.harvest(execution)
    assert result.state is JobState.SUCCEEDED, result.status
    assert result.logs.stdout == "one\ntwo three\nno newline"


def test_a_mebibyte_through_wc(executor: DockerExecutor, run: Run) -> None:
    data = bytes(range(256)) * (4 * 1024)
    assert len(data) == MIB

    def chunks() -> Iterator[bytes]:
        for start in range(0, len(data), 65536):
            yield data[start : start + 65536]

    execution = run("wc -c; echo done", stdin=True)
    _send_within(executor, execution, chunks(), 60)
    result = executor.harvest(execution)
    assert result.state is JobState.SUCCEEDED, result.status
    assert result.logs.stdout.split() == [str(MIB), "done"]


def test_no_input_at_all_is_end_of_file(executor: DockerExecutor, run: Run) -> None:
    execution = run("wc -c", stdin=True)
    _send_within(executor, execution, [], 30)
    result = executor.harvest(execution)
    assert (result.state, result.logs.stdout.strip()) == (JobState.SUCCEEDED, "0")


def test_a_job_that_does_not_read_stdin_still_ends(executor: DockerExecutor, run: Run) -> None:
    execution = run("echo ignored my input", stdin=True)
    status = wait_terminal(executor, execution, timeout=30)
    assert status.state is JobState.SUCCEEDED, status
    # Input for a job that has ended is dropped, as in a pipeline; no error, no wait.
    started = time.monotonic()
    executor.send_stdin(execution, [b"too late\n"])
    assert time.monotonic() - started < 5
    assert executor.harvest(execution).logs.stdout == "ignored my input\n"


def test_a_job_that_stops_reading_drops_the_rest(docker_api: docker.APIClient) -> None:  # noqa: ARG001
    # A short timeout: the daemon keeps the attach of an exited container open, so
    # the write that no longer goes through is noticed one timeout later.
    with make_executor(timeout=2) as executor:
        execution = executor.launch(JobSpec(IMAGE, ["head", "-c", "5"], stdin=True))
        try:
            started = time.monotonic()
            _send_within(executor, execution, (b"x" * 65536 for _ in range(64)), 30)
            assert time.monotonic() - started < 20
            result = executor.harvest(execution)
        finally:
            executor.cleanup(execution)
    assert (result.state, result.logs.stdout) == (JobState.SUCCEEDED, "xxxxx")


def test_a_slow_reader_is_waited_for(docker_api: docker.APIClient) -> None:  # noqa: ARG001
    # The job takes its input only after longer than one write's deadline.
    with make_executor(timeout=1) as executor:
        execution = executor.launch(JobSpec(IMAGE, ["sh", "-c", "sleep 3; wc -c"], stdin=True))
        try:
            _send_within(executor, execution, (b"y" * 65536 for _ in range(16)), 60)
            result = executor.harvest(execution)
        finally:
            executor.cleanup(execution)
    assert (result.state, result.logs.stdout.strip()) == (JobState.SUCCEEDED, str(MIB))


def test_send_stdin_to_a_job_launched_without_stdin_is_an_error(
    executor: DockerExecutor, run: Run
) -> None:
    execution = run(["sleep", "30"])
    with pytest.raises(ExecutorError, match=r"not launched with JobSpec\(stdin=True\)") as info:
        executor.send_stdin(execution, [b"hi\n"])
    assert info.value.job_id == execution.job_id
    assert info.value.executor == executor.name
    # Without stdin=True the job reads end-of-file at once, as before.
    assert executor.harvest(run(["cat"])).logs.stdout == ""


def test_send_stdin_to_an_unknown_job_is_an_error(executor: DockerExecutor, run: Run) -> None:
    execution = run(["true"], stdin=True)
    wait_terminal(executor, execution)
    executor.cleanup(execution)
    with pytest.raises(ExecutorError, match="no jobrelay container"):
        executor.send_stdin(execution, [b"hi\n"])


def test_a_chunk_that_is_not_bytes_is_refused(executor: DockerExecutor, run: Run) -> None:
    execution = run(["cat"], stdin=True)
    with pytest.raises(TypeError, match=r"chunks\[1\]: must be bytes, got str"):
        executor.send_stdin(execution, [b"kept\n", "text"])  # type: ignore[list-item]
    # The job's stdin is closed all the same: cat sees EOF after what was written.
    result = executor.harvest(execution)
    assert (result.state, result.logs.stdout) == (JobState.SUCCEEDED, "kept\n")


def test_stdin_over_tls(tls_dir: Path) -> None:
    tls = client_tls(tls_dir)
    with DockerExecutor(
        base_url=TLS_URL, tls=tls, pull_policy="never", stop_grace=1, labels=RUN_LABELS
    ) as executor:
        execution = executor.launch(JobSpec(IMAGE, ["sh", "-c", "cat; wc -c"], stdin=True))
        try:
            _send_within(executor, execution, [b"over tls\n"], 30)
            result = executor.harvest(execution)
        finally:
            executor.cleanup(execution)
    assert (result.state, result.logs.stdout) == (JobState.SUCCEEDED, "over tls\n0\n")
