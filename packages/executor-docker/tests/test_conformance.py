"""The shared conformance kit, against the real daemon."""

from __future__ import annotations

from collections.abc import Iterator, Mapping

import docker
import pytest

from conftest import IMAGE, make_executor
from jobrelay import Execution
from jobrelay.testing import ExecutorConformance
from jobrelay_docker import DockerExecutor

pytestmark = pytest.mark.docker


class TestDockerConformance(ExecutorConformance):
    @pytest.fixture
    def executor(self, docker_api: docker.APIClient) -> Iterator[DockerExecutor]:
        with make_executor() as executor:
            yield executor

    @pytest.fixture
    def workload_labels(self, docker_api: docker.APIClient) -> object:  # the kit's LabelReader
        def read(execution: Execution) -> Mapping[str, str]:
            labels: Mapping[str, str] = docker_api.inspect_container(execution.execution_id)[
                "Config"
            ]["Labels"]
            return labels

        return read

    @pytest.fixture
    def image(self) -> str:
        return IMAGE

    @pytest.fixture
    def wait_timeout(self) -> float:
        return 60.0
