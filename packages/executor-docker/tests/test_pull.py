"""Pull policies against a real local registry (Debian's docker-registry, see .ci/)."""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import Iterator

import docker
import pytest
import requests

from conftest import IMAGE, REGISTRY, make_executor, unavailable, wait_terminal
from jobrelay import JobSpec, JobState
from jobrelay.errors import LaunchError, TransientExecutorError

pytestmark = pytest.mark.docker


@pytest.fixture(scope="session")
def registry(docker_api: docker.APIClient) -> str:  # noqa: ARG001
    """The registry's address, once it answers."""
    try:
        answer = requests.get(f"http://{REGISTRY}/v2/", timeout=3)
    except requests.RequestException as exc:
        unavailable(f"the test registry {REGISTRY}", exc)
    if answer.status_code != 200:
        unavailable(f"the test registry {REGISTRY}", f"/v2/ answered {answer.status_code}")
    return REGISTRY


def _push(api: docker.APIClient, repository: str, tag: str) -> None:
    for line in api.push(repository, tag, stream=True):
        for chunk in line.splitlines():
            message = json.loads(chunk)
            assert "error" not in message, message


def _image_id(api: docker.APIClient, reference: str) -> str:
    image_id: str = api.inspect_image(reference)["Id"]
    return image_id


@pytest.fixture
def versions(docker_api: docker.APIClient, registry: str) -> Iterator[tuple[str, str, str]]:
    """``(reference, v1 id, v2 id)``: the registry holds v2, the daemon has v1 under it."""
    repository = f"{registry}/jobrelay-it/busybox"
    tag = uuid.uuid4().hex[:12]
    reference = f"{repository}:{tag}"
    v1 = _image_id(docker_api, IMAGE)
    builder = docker_api.create_container(IMAGE, ["sh", "-c", "echo 2 > /version"])
    docker_api.start(builder["Id"])
    docker_api.wait(builder["Id"])
    v2 = docker_api.commit(builder["Id"], repository=repository, tag=tag)["Id"]
    docker_api.remove_container(builder["Id"])
    _push(docker_api, repository, tag)
    docker_api.tag(IMAGE, repository, tag)  # the daemon now holds v1 under the reference
    yield reference, v1, v2
    for image in (reference, v2):
        with contextlib.suppress(docker.errors.NotFound):
            docker_api.remove_image(image, force=True)


@pytest.fixture
def only_in_registry(docker_api: docker.APIClient, registry: str) -> Iterator[str]:
    """A reference the registry has and the daemon does not."""
    repository = f"{registry}/jobrelay-it/only-remote"
    tag = uuid.uuid4().hex[:12]
    docker_api.tag(IMAGE, repository, tag)
    _push(docker_api, repository, tag)
    docker_api.remove_image(f"{repository}:{tag}")  # untag only: IMAGE keeps the layers
    with pytest.raises(docker.errors.ImageNotFound):
        docker_api.inspect_image(f"{repository}:{tag}")
    yield f"{repository}:{tag}"
    with contextlib.suppress(docker.errors.NotFound):
        docker_api.remove_image(f"{repository}:{tag}")


def _run_image(policy: str, reference: str, docker_api: docker.APIClient) -> tuple[str, str]:
    """Launch ``cat /version`` with ``policy``; return (image id used, stdout)."""
    with make_executor(pull_policy=policy) as executor:
        execution = executor.launch(
            JobSpec(reference, ["sh", "-c", "cat /version 2>/dev/null || echo 1"])
        )
        try:
            wait_terminal(executor, execution)
            used = docker_api.inspect_container(execution.execution_id)["Image"]
            return used, executor.logs(execution).stdout
        finally:
            executor.cleanup(execution)


def test_if_not_present_uses_the_local_image(
    versions: tuple[str, str, str], docker_api: docker.APIClient
) -> None:
    reference, v1, _ = versions
    assert _run_image("if-not-present", reference, docker_api) == (v1, "1\n")
    assert _image_id(docker_api, reference) == v1  # nothing was pulled over it


def test_always_pulls(versions: tuple[str, str, str], docker_api: docker.APIClient) -> None:
    reference, _, v2 = versions
    assert _run_image("always", reference, docker_api) == (v2, "2\n")
    assert _image_id(docker_api, reference) == v2


def test_if_not_present_pulls_a_missing_image(
    only_in_registry: str, docker_api: docker.APIClient
) -> None:
    used, stdout = _run_image("if-not-present", only_in_registry, docker_api)
    assert used == _image_id(docker_api, only_in_registry) == _image_id(docker_api, IMAGE)
    assert stdout == "1\n"


def test_never_fails_clearly(only_in_registry: str, docker_api: docker.APIClient) -> None:
    with make_executor(pull_policy="never") as executor:
        job = JobSpec(only_in_registry, ["true"])
        with pytest.raises(LaunchError, match=r"not present.*pull_policy is 'never'"):
            executor.launch(job)
    assert docker_api.containers(all=True, filters={"label": f"jobrelay.job-id={job.job_id}"}) == []
    with pytest.raises(docker.errors.ImageNotFound):
        docker_api.inspect_image(only_in_registry)  # and nothing was pulled


def test_missing_tag_in_registry_is_permanent(registry: str) -> None:
    with make_executor(pull_policy="always") as executor:
        with pytest.raises(LaunchError, match=r"not found|manifest unknown") as info:
            executor.launch(JobSpec(f"{registry}/jobrelay-it/nothing:{uuid.uuid4().hex[:8]}"))
        assert not isinstance(info.value, TransientExecutorError)


def test_unreachable_registry_is_transient(docker_api: docker.APIClient) -> None:  # noqa: ARG001
    with (
        make_executor(pull_policy="always") as executor,
        pytest.raises(TransientExecutorError, match=r"127\.0\.0\.1:1"),
    ):
        executor.launch(JobSpec("127.0.0.1:1/jobrelay-it/nothing:1", ["true"]))


def test_pull_deadline(only_in_registry: str) -> None:
    with (
        make_executor(pull_policy="if-not-present", pull_timeout=1e-6) as executor,
        pytest.raises(TransientExecutorError, match="not finished after"),
    ):
        executor.launch(JobSpec(only_in_registry, ["true"]))


def test_states_of_pulled_jobs(only_in_registry: str) -> None:
    with make_executor(pull_policy="always") as executor:
        result = executor.harvest(executor.launch(JobSpec(only_in_registry, ["true"])))
        assert result.state is JobState.SUCCEEDED
