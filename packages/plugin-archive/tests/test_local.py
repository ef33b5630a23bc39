"""The archive on the local filesystem, fed by a Runner on the mock."""

from __future__ import annotations

import json
import logging
import threading
from datetime import datetime, timezone
from pathlib import Path

import pytest

from conftest import FILES, jobs, read_tree, run_jobs
from jobrelay import (
    ConfigError,
    Execution,
    JobResult,
    JobSpec,
    JobState,
    JobStatus,
    Logs,
    RetryPolicy,
)
from jobrelay_archive import Archive


def test_every_finished_job_is_written_whole(tmp_path: Path) -> None:
    archive = Archive(tmp_path.as_uri())
    results = run_jobs(archive, [*jobs(3), JobSpec("busybox", "false", labels={"exit": "3"})])
    assert archive.close(10)
    tree = read_tree(tmp_path)
    assert sorted(tree) == sorted(f"mock/{r.execution.job_id}/{f}" for r in results for f in FILES)
    for result in results:
        base = f"mock/{result.execution.job_id}"
        assert tree[f"{base}/stdout.log"].decode() == result.logs.stdout
        assert tree[f"{base}/stderr.log"].decode() == result.logs.stderr
        record = json.loads(tree[f"{base}/result.json"])
        assert record["format"] == "jobrelay-archive/1"
        assert record["job_id"] == result.execution.job_id
        assert record["executor"] == "mock"
        assert record["execution_id"] == result.execution.execution_id
        assert record["state"] == result.state.value
        assert record["exit_code"] == result.exit_code
        assert record["attempts"] == result.attempts == 1
        assert record["duration"] == result.duration
        assert datetime.fromisoformat(record["launched_at"]) == result.execution.launched_at
        assert datetime.fromisoformat(record["finished_at"]) == result.status.finished_at
        assert record["route"]["executor"] == "mock"
        assert record["route"]["reason"] == "default"
        assert record["route"]["hops"] == [["mock", "launched"]]
        assert record["job"]["image"] == "busybox"
        assert record["logs"] == {
            "stdout": "stdout.log",
            "stderr": "stderr.log",
            "truncated": False,
        }
    states = sorted(
        json.loads(tree[f"mock/{r.execution.job_id}/result.json"])["state"] for r in results
    )
    assert states == ["failed", "succeeded", "succeeded", "succeeded"]
    assert archive.stats().written == 4
    assert archive.stats().pending == 0


def test_plain_path_works_like_file_url(tmp_path: Path) -> None:
    archive = Archive(str(tmp_path / "nested" / "root"))
    [result] = run_jobs(archive, jobs(1))
    archive.close(10)
    assert (tmp_path / "nested/root/mock" / result.execution.job_id / "result.json").is_file()


def test_result_json_is_written_last(tmp_path: Path) -> None:
    archive = Archive(tmp_path.as_uri())
    order: list[str] = []
    original = archive.storage.write

    def write(path: str, data: bytes) -> None:
        original(path, data)
        order.append(path.rsplit("/", 1)[1])

    archive.storage.write = write  # type: ignore[method-assign]
    run_jobs(archive, jobs(2))
    archive.close(10)
    assert order == ["stdout.log", "stderr.log", "result.json"] * 2


def _big_result(job_id: str, text: str) -> tuple[Execution, JobResult]:
    execution = Execution("mock", f"x-{job_id}", job_id, datetime.now(timezone.utc))
    status = JobStatus(JobState.SUCCEEDED, 0, reason=text)
    return execution, JobResult(execution, status, Logs(text * 4, text))


def test_readers_never_see_a_half_written_object(tmp_path: Path) -> None:
    """Overwrite the same job's objects while a reader parses them: always whole."""
    archive = Archive(tmp_path.as_uri(), queue_size=10, when_full="block")
    target = tmp_path / "mock" / "same-job" / "result.json"
    stop = threading.Event()
    seen: list[int] = []
    errors: list[Exception] = []

    def reader() -> None:
        while not stop.is_set():
            try:
                data = target.read_bytes()
            except FileNotFoundError:
                continue
            try:
                seen.append(len(json.loads(data)["reason"]))
            except ValueError as exc:  # a torn write
                errors.append(exc)

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        for size in range(40):
            archive.submit(*_big_result("same-job", "x" * (50_000 + size * 1000)))
        assert archive.flush(30)
    finally:
        stop.set()
        thread.join()
        archive.close()
    assert errors == []
    assert seen, "the reader never saw the file"
    # No temporary file left behind.
    assert sorted(path.name for path in target.parent.iterdir()) == sorted(FILES)
    assert json.loads(target.read_bytes())["reason"] == "x" * 89_000


def test_permanent_error_is_not_retried(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the archive root should be")
    archive = Archive(blocker.as_uri(), retry=RetryPolicy(attempts=5, initial=5.0))
    with caplog.at_level(logging.ERROR, "jobrelay.archive"):
        archive.submit(*_big_result("job-1", "out"))
        assert archive.close(10)
    stats = archive.stats()
    assert (stats.accepted, stats.written, stats.failed, stats.transient_errors) == (1, 0, 1, 0)
    assert "job job-1 on mock not archived" in caplog.text


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"url": ""}, "url"),
        ({"url": "nosuchprotocol://bucket/x"}, "url"),
        ({"url": "/tmp/x", "queue_size": 0}, "queue_size"),
        ({"url": "/tmp/x", "queue_size": True}, "queue_size"),
        ({"url": "/tmp/x", "when_full": "sometimes"}, "when_full"),
        ({"url": "/tmp/x", "block_timeout": -1}, "block_timeout"),
        ({"url": "/tmp/x", "exit_timeout": float("nan")}, "exit_timeout"),
        ({"url": "/tmp/x", "retry": 3}, "retry"),
    ],
)
def test_bad_configuration_names_the_field(kwargs: dict[str, object], field: str) -> None:
    with pytest.raises(ConfigError, match=f"^{field}: "):
        Archive(**kwargs)  # type: ignore[arg-type]
