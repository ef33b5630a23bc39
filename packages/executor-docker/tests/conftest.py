"""Fixtures for the Docker executor's tests: a real daemon, its TLS listener, a registry.

What CI prepares (``.ci/prepare-docker.sh``) is found by well-known defaults, each
overridable by an environment variable:

- the daemon: ``DOCKER_HOST`` or the local socket, with the image
  ``jobrelay-test/busybox:latest``;
- the TLS listener: ``JOBRELAY_TEST_DOCKER_TLS_URL`` (``tcp://127.0.0.1:2376``), with
  ``ca.pem``, ``cert.pem`` and ``key.pem`` in ``JOBRELAY_TEST_DOCKER_TLS_DIR``
  (``/tmp/jobrelay-docker-tls``);
- the registry: ``JOBRELAY_TEST_REGISTRY`` (``127.0.0.1:5000``).

Without them the tests skip, except under ``CI=true`` where they fail: CI must never
pass by skipping the real thing.
"""

from __future__ import annotations

import os
import socket
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NoReturn
from urllib.parse import urlsplit

import docker
import docker.errors
import pytest
import requests

from jobrelay import Execution, JobSpec, JobState, JobStatus
from jobrelay_docker import DockerExecutor

IMAGE = "jobrelay-test/busybox:latest"
IN_CI = os.environ.get("CI", "").strip().lower() in {"true", "1", "yes"}
TLS_DIR = Path(os.environ.get("JOBRELAY_TEST_DOCKER_TLS_DIR", "/tmp/jobrelay-docker-tls"))
TLS_URL = os.environ.get("JOBRELAY_TEST_DOCKER_TLS_URL", "tcp://127.0.0.1:2376")
REGISTRY = os.environ.get("JOBRELAY_TEST_REGISTRY", "127.0.0.1:5000")

# Every container an executor makes in this session carries this label, so the
# session can sweep whatever a failing test left behind.
RUN_LABEL = "jobrelay-test.run"
RUN_ID = uuid.uuid4().hex[:12]
RUN_LABELS = {RUN_LABEL: RUN_ID}


def unavailable(what: str, why: object) -> NoReturn:
    """Skip, or fail under CI=true, because ``what`` is missing."""
    if IN_CI:
        pytest.fail(f"{what} is required under CI=true but unavailable: {why}")
    pytest.skip(f"{what} unavailable: {why}")


@pytest.fixture(scope="session")
def docker_api() -> Iterator[docker.APIClient]:
    """A raw docker-py client on the test daemon (the test's own eyes on it)."""
    with DockerExecutor() as probe:  # no socket file: fails fast, leaks no socket
        health = probe.health()
    if not health.healthy:
        unavailable("a Docker daemon", health.detail)
    try:
        api = docker.from_env(timeout=30).api
        api.ping()
    except (docker.errors.DockerException, requests.RequestException, OSError) as exc:
        unavailable("a Docker daemon", exc)
    try:
        api.inspect_image(IMAGE)
    except docker.errors.NotFound:
        unavailable(f"the test image {IMAGE}", "run .ci/prepare-docker.sh")
    yield api
    for summary in api.containers(all=True, filters={"label": f"{RUN_LABEL}={RUN_ID}"}):
        api.remove_container(summary["Id"], force=True, v=True)
    api.close()


@pytest.fixture(scope="session")
def tls_dir(docker_api: docker.APIClient) -> Path:  # noqa: ARG001
    """The CA and client certificate CI generated, once the TLS listener answers."""
    missing = [name for name in ("ca.pem", "cert.pem", "key.pem") if not (TLS_DIR / name).is_file()]
    if missing:
        unavailable(f"TLS material in {TLS_DIR}", f"missing {missing}")
    address = urlsplit(TLS_URL)
    try:
        socket.create_connection((address.hostname, address.port or 2376), timeout=2).close()
    except OSError as exc:
        unavailable(f"the daemon's TLS listener {TLS_URL}", exc)
    return TLS_DIR


def client_tls(tls_dir: Path) -> dict[str, str]:
    """The ``tls`` setting of an executor that talks to the TLS listener as our client."""
    return {
        "ca_cert": str(tls_dir / "ca.pem"),
        "client_cert": str(tls_dir / "cert.pem"),
        "client_key": str(tls_dir / "key.pem"),
    }


def make_executor(**config: Any) -> DockerExecutor:
    """A DockerExecutor with test-friendly defaults (short grace, local image only)."""
    settings: dict[str, Any] = {
        "stop_grace": 1,
        "pull_policy": "never",
        "labels": RUN_LABELS,
        "name": "docker-test",
    }
    settings.update(config)
    return DockerExecutor(**settings)


@pytest.fixture
def executor(docker_api: docker.APIClient) -> Iterator[DockerExecutor]:  # noqa: ARG001
    """The executor under test, on the same daemon as ``docker_api``."""
    with make_executor() as executor:
        yield executor


@pytest.fixture
def launched(executor: DockerExecutor) -> Iterator[list[Execution]]:
    """Executions a test launched with ``executor``: cancelled and removed afterwards."""
    executions: list[Execution] = []
    yield executions
    for execution in executions:
        executor.cancel(execution)
        executor.cleanup(execution)


@pytest.fixture
def run(executor: DockerExecutor, launched: list[Execution]) -> Callable[..., Execution]:
    """Launch a shell script (or an argument list) in the test image."""

    def run(script: str | list[str], **fields: Any) -> Execution:
        command = ["sh", "-c", script] if isinstance(script, str) else script
        fields.setdefault("job_id", f"t-{uuid.uuid4().hex[:16]}")
        execution = executor.launch(JobSpec(IMAGE, command, **fields))
        launched.append(execution)
        return execution

    return run


def wait_terminal(executor: DockerExecutor, execution: Execution, timeout: float = 60) -> JobStatus:
    """Poll ``status`` until the job ends."""
    deadline = time.monotonic() + timeout
    status = executor.status(execution)
    while not status.is_terminal:
        if time.monotonic() > deadline:
            pytest.fail(f"{execution.execution_id} still {status.state} after {timeout}s")
        time.sleep(0.05)
        status = executor.status(execution)
    return status


def wait_running(executor: DockerExecutor, execution: Execution, timeout: float = 30) -> None:
    """Poll ``status`` until the job runs."""
    deadline = time.monotonic() + timeout
    while executor.status(execution).state is not JobState.RUNNING:
        if time.monotonic() > deadline:
            pytest.fail(f"{execution.execution_id} not running after {timeout}s")
        time.sleep(0.05)


def containers_of_job(api: docker.APIClient, job_id: str) -> list[dict[str, Any]]:
    """Every container (any state) labelled with ``job_id``."""
    found: list[dict[str, Any]] = api.containers(
        all=True, filters={"label": f"jobrelay.job-id={job_id}"}
    )
    return found
