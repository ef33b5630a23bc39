"""The jobrelay conformance kit, through the official SDK over HTTP to the fake."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping

import pytest

from conftest import MakeExecutor
from fake_scaleway import FakeScaleway
from jobrelay import Execution, JobSpec
from jobrelay.testing import ERR_MARKER, FAIL_EXIT_CODE, OUT_MARKER, ExecutorConformance, Scenario
from jobrelay_scaleway import ScalewayExecutor

_EXIT_CODES = {Scenario.SUCCEED: 0, Scenario.FAIL: FAIL_EXIT_CODE}


class TestScalewayConformance(ExecutorConformance):
    @pytest.fixture
    def executor(self, make_executor: MakeExecutor) -> ScalewayExecutor:
        return make_executor()

    @pytest.fixture
    def workload_labels(self, fake: FakeScaleway) -> Callable[[Execution], Mapping[str, str]]:
        def labels(execution: Execution) -> Mapping[str, str]:
            environment = fake.run(execution.execution_id)["environment_variables"]
            decoded: dict[str, str] = json.loads(environment["JOBRELAY_LABELS"])
            return decoded

        return labels

    @pytest.fixture
    def wait_timeout(self) -> float:
        return 10.0

    @pytest.fixture
    def settle(self, fake: FakeScaleway) -> Callable[[Execution, JobSpec], None]:
        """Do what the scenario's script would: print its two lines, exit with its code."""

        def settle(execution: Execution, job: JobSpec) -> None:
            scenario = Scenario(job.labels["conformance"])
            fake.set_state(execution.execution_id, "running")
            fake.write_logs(execution.execution_id, [OUT_MARKER, ERR_MARKER])
            fake.finish(execution.execution_id, _EXIT_CODES[scenario])

        return settle
