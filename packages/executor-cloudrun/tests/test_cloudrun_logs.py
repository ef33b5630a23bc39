"""Logs from Cloud Logging: streams apart, paging, tail, following, the quota, late entries."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone

import pytest
from google.cloud.logging_v2 import _helpers
from google.cloud.logging_v2.handlers import _monitored_resources

from cloudrun_testing import MakeExecutor
from fake_gcp import FakeGCP
from jobrelay import (
    Execution,
    JobSpec,
    JobState,
    LogLine,
    ManualClock,
    RetryPolicy,
    TransientExecutorError,
)
from jobrelay_cloudrun import CloudRunExecutor


def _launch(executor: CloudRunExecutor, job_id: str) -> Execution:
    return executor.launch(JobSpec("busybox", "true", job_id=job_id))


def test_stdout_and_stderr_apart(executor: CloudRunExecutor, fake: FakeGCP) -> None:
    execution = _launch(executor, "streams")
    other = _launch(executor, "neighbour")
    fake.write_log(other.execution_id, "stdout", ["not mine"])
    fake.write_log(execution.execution_id, "varlog/system", ["Container started"])
    fake.finish(execution.execution_id, 0, stdout=["out 1", "out 2"], stderr=["err 1"])
    logs = executor.logs(execution)
    assert logs.stdout == "out 1\nout 2\n"
    assert logs.stderr == "err 1\n"
    assert not logs.truncated
    (call,) = fake.calls_of("logging.entries.list")
    text = call.body["filter"]
    assert 'resource.type = "cloud_run_job"' in text
    assert 'resource.labels.job_name = "jobrelay-streams"' in text
    assert 'labels."run.googleapis.com/execution_name" = "jobrelay-streams-' in text
    assert "timestamp >= " in text  # never the client's silent 24 h bound
    assert call.body["resourceNames"] == [f"projects/{fake.project}"]


def test_entries_older_than_a_day_are_still_read(executor: CloudRunExecutor, fake: FakeGCP) -> None:
    execution = _launch(executor, "old-output")
    week_ago = datetime.now(timezone.utc) - timedelta(days=7)
    old = Execution(
        execution.executor, execution.execution_id, execution.job_id, week_ago, execution.metadata
    )
    fake.write_log(execution.execution_id, "stdout", ["from last week"], when=week_ago)
    assert executor.logs(old).stdout == "from last week\n"


def test_log_paging(executor: CloudRunExecutor, fake: FakeGCP) -> None:
    execution = _launch(executor, "chatty")
    start = datetime.now(timezone.utc)
    lines = [f"line {index}" for index in range(2500)]
    for index, line in enumerate(lines):
        fake.write_log(
            execution.execution_id, "stdout", [line], when=start + timedelta(milliseconds=index)
        )
    fake.clear()
    logs = executor.logs(execution)
    assert logs.stdout.splitlines() == lines
    calls = fake.calls_of("logging.entries.list")
    assert len(calls) == 3  # 1000 per page
    assert [c.body.get("pageToken") for c in calls] == [None, "1000", "2000"]


def test_tail(executor: CloudRunExecutor, fake: FakeGCP) -> None:
    execution = _launch(executor, "tailed")
    start = datetime.now(timezone.utc)
    for index in range(10):
        when = start + timedelta(seconds=index)
        fake.write_log(execution.execution_id, "stdout", [f"out {index}"], when=when)
        fake.write_log(execution.execution_id, "stderr", [f"err {index}"], when=when)
    fake.clear()
    logs = executor.logs(execution, tail=3)
    assert logs.stdout == "out 7\nout 8\nout 9\n"
    assert logs.stderr == "err 7\nerr 8\nerr 9\n"
    calls = fake.calls_of("logging.entries.list")
    assert [(c.body["orderBy"], c.body["pageSize"]) for c in calls] == [("timestamp desc", 3)] * 2


def test_stream_follows_a_running_execution(executor: CloudRunExecutor, fake: FakeGCP) -> None:
    execution = _launch(executor, "followed")
    fake.start_execution(execution.execution_id)
    stream = executor.stream_logs(execution)
    moment = datetime.now(timezone.utc)
    fake.write_log(execution.execution_id, "stdout", ["first"], when=moment)
    assert next(stream) == LogLine("stdout", "first", moment)
    # A second entry with the very same timestamp must not be lost, the first not repeated.
    fake.write_log(execution.execution_id, "stderr", ["same instant"], when=moment)
    fake.finish(execution.execution_id, 0, stdout=["last"])
    rest = [(line.stream, line.text) for line in stream]
    assert rest == [("stderr", "same instant"), ("stdout", "last")]


class _DrivingClock(ManualClock):
    """Simulated time in which the targets print a line whenever anyone waits, and end at ``end``."""

    def __init__(self, fake: FakeGCP, end: float) -> None:
        super().__init__(now=time.time(), follow_real_time=False)
        self.fake = fake
        self.end = end
        self.targets: list[str] = []

    def sleep(self, seconds: float) -> None:
        super().sleep(seconds)
        when = datetime.fromtimestamp(self.time(), tz=timezone.utc)
        for target in self.targets:
            if "completionTime" in self.fake.executions[target]:
                continue
            self.fake.write_log(target, "stdout", [f"at {self.time():.1f}"], when=when)
            if self.time() >= self.end:
                self.fake.finish(target, 0)


def test_stream_logs_keep_inside_the_entries_list_quota(
    make_executor: MakeExecutor, fake: FakeGCP
) -> None:
    clock = _DrivingClock(fake, end=time.time() + 180)
    fake.timer = clock.time  # the fake's per-minute quota counts simulated time
    fake.logging_quota = 20  # (the real one is 60; smaller keeps the test short)
    # No retries: one 429 from the fake would end the stream with an error.
    executor = make_executor(
        clock=clock, poll_interval=0.1, logs_per_minute=20, retry=RetryPolicy(attempts=1)
    )
    executions = [_launch(executor, f"quota-{index}") for index in range(2)]
    clock.targets = [e.execution_id for e in executions]
    for execution in executions:
        fake.start_execution(execution.execution_id)
    fake.clear()
    streams: dict[int, Iterator[LogLine]] = {
        index: executor.stream_logs(e) for index, e in enumerate(executions)
    }
    received = dict.fromkeys(streams, 0)
    while streams:  # both streams followed in turn, in one thread: time is exact
        for index, stream in list(streams.items()):
            line = next(stream, None)
            if line is None:
                del streams[index]
            else:
                received[index] += 1
    times = [call.at for call in fake.calls_of("logging.entries.list")]
    # Polling every 0.1 s would be 1200 calls a minute for two streams; the shared
    # limiter keeps both together at 20 in any 60 s window, so the fake never says 429.
    assert 3 * 20 <= len(times) <= 4 * 20 + 2
    assert all(later - earlier >= 60.0 for earlier, later in zip(times, times[20:], strict=False))
    assert fake.count("logging.entries.list") == len(times)
    written = sum(1 for entry in fake.world.entries if entry["textPayload"].startswith("at "))
    assert sum(received.values()) == written  # every line reached its stream once


def test_harvest_waits_for_late_entries_then_says_truncated(
    make_executor: MakeExecutor, fake: FakeGCP
) -> None:
    clock = ManualClock(now=time.time())
    executor = make_executor(clock=clock, log_grace=10.0, poll_interval=2.0)
    execution = _launch(executor, "late")
    fake.finish(execution.execution_id, 0, stdout=["on time"])
    reads = 0

    def arrive_late(method: str) -> None:
        nonlocal reads
        if method == "logging.entries.list":
            reads += 1
            if reads >= 2:  # entries keep arriving after the end
                fake.write_log(execution.execution_id, "stdout", [f"late {reads}"])

    fake.on_call = arrive_late
    result = executor.harvest(execution)
    assert result.logs.stdout.startswith("on time\nlate 2\n")
    assert result.logs.truncated
    assert reads <= 1 + 10.0 / 2.0 + 1


def test_harvest_of_a_quiet_finished_job_is_not_truncated(
    make_executor: MakeExecutor, fake: FakeGCP
) -> None:
    clock = ManualClock(now=time.time())
    executor = make_executor(clock=clock, log_grace=10.0, poll_interval=2.0)
    execution = _launch(executor, "quiet")
    fake.finish(execution.execution_id, 0, stdout=["done"])
    result = executor.harvest(execution)
    assert result.logs.stdout == "done\n"
    assert not result.logs.truncated
    assert result.status.state is JobState.SUCCEEDED


def test_harvest_never_probes_the_metadata_server(
    executor: CloudRunExecutor, fake: FakeGCP, monkeypatch: pytest.MonkeyPatch
) -> None:
    def stall(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"the GCE metadata server was probed: {args} {kwargs}")

    monkeypatch.setattr(_helpers, "retrieve_metadata_server", stall)
    monkeypatch.setattr(_monitored_resources, "retrieve_metadata_server", stall)
    execution = _launch(executor, "no-stall")
    fake.finish(execution.execution_id, 0, stdout=["fast"], stderr=["also fast"])
    started = time.monotonic()
    result = executor.harvest(execution)
    assert time.monotonic() - started < 2.0
    assert result.logs.stdout == "fast\n"
    assert result.logs.stderr == "also fast\n"


def test_logging_429_is_retried(executor: CloudRunExecutor, fake: FakeGCP) -> None:
    execution = _launch(executor, "log-throttled")
    fake.finish(execution.execution_id, 0, stdout=["x"])
    fake.fail("logging.entries.list", 429, grpc_status="RESOURCE_EXHAUSTED")
    assert executor.logs(execution).stdout == "x\n"
    assert fake.count("logging.entries.list") == 2


def test_a_stalled_log_read_ends_within_its_deadline(
    make_executor: MakeExecutor, fake: FakeGCP
) -> None:
    executor = make_executor(request_timeout=0.5, retry=RetryPolicy(attempts=1))
    execution = _launch(executor, "stalled-logs")
    fake.fail("logging.entries.list", stall=30.0)
    started = time.monotonic()
    with pytest.raises(TransientExecutorError, match="ListLogEntries failed"):
        executor.logs(execution)
    assert time.monotonic() - started < 3.0
