"""Output from Cockpit's Loki: found through Cockpit, read in pages, followed by cursor."""

from __future__ import annotations

import logging

import pytest

from conftest import MakeExecutor
from fake_scaleway import FakeScaleway
from jobrelay import ExecutorError, JobSpec, ManualClock
from jobrelay_scaleway import ScalewayExecutor


def test_logs_url_found_through_cockpit(make_executor: MakeExecutor, fake: FakeScaleway) -> None:
    executor = make_executor(logs_url=None)
    execution = executor.launch(JobSpec("busybox", "true"))
    fake.write_logs(execution.execution_id, ["one", "two"])
    assert executor.logs(execution).stdout == "one\ntwo\n"
    assert executor.logs(execution).stdout == "one\ntwo\n"
    assert fake.calls["ListDataSources"] == 1
    [(_, path, _)] = [r for r in fake.requests if r[0] == "ListDataSources"]
    assert "types=logs" in path
    assert "origin=scaleway" in path


def test_no_logs_data_source_is_an_error(make_executor: MakeExecutor, fake: FakeScaleway) -> None:
    executor = make_executor(logs_url=None)
    execution = executor.launch(JobSpec("busybox", "true"))
    saved = list(fake.data_sources)
    fake.data_sources.clear()
    try:
        with pytest.raises(ExecutorError, match="no Cockpit logs data source"):
            executor.logs(execution)
    finally:
        fake.data_sources.extend(saved)


def test_logs_are_one_run_only_and_tail(executor: ScalewayExecutor, fake: FakeScaleway) -> None:
    first = executor.launch(JobSpec("busybox", "echo 1"))
    second = executor.launch(JobSpec("busybox", "echo 2"))
    fake.write_logs(first.execution_id, ["a", "b", "c"])
    fake.write_logs(second.execution_id, ["z"])
    assert executor.logs(first).stdout == "a\nb\nc\n"
    assert executor.logs(first, tail=2).stdout == "b\nc\n"
    assert executor.logs(first, tail=0).stdout == ""
    assert executor.logs(second).stderr == ""
    assert not executor.capabilities().log_split


def test_long_output_is_read_in_pages(executor: ScalewayExecutor, fake: FakeScaleway) -> None:
    execution = executor.launch(JobSpec("busybox", "true"))
    lines = [f"line {index}" for index in range(12_001)]
    fake.write_logs(execution.execution_id, lines)
    fake.calls.clear()
    logs = executor.logs(execution)
    assert logs.stdout.splitlines() == lines
    assert not logs.truncated
    assert fake.calls["LokiQueryRange"] == 3


def test_stream_logs_follows_until_the_end(make_executor: MakeExecutor, fake: FakeScaleway) -> None:
    executor = make_executor()
    execution = executor.launch(JobSpec("busybox", "true"))
    fake.set_state(execution.execution_id, "running")
    fake.write_logs(execution.execution_id, ["first"])
    stream = executor.stream_logs(execution)
    assert next(stream).text == "first"
    fake.write_logs(execution.execution_id, ["second", "third"])
    fake.finish(execution.execution_id, 0)
    rest = list(stream)
    assert [line.text for line in rest] == ["second", "third"]
    assert {line.stream for line in rest} == {"stdout"}
    assert all(line.timestamp is not None for line in rest)


def test_harvest_waits_out_the_log_grace(make_executor: MakeExecutor, fake: FakeScaleway) -> None:
    clock = ManualClock()
    executor = make_executor(log_grace=30.0, clock=clock)
    execution = executor.launch(JobSpec("busybox", "true"))
    fake.write_logs(execution.execution_id, ["late"])
    fake.finish(execution.execution_id, 0)
    before = clock.time()
    result = executor.harvest(execution)
    assert 25 < clock.time() - before <= 31
    assert result.logs.stdout == "late\n"


def test_without_token_logs_are_empty_with_one_warning(
    make_executor: MakeExecutor, fake: FakeScaleway, caplog: pytest.LogCaptureFixture
) -> None:
    executor = make_executor(logs_token=None)
    execution = executor.launch(JobSpec("busybox", "true"))
    fake.write_logs(execution.execution_id, ["hidden"])
    with caplog.at_level(logging.WARNING, logger="jobrelay.scaleway"):
        assert executor.logs(execution).stdout == ""
        assert executor.logs(execution).stdout == ""
    assert [r.getMessage() for r in caplog.records].count(
        "no logs_token: Serverless Jobs output cannot be read"
    ) == 1
    assert fake.calls["LokiQueryRange"] == 0


def test_wrong_token_is_an_error_without_the_token(make_executor: MakeExecutor) -> None:
    executor = make_executor(logs_token="not-the-right-token")
    execution = executor.launch(JobSpec("busybox", "true"))
    with pytest.raises(ExecutorError, match="HTTP 401") as caught:
        executor.logs(execution)
    assert "not-the-right-token" not in str(caught.value)


def test_loki_503_is_retried(executor: ScalewayExecutor, fake: FakeScaleway) -> None:
    execution = executor.launch(JobSpec("busybox", "true"))
    fake.write_logs(execution.execution_id, ["ok"])
    fake.inject("LokiQueryRange", status=503)
    assert executor.logs(execution).stdout == "ok\n"
    assert fake.calls["LokiQueryRange"] == 2
