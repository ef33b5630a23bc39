"""Spans and metrics of real containers, run by a Runner on the Docker executor."""

from __future__ import annotations

from collections.abc import Iterator

import docker
import docker.errors
import pytest
import requests
from opentelemetry.trace import StatusCode

from conftest import IMAGE, RUN_ID, RUN_LABEL, Telemetry, key, unavailable
from jobrelay import Hooks, JobSpec, JobState, Router, Runner
from jobrelay_docker import DockerExecutor

pytestmark = pytest.mark.docker

NAME = "docker-test"


@pytest.fixture(scope="module")
def docker_api() -> Iterator[docker.APIClient]:
    """The daemon and its test image, or a skip (a failure under CI=true)."""
    with DockerExecutor() as probe:
        health = probe.health()
    if not health.healthy:
        unavailable("a Docker daemon", health.detail)
    try:
        api = docker.from_env(timeout=30).api
        api.inspect_image(IMAGE)
    except docker.errors.NotFound:
        unavailable(f"the test image {IMAGE}", "run .ci/prepare-docker.sh")
    except (docker.errors.DockerException, requests.RequestException, OSError) as exc:
        unavailable("a Docker daemon", exc)
    yield api
    for summary in api.containers(all=True, filters={"label": f"{RUN_LABEL}={RUN_ID}"}):
        api.remove_container(summary["Id"], force=True, v=True)
    api.close()


@pytest.fixture
def router(docker_api: docker.APIClient, telemetry: Telemetry) -> Iterator[Router]:  # noqa: ARG001
    hooks = Hooks(load_entry_points=False)
    hooks.register(telemetry.plugin)
    executor = DockerExecutor(
        pull_policy="never", stop_grace=1, labels={RUN_LABEL: RUN_ID}, name=NAME
    )
    with executor, Router({NAME: executor}, default=NAME, hooks=hooks) as router:
        yield router


def test_containers_become_spans_and_metrics(router: Router, telemetry: Telemetry) -> None:
    ok = JobSpec(IMAGE, ["sh", "-c", "sleep 1; echo done"], name="sleeper")
    bad = JobSpec(IMAGE, ["sh", "-c", "exit 3"], name="crasher")
    with Runner(router, max_workers=2, poll_interval=0.1) as runner:
        results = runner.run([ok, bad])
    assert [r.state for r in results] == [JobState.SUCCEEDED, JobState.FAILED]

    span = telemetry.job_span(ok.job_id)
    attributes = dict(span.attributes or {})
    assert attributes["jobrelay.executor"] == NAME
    assert attributes["container.image.name"] == IMAGE
    assert attributes["jobrelay.job.name"] == "sleeper"
    assert attributes["jobrelay.job.exit_code"] == 0
    assert attributes["jobrelay.execution.id"] == results[0].execution.execution_id
    assert float(str(attributes["jobrelay.job.duration"])) >= 0.9
    assert span.status.status_code is StatusCode.UNSET
    states = [(e.attributes or {}).get("jobrelay.job.state") for e in span.events]
    assert states[0] == "pending"
    assert states[-1] == "succeeded"
    assert "running" in states  # a one-second sleep is seen running by a 0.1 s poll
    assert span.start_time is not None
    assert span.end_time is not None
    assert (span.end_time - span.start_time) / 1e9 >= 0.9

    failed = telemetry.job_span(bad.job_id)
    assert failed.status.status_code is StatusCode.ERROR
    assert dict(failed.attributes or {})["jobrelay.job.exit_code"] == 3

    assert telemetry.points("jobrelay.job.finished") == {
        key(executor=NAME, state="succeeded"): 1,
        key(executor=NAME, state="failed"): 1,
    }
    count, total = telemetry.points("jobrelay.job.duration")[key(executor=NAME, state="succeeded")]
    assert count == 1
    assert total >= 0.9
    count, latency = telemetry.points("jobrelay.job.launch.latency")[key(executor=NAME)]
    assert count == 2
    assert 0 <= latency < 30
    assert telemetry.points("jobrelay.jobs.running") in ({}, {key(executor=NAME): 0})
    assert telemetry.plugin.open_jobs() == 0


def test_a_docker_launch_failure_is_an_error_span(router: Router, telemetry: Telemetry) -> None:
    job = JobSpec("jobrelay-test/no-such-image:never", ["true"])
    with Runner(router, poll_interval=0.1) as runner:
        runner.submit(job).exception(60)  # waits until the job is done, however it ended
    assert telemetry.points("jobrelay.launch.failures") == {
        key(executor=NAME, error="LaunchError"): 1
    }
    telemetry.plugin.close()  # a job nobody launched ends at launch_timeout, or here
    span = telemetry.job_span(job.job_id)
    (attempt,) = telemetry.children(span)
    assert attempt.name == "jobrelay.launch"
    assert attempt.status.status_code is StatusCode.ERROR
    assert "is not present on the local Docker daemon" in (attempt.status.description or "")
    assert dict(attempt.attributes or {}) == {
        "jobrelay.executor": NAME,
        "error.type": "LaunchError",
    }
