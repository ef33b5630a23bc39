from collections.abc import Callable, Iterator, Mapping
from typing import Any

import attrs
import pytest

from jobrelay import Capabilities, Execution, JobSpec
from jobrelay.testing import ERR_MARKER, FAIL_EXIT_CODE, OUT_MARKER, ExecutorConformance, Scenario
from jobrelay_mock import MockExecutor

_LABELS = {
    Scenario.SUCCEED: {"mock.stdout": f"{OUT_MARKER}\n", "mock.stderr": f"{ERR_MARKER}\n"},
    Scenario.FAIL: {
        "mock.stdout": f"{OUT_MARKER}\n",
        "mock.stderr": f"{ERR_MARKER}\n",
        "mock.exit-code": str(FAIL_EXIT_CODE),
    },
    Scenario.LONG: {"mock.duration": "3600"},
}


class TestMockConformance(ExecutorConformance):
    @pytest.fixture
    def executor(self) -> Iterator[MockExecutor]:
        with MockExecutor() as executor:
            yield executor

    @pytest.fixture
    def workload_labels(self, executor: MockExecutor) -> Callable[[Execution], Mapping[str, str]]:
        return executor.labels_of

    @pytest.fixture
    def make_job(self) -> Callable[..., JobSpec]:
        def make(scenario: Scenario, **overrides: Any) -> JobSpec:
            labels = {**_LABELS[scenario], **overrides.pop("labels", {})}
            return JobSpec("busybox", labels=labels, **overrides)

        return make


class TestMockConformanceUnsplit(TestMockConformance):
    @pytest.fixture
    def executor(self) -> Iterator[MockExecutor]:
        with MockExecutor(log_split=False) as executor:
            yield executor


class _ClaimsStdin(MockExecutor):
    def capabilities(self) -> Capabilities:
        return attrs.evolve(super().capabilities(), stdin=True)


def test_the_kit_refuses_stdin_claimed_without_send_stdin() -> None:
    with _ClaimsStdin() as executor, pytest.raises(AssertionError, match="send_stdin"):
        TestMockConformance().test_capabilities(executor)
