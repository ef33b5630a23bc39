"""The jobrelay conformance kit, against run_v2 and Cloud Logging over HTTP to the fake."""

from __future__ import annotations

from collections.abc import Callable, Mapping

import pytest

from fake_gcp import FakeGCP
from jobrelay import Execution, JobSpec
from jobrelay.labels import KEYS
from jobrelay.testing import ERR_MARKER, FAIL_EXIT_CODE, OUT_MARKER, ExecutorConformance, Scenario
from jobrelay_cloudrun import CloudRunExecutor
from jobrelay_cloudrun._names import label_key

_EXIT_CODES = {Scenario.SUCCEED: 0, Scenario.FAIL: FAIL_EXIT_CODE}


class TestCloudRunConformance(ExecutorConformance):
    @pytest.fixture
    def executor(self, executor: CloudRunExecutor) -> CloudRunExecutor:
        return executor

    @pytest.fixture
    def workload_labels(self, fake: FakeGCP) -> Callable[[Execution], Mapping[str, str]]:
        """The Cloud Run job's labels, with Google's ``jobrelay-x`` keys read back as ``jobrelay.x``."""
        google_keys = {label_key(key): key for key in KEYS}

        def labels(execution: Execution) -> Mapping[str, str]:
            stored: dict[str, str] = fake.job(execution.metadata["job"])["labels"]
            return {google_keys.get(key, key): value for key, value in stored.items()}

        return labels

    @pytest.fixture
    def wait_timeout(self) -> float:
        return 10.0

    @pytest.fixture
    def settle(self, fake: FakeGCP) -> Callable[[Execution, JobSpec], None]:
        """Do what the scenario's script would: write its two lines, exit with its code."""

        def settle(execution: Execution, job: JobSpec) -> None:
            scenario = Scenario(job.labels["conformance"])
            fake.finish(
                execution.execution_id,
                _EXIT_CODES[scenario],
                stdout=[OUT_MARKER],
                stderr=[ERR_MARKER],
            )

        return settle
