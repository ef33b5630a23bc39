"""The bounded queue: drop or block when full, flush and close lose nothing accepted."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

import pytest

from conftest import FILES, Gate, jobs, read_tree, run_jobs
from jobrelay import Execution, Hooks, JobResult, JobState, JobStatus, Logs
from jobrelay_archive import Archive, ArchivePlugin, ArchiveStats


def _result(job_id: str) -> tuple[Execution, JobResult]:
    execution = Execution("mock", f"mock-{job_id}", job_id, datetime.now(timezone.utc))
    return execution, JobResult(execution, JobStatus(JobState.SUCCEEDED, 0), Logs("out\n"))


def _written_jobs(root: Path) -> set[str]:
    return {path.parent.name for path in root.rglob("result.json")}


def test_drop_policy_never_waits_and_counts_each_drop(
    tmp_path: Path, gate: Callable[[Archive], Gate], caplog: pytest.LogCaptureFixture
) -> None:
    archive = Archive(tmp_path.as_uri(), queue_size=3, when_full="drop")
    held = gate(archive)
    with caplog.at_level(logging.WARNING, "jobrelay.archive"):
        started = time.monotonic()
        # One in the writer's hands, three queued, the rest refused at once.
        accepted = [archive.submit(*_result(f"job-{i}")) for i in range(10)]
        assert time.monotonic() - started < 1.0
    # The writer may not have taken the first one yet when the rest came in.
    assert accepted[:3] == [True, True, True]
    assert sum(accepted) in (3, 4)
    assert archive.stats().dropped == 10 - sum(accepted)
    assert "queue full, job job-" in caplog.text
    assert "not archived" in caplog.text
    held.open()
    assert archive.close(10)
    stats = archive.stats()
    assert stats == ArchiveStats(
        accepted=sum(accepted), written=sum(accepted), dropped=10 - sum(accepted), pending=0
    )
    assert _written_jobs(tmp_path) == {f"job-{i}" for i, ok in enumerate(accepted) if ok}


def test_a_stuck_storage_never_holds_the_runner_under_drop(
    tmp_path: Path, gate: Callable[[Archive], Gate]
) -> None:
    archive = Archive(tmp_path.as_uri(), queue_size=2, when_full="drop", shutdown_timeout=0.5)
    held = gate(archive)  # every write waits until the end of the test
    started = time.monotonic()
    results = run_jobs(archive, jobs(20))
    assert time.monotonic() - started < 20
    assert [r.state for r in results] == [JobState.SUCCEEDED] * 20
    stats = archive.stats()
    assert stats.accepted + stats.dropped == 20
    assert stats.dropped >= 17
    assert stats.written == 0
    held.open()
    assert archive.close(10)
    assert len(_written_jobs(tmp_path)) == stats.accepted


def test_drop_warnings_are_rate_limited(
    tmp_path: Path, gate: Callable[[Archive], Gate], caplog: pytest.LogCaptureFixture
) -> None:
    archive = Archive(tmp_path.as_uri(), queue_size=1, when_full="drop")
    held = gate(archive)
    with caplog.at_level(logging.WARNING, "jobrelay.archive"):
        for i in range(200):
            archive.submit(*_result(f"job-{i}"))
    assert archive.stats().dropped >= 198
    assert len([r for r in caplog.records if "queue full" in r.getMessage()]) == 1
    held.open()
    archive.close(10)


def test_block_policy_waits_for_room(tmp_path: Path, gate: Callable[[Archive], Gate]) -> None:
    archive = Archive(tmp_path.as_uri(), queue_size=2, when_full="block")
    held = gate(archive)
    for i in range(3):  # one may be in the writer's hands, two queued
        archive.submit(*_result(f"job-{i}"))
    done = threading.Event()

    def producer() -> None:
        archive.submit(*_result("job-late"))
        archive.submit(*_result("job-later"))
        done.set()

    thread = threading.Thread(target=producer)
    thread.start()
    assert not done.wait(0.3), "submit did not block on a full queue"
    held.open()
    assert done.wait(10)
    thread.join()
    assert archive.close(10)
    assert archive.stats().dropped == 0
    assert _written_jobs(tmp_path) == {"job-0", "job-1", "job-2", "job-late", "job-later"}


def test_block_timeout_then_drop(tmp_path: Path, gate: Callable[[Archive], Gate]) -> None:
    archive = Archive(tmp_path.as_uri(), queue_size=1, when_full="block", block_timeout=0.2)
    held = gate(archive)
    results = [archive.submit(*_result(f"job-{i}")) for i in range(4)]
    assert results.count(False) >= 2
    assert archive.stats().dropped == results.count(False)
    held.open()
    assert archive.close(10)


def test_submit_after_close_is_a_counted_drop(tmp_path: Path) -> None:
    archive = Archive(tmp_path.as_uri())
    assert archive.close()
    assert archive.close()  # idempotent
    assert not archive.submit(*_result("late"))
    assert archive.stats().dropped == 1


def test_shutdown_with_a_full_queue_flushes_everything(
    tmp_path: Path, gate: Callable[[Archive], Gate]
) -> None:
    """Jobs finish much faster than storage writes: the queue fills, close waits."""
    archive = Archive(tmp_path.as_uri(), queue_size=4, when_full="block")
    held = gate(archive)
    release = threading.Timer(1.0, held.open)
    release.start()
    try:
        results = run_jobs(archive, jobs(24))
    finally:
        release.join()
    assert archive.close(30)
    tree = read_tree(tmp_path)
    assert len(tree) == 24 * len(FILES)
    assert _written_jobs(tmp_path) == {r.execution.job_id for r in results}
    assert archive.stats().written == 24
    assert archive.stats().dropped == 0


def test_runner_shutdown_hook_flushes(tmp_path: Path, gate: Callable[[Archive], Gate]) -> None:
    archive = Archive(tmp_path.as_uri())
    hooks = Hooks(load_entry_points=False)
    hooks.register(ArchivePlugin(archive))
    hooks.manager.check_pending()
    held = gate(archive)
    for i in range(5):
        archive.submit(*_result(f"job-{i}"))
    release = threading.Timer(0.3, held.open)
    release.start()
    hooks.emit("runner_shutdown", runner=None)
    release.join()
    assert archive.stats().pending == 0
    assert len(_written_jobs(tmp_path)) == 5
    archive.close()


EXIT_SCRIPT = """
import sys, time
import jobrelay_archive
from jobrelay import JobSpec, Router, Runner
from jobrelay_mock import MockExecutor

