"""What result.json holds, straight from render()."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import attrs
import pytest

import jobrelay_archive
from jobrelay import Cost, Execution, JobResult, JobSpec, JobState, JobStatus, Logs
from jobrelay_archive._record import render
from jobrelay_archive._storage import Storage, is_transient, segment

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc)
EXECUTION = Execution(
    "fargate",
    "arn:aws:ecs:task/1",
    "job-1",
    T0,
    metadata={
        "jobrelay.route": {"executor": "fargate", "reason": "large memory", "hops": ()},
        "region": "eu-west-1",
        "seen": T0,
        "price": Decimal("1.5"),
    },
)
STATUS = JobStatus(
    JobState.TIMED_OUT, 137, "ran past 60s", T0 + timedelta(seconds=2), T0 + timedelta(seconds=62)
)


def _record(result: JobResult, job: JobSpec | None) -> dict[str, object]:
    files = dict(render(result.execution, result, job, now=T0 + timedelta(minutes=1)))
    assert list(files) == ["stdout.log", "stderr.log", "result.json"]
    record: dict[str, object] = json.loads(files["result.json"])
    return record


def test_result_json_fields() -> None:
    job = JobSpec("python:3.12", ["python", "-c", "pass"], name="nightly", timeout=60)
    cost = Cost(Decimal("0.0123"), "USD", Decimal("0.7380"), "fargate-prices 2024-05")
    result = JobResult(EXECUTION, STATUS, Logs("o", "e", truncated=True), 60.0, cost, 2, job)
    record = _record(result, job)
    assert record == {
        "format": jobrelay_archive.FORMAT,
        "job_id": "job-1",
        "executor": "fargate",
        "execution_id": "arn:aws:ecs:task/1",
        "state": "timed_out",
        "exit_code": 137,
        "reason": "ran past 60s",
        "launched_at": "2024-05-01T12:00:00+00:00",
        "started_at": "2024-05-01T12:00:02+00:00",
        "finished_at": "2024-05-01T12:01:02+00:00",
        "archived_at": "2024-05-01T12:01:00+00:00",
        "duration": 60.0,
        "attempts": 2,
        "cost": {
            "amount": "0.0123",
            "currency": "USD",
            "rate_per_hour": "0.7380",
            "source": "fargate-prices 2024-05",
        },
        "route": {"executor": "fargate", "reason": "large memory", "hops": []},
        "logs": {"stdout": "stdout.log", "stderr": "stderr.log", "truncated": True},
        "job": {
            "name": "nightly",
            "image": "python:3.12",
            "command": ["python", "-c", "pass"],
            "entrypoint": None,
            "labels": {},
            "resources": {"cpu": 1.0, "memory_mb": 512, "gpu": 0},
            "timeout": 60.0,
            "max_retries": 0,
            "preferred_executor": None,
        },
        "execution_metadata": {
            "region": "eu-west-1",
            "seen": "2024-05-01T12:00:00+00:00",
            "price": "1.5",
        },
    }


def test_reattached_execution_without_job_or_cost() -> None:
    result = JobResult(EXECUTION, JobStatus(JobState.LOST), Logs(), float("nan"))
    record = _record(result, None)
    assert record["job"] is None
    assert record["cost"] is None
    assert record["duration"] is None  # NaN is not JSON
    assert record["attempts"] == 1


def test_secret_keys_and_values_are_masked_everywhere() -> None:
    job = JobSpec("busybox", ["echo", "s3cr3t v4lue"], secrets={"K": "s3cr3t v4lue"})
    execution = attrs.evolve(EXECUTION, metadata={"s3cr3t v4lue": ["x s3cr3t v4lue"]})
    status = JobStatus(JobState.FAILED, 1, "auth 's3cr3t v4lue' refused")
    result = JobResult(execution, status, Logs("s3cr3t v4lue\n", "s3cr3t%20v4lue"), job=job)
    files = render(execution, result, job)
    for _, data in files:
        assert b"s3cr3t" not in data
    record = json.loads(files[2][1])
    assert record["execution_metadata"] == {"***": ["x ***"]}
    assert record["reason"] == "auth '***' refused"
    assert record["job"]["command"] == ["echo", "***"]


@pytest.mark.parametrize(
    ("error", "transient"),
    [
        (ConnectionResetError(), True),
        (TimeoutError(), True),
        (OSError(5, "Internal error"), True),
        (RuntimeError("endpoint connection failed"), True),
        (PermissionError("Access Denied"), False),
        (FileNotFoundError("NoSuchBucket"), False),
        (NotADirectoryError(), False),
        (ValueError("bad path"), False),
        (KeyboardInterrupt(), False),
    ],
)
def test_error_classification(error: BaseException, transient: bool) -> None:
    assert is_transient(error) is transient


@pytest.mark.parametrize(
    ("name", "safe"),
    [("mock", "mock"), ("a/b", "a_b"), ("..", "_"), ("", "_"), ("job.1-x_y", "job.1-x_y")],
)
def test_path_segments_are_safe(name: str, safe: str) -> None:
    assert segment(name) == safe


def test_public_names() -> None:
    assert set(jobrelay_archive.__all__) == {
        "Archive",
        "ArchivePlugin",
        "ArchiveStats",
        "DEFAULT_RETRY",
        "ENV_QUEUE_SIZE",
        "ENV_URL",
        "ENV_WHEN_FULL",
        "FORMAT",
        "close",
        "configure",
        "current",
        "flush",
        "plugin",
    }


def test_s3_gets_deadlines_and_no_sdk_retries_unless_told_otherwise() -> None:
    storage = Storage("s3://bucket/jobs", {"key": "k", "secret": "s"})
    assert storage.object_store
    assert storage.root == "bucket/jobs"
    assert storage.fs.config_kwargs == {
        "connect_timeout": 10,
        "read_timeout": 60,
        "retries": {"max_attempts": 1},
    }
    given = {"config_kwargs": {"read_timeout": 5, "retries": {"mode": "standard"}}}
    storage = Storage("s3://bucket/jobs", {"key": "k", "secret": "s", **given})
    assert storage.fs.config_kwargs == {
        "connect_timeout": 10,
        "read_timeout": 5,
        "retries": {"max_attempts": 1, "mode": "standard"},
    }


def test_local_storage_renames_into_place(tmp_path: Path) -> None:
    storage = Storage(tmp_path.as_uri())
    assert storage.local
    assert not storage.object_store
    storage.write(storage.path("a", "b.txt"), b"one")
    storage.write(storage.path("a", "b.txt"), b"two")
    assert [p.name for p in (tmp_path / "a").iterdir()] == ["b.txt"]
    assert (tmp_path / "a" / "b.txt").read_bytes() == b"two"
