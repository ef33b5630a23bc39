"""The jobrelay conformance kit, against boto3 over HTTP to moto's ECS and Logs."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import pytest

from fargate_fakes import MakeExecutor, MotoFargate
from jobrelay import Execution, JobSpec
from jobrelay.testing import ERR_MARKER, FAIL_EXIT_CODE, OUT_MARKER, ExecutorConformance, Scenario
from jobrelay_fargate import FargateExecutor

_EXIT_CODES = {Scenario.SUCCEED: 0, Scenario.FAIL: FAIL_EXIT_CODE}


class TestFargateConformance(ExecutorConformance):
    @pytest.fixture
    def executor(self, make_executor: MakeExecutor) -> FargateExecutor:
        return make_executor()

    @pytest.fixture
    def workload_labels(self, moto: MotoFargate) -> Callable[[Execution], Mapping[str, str]]:
        def labels(execution: Execution) -> Mapping[str, str]:
            answer: Any = moto.ecs.list_tags_for_resource(resourceArn=execution.execution_id)
            return {tag["key"]: tag["value"] for tag in answer["tags"]}

        return labels

    @pytest.fixture
    def wait_timeout(self) -> float:
        return 10.0

    @pytest.fixture
    def settle(
        self, moto: MotoFargate, executor: FargateExecutor
    ) -> Callable[[Execution, JobSpec], None]:
        """Do what the scenario's script would: write its two lines, exit with its code."""

        def settle(execution: Execution, job: JobSpec) -> None:
            scenario = Scenario(job.labels["conformance"])
            moto.set_status(execution.execution_id, "RUNNING")
            moto.write_logs(
                executor.log_group, execution.metadata["log_stream"], [OUT_MARKER, ERR_MARKER]
            )
            moto.finish(execution.execution_id, _EXIT_CODES[scenario])

        return settle