archive = jobrelay_archive.configure(sys.argv[1], queue_size=20, when_full="block")
original = archive.storage.write

def slow_write(path, data):
    time.sleep(0.01)
    original(path, data)

archive.storage.write = slow_write
router = Router([MockExecutor()], default="mock")
# Never shut down: a Runner's shutdown flushes the archive, and this is about exit.
runner = Runner(router, poll_interval=0.05)
runner.run([JobSpec("busybox", "true", name=f"job-{i}") for i in range(60)])
print(archive.stats().pending, flush=True)
# No flush, no close: the interpreter-exit handler must write the rest.
"""


@pytest.mark.parametrize(
    "ending",
    ["", "from jobrelay._cli import exit_now\nexit_now(0)\n"],
    ids=["python-exit", "jobrelay-command-exit"],
)
def test_interpreter_exit_flushes_a_full_queue(tmp_path: Path, ending: str) -> None:
    # The `jobrelay` command ends through exit_now (no module teardown): the same flush.
    script = tmp_path / "exit_script.py"
    script.write_text(textwrap.dedent(EXIT_SCRIPT) + ending)
    root = tmp_path / "archive"
    env = {**os.environ, "PYTHONWARNINGS": "error"}
    env.pop("JOBRELAY_ARCHIVE_URL", None)
    proc = subprocess.run(
        [sys.executable, str(script), root.as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr
    assert int(proc.stdout) >= 10, "the queue was not full at exit: the test proves nothing"
    results = list(root.rglob("result.json"))
    assert len(results) == 60
    assert all(json.loads(path.read_bytes())["state"] == "succeeded" for path in results)
