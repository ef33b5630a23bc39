"""Logs: CloudWatch paging, tail, following a running task, streams not there yet."""

from __future__ import annotations

import threading
import time

from fargate_fakes import MotoFargate, WireProxy
from jobrelay import Execution, JobSpec, JobState
from jobrelay_fargate import FargateExecutor


def _launch(executor: FargateExecutor) -> Execution:
    return executor.launch(JobSpec("busybox:1.36", ["sh", "-c", "seq 25000"]))


def _write(
    moto: MotoFargate, executor: FargateExecutor, execution: Execution, lines: list[str]
) -> None:
    moto.write_logs(executor.log_group, execution.metadata["log_stream"], lines)


def test_log_stream_name_is_prefix_container_task_id(executor: FargateExecutor) -> None:
    execution = _launch(executor)
    task_id = execution.execution_id.rsplit("/", 1)[-1]
    assert execution.metadata["log_stream"] == f"jobrelay/main/{task_id}"
    assert execution.metadata["log_group"] == "/jobrelay"


def test_logs_page_until_the_forward_token_repeats(
    executor: FargateExecutor, moto: MotoFargate, proxy: WireProxy
) -> None:
    execution = _launch(executor)
    lines = [f"line {i}" for i in range(25_000)]
    _write(moto, executor, execution, lines)
    moto.finish(execution.execution_id, 0)
    proxy.clear()
    logs = executor.logs(execution)
    assert logs.stdout.splitlines() == lines
    assert logs.stderr == ""
    assert not logs.truncated
    pages = proxy.ops("GetLogEvents")
    # 10 000 + 10 000 + 5 000, then one call that returns the token it was given
    assert len(pages) == 4
    assert "nextToken" not in pages[0].body
    assert all(page.body["startFromHead"] for page in pages)
    sent = [page.body.get("nextToken") for page in pages]
    assert sent[0] is None
    assert len(set(sent)) == 4


def test_tail_reads_backwards_only_what_it_needs(
    executor: FargateExecutor, moto: MotoFargate, proxy: WireProxy
) -> None:
    execution = _launch(executor)
    lines = [f"line {i}" for i in range(12_000)]
    _write(moto, executor, execution, lines)
    proxy.clear()
    short = executor.logs(execution, tail=3)
    assert short.stdout.splitlines() == lines[-3:]
    assert short.truncated
    assert proxy.count("GetLogEvents") == 1
    long = executor.logs(execution, tail=11_000)
    assert long.stdout.splitlines() == lines[-11_000:]
    assert long.truncated
    everything = executor.logs(execution, tail=50_000)
    assert everything.stdout.splitlines() == lines
    assert not everything.truncated


def test_logs_before_the_stream_exists_are_empty(executor: FargateExecutor) -> None:
    execution = _launch(executor)
    logs = executor.logs(execution)
    assert logs.stdout == ""
    assert not logs.truncated
    assert executor.logs(execution, tail=5).stdout == ""


def test_stream_logs_follows_until_the_task_stops(
    executor: FargateExecutor, moto: MotoFargate
) -> None:
    execution = _launch(executor)
    stream = execution.metadata["log_stream"]

    def container() -> None:
        time.sleep(0.05)
        moto.set_status(execution.execution_id, "RUNNING")
        for batch in (["one", "two"], ["three"]):
            time.sleep(0.05)
            moto.write_logs(executor.log_group, stream, batch)
        time.sleep(0.05)
        moto.finish(execution.execution_id, 0)

    worker = threading.Thread(target=container)
    worker.start()
    lines = list(executor.stream_logs(execution))
    worker.join()
    assert [line.text for line in lines] == ["one", "two", "three"]
    assert {line.stream for line in lines} == {"stdout"}
    assert all(line.timestamp is not None for line in lines)
    assert executor.status(execution).state is JobState.SUCCEEDED
