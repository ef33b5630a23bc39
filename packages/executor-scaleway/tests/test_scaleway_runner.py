"""Router + Runner end to end on the fake: mixed exit codes, results in order, costs."""

from __future__ import annotations

import json

from conftest import MakeExecutor
from fake_scaleway import FakeScaleway
from jobrelay import JobSpec, JobState, Router, Runner
from jobrelay.labels import OWNER


def test_router_and_runner_with_mixed_exit_codes(
    make_executor: MakeExecutor, fake: FakeScaleway
) -> None:
    fake.autopilot = lambda env: (int(env.get("EXIT", "0")), [f"job {env.get('N')} says hi"])
    executor = make_executor()
    codes = [0, 3, 0, 1, 0, 7]
    jobs = [
        JobSpec("busybox", "sh -c 'exit $EXIT'", env={"EXIT": str(code), "N": str(index)})
        for index, code in enumerate(codes)
    ]
    with (
        Router([executor], default="scaleway") as router,
        Runner(router, poll_interval=0.05, owner="ci-runner") as runner,
    ):
        results = runner.run(jobs)
    assert [result.exit_code for result in results] == codes
    assert [result.state for result in results] == [
        JobState.SUCCEEDED if code == 0 else JobState.FAILED for code in codes
    ]
    for index, result in enumerate(results):
        assert result.logs.stdout == f"job {index} says hi\n"
        assert result.cost is not None
        assert result.execution.executor == "scaleway"
    labels = [
        json.loads(run.data["environment_variables"]["JOBRELAY_LABELS"])
        for run in fake.runs.values()
    ]
    assert {label[OWNER] for label in labels} == {"ci-runner"}
    assert len(fake.runs) == len(jobs)
    assert fake.calls["CreateJobDefinition"] == 1


def test_reconcile_adopts_only_its_owners_runs(
    make_executor: MakeExecutor, fake: FakeScaleway
) -> None:
    executor = make_executor()
    mine = executor.launch(JobSpec("busybox", "true", labels={OWNER: "host-a"}))
    theirs = executor.launch(JobSpec("busybox", "true", labels={OWNER: "host-b"}))
    assert mine.metadata["owner"] == "host-a"
    fake.autopilot = lambda _env: (0, ["adopted"])
    fresh = make_executor()  # a new process: nothing remembered
    with (
        Router([fresh], default="scaleway") as router,
        Runner(router, poll_interval=0.05, owner="host-a") as runner,
    ):
        handles = runner.reconcile()
        adopted = [handle.execution for handle in handles]
        assert [e.execution_id for e in adopted if e is not None] == [mine.execution_id]
        result = handles[0].result(timeout=30)
    assert result.state is JobState.SUCCEEDED
    assert result.logs.stdout == "adopted\n"
    assert theirs.execution_id not in {e.execution_id for e in adopted if e is not None}
    assert fake.calls["StopJobRun"] == 0
