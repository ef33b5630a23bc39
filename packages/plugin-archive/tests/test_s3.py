"""S3 through s3fs against moto's server over HTTP, including a storage outage."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import threading
from datetime import datetime, timezone
from pathlib import Path

import pytest

from conftest import FAST_RETRY, FILES, S3Server, jobs, run_jobs
from jobrelay import Execution, JobResult, JobState, JobStatus, Logs, RetryPolicy
from jobrelay_archive import Archive


def test_jobs_are_archived_to_s3(s3: S3Server, bucket: str) -> None:
    archive = Archive(f"s3://{bucket}/runs/ci", storage_options=s3.storage_options())
    results = run_jobs(archive, jobs(3))
    assert archive.close(30)
    objects = s3.objects(bucket)
    expected = {f"runs/ci/mock/{r.execution.job_id}/{name}" for r in results for name in FILES}
    assert set(objects) == expected
    for result in results:
        base = f"runs/ci/mock/{result.execution.job_id}"
        assert objects[f"{base}/stdout.log"].decode() == result.logs.stdout
        record = json.loads(objects[f"{base}/result.json"])
        assert (record["state"], record["exit_code"]) == ("succeeded", 0)
        assert result.job is not None
        assert record["job"]["name"] == result.job.name
    assert archive.stats().written == 3


def test_outage_while_jobs_finish_loses_nothing(s3: S3Server, bucket: str) -> None:
    """moto goes away while jobs finish, comes back on the same port: all written."""
    archive = Archive(f"s3://{bucket}/jobs", storage_options=s3.storage_options(), retry=FAST_RETRY)
    run_jobs(archive, jobs(1))  # a warm connection pool, as in a running service
    assert archive.flush(30)
    s3.stop()
    comeback = threading.Timer(2.0, s3.start)
    comeback.start()
    try:
        results = run_jobs(archive, jobs(8))
        assert archive.close(60)
    finally:
        comeback.join()
    stats = archive.stats()
    assert stats.transient_errors > 0
    assert (stats.failed, stats.dropped, stats.written) == (0, 0, 9)
    objects = s3.objects(bucket)
    for result in results:
        for name in FILES:
            assert f"jobs/mock/{result.execution.job_id}/{name}" in objects
    assert len(objects) == 9 * len(FILES)


def test_outage_longer_than_the_retry_budget_is_reported(
    s3: S3Server, bucket: str, caplog: pytest.LogCaptureFixture
) -> None:
    archive = Archive(
        f"s3://{bucket}/jobs",
        storage_options=s3.storage_options(),
        retry=RetryPolicy(attempts=3, timeout=5, initial=0.01, maximum=0.02, jitter=0),
    )
    s3.stop()
    try:
        with caplog.at_level(logging.ERROR, "jobrelay.archive"):
            for i in range(3):
                execution = Execution("mock", f"m-{i}", f"job-{i}", datetime.now(timezone.utc))
                archive.submit(execution, JobResult(execution, JobStatus(JobState.FAILED), Logs()))
            assert archive.close(60)
    finally:
        s3.start()
    stats = archive.stats()
    assert (stats.accepted, stats.written, stats.failed) == (3, 0, 3)
    # The first job used its whole budget; closing on a dead store, the others get
    # one try each rather than a budget each.
    assert stats.transient_errors == 3 + 1 + 1
    assert s3.objects(bucket) == {}
    assert "job job-2 on mock not archived: TransientExecutorError" in caplog.text


EXIT_SCRIPT = """
import json, sys, time
import jobrelay_archive
from jobrelay import JobSpec, Router, Runner
from jobrelay_mock import MockExecutor

url, options = sys.argv[1], json.loads(sys.argv[2])
archive = jobrelay_archive.configure(url, queue_size=20, when_full="block", storage_options=options)
original = archive.storage.write

def slow_write(path, data):
    time.sleep(0.01)
    original(path, data)

archive.storage.write = slow_write
# Never shut down: a Runner's shutdown flushes the archive, and this is about exit.
runner = Runner(Router([MockExecutor()], default="mock"), poll_interval=0.05)
runner.run([JobSpec("busybox", "true", name=f"job-{i}") for i in range(40)])
print(archive.stats().pending, flush=True)
"""


def test_interpreter_exit_flushes_a_full_queue_to_s3(
    s3: S3Server, bucket: str, tmp_path: Path
) -> None:
    """s3fs tears its sessions down at exit too: the archive must get there first."""
    script = tmp_path / "exit_script.py"
    script.write_text(EXIT_SCRIPT)
    proc = subprocess.run(
        [sys.executable, str(script), f"s3://{bucket}/x", json.dumps(s3.storage_options())],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, "PYTHONWARNINGS": "error"},
    )
    assert proc.returncode == 0, proc.stderr
    assert int(proc.stdout) >= 10, "the queue was not full at exit: the test proves nothing"
    assert "not archived" not in proc.stderr
    objects = s3.objects(bucket)
    assert len([key for key in objects if key.endswith("result.json")]) == 40
    assert len(objects) == 40 * len(FILES)
