"""Reaching a daemon: TLS with client certificates, health, and daemons that do not answer."""

from __future__ import annotations

import uuid
from datetime import datetime, timezone
from pathlib import Path

import docker
import pytest

from conftest import IMAGE, RUN_LABELS, TLS_URL, client_tls
from jobrelay import Execution, JobSpec, JobState
from jobrelay.errors import ExecutorError, LaunchError, TransientExecutorError
from jobrelay_docker import DockerExecutor, TLSConfig

pytestmark = pytest.mark.docker


def test_tls_with_client_certificate(tls_dir: Path) -> None:
    tls = client_tls(tls_dir)
    with DockerExecutor(
        base_url=TLS_URL, tls=tls, pull_policy="never", stop_grace=1, labels=RUN_LABELS
    ) as executor:
        health = executor.health()
        assert health.healthy, health.detail
        assert health.version
        assert TLS_URL in health.detail
        execution = executor.launch(JobSpec(IMAGE, ["sh", "-c", "echo over tls"]))
        result = executor.harvest(execution)
        assert (result.state, result.logs.stdout) == (JobState.SUCCEEDED, "over tls\n")
        assert result.execution.metadata["daemon"] == TLS_URL


def test_tls_config_object(tls_dir: Path) -> None:
    tls = TLSConfig(
        ca_cert=tls_dir / "ca.pem", client_cert=tls_dir / "cert.pem", client_key=tls_dir / "key.pem"
    )
    with DockerExecutor(base_url=TLS_URL, tls=tls) as executor:
        assert executor.health().healthy


def test_tls_without_client_certificate_is_refused(tls_dir: Path) -> None:
    with DockerExecutor(
        base_url=TLS_URL, tls={"ca_cert": str(tls_dir / "ca.pem")}, pull_policy="never"
    ) as executor:
        health = executor.health()
        assert not health.healthy
        assert "TLS" in health.detail
        assert "tls.client_cert" in health.detail
        job = JobSpec(IMAGE, ["true"])
        with pytest.raises(LaunchError, match="TLS") as info:
            executor.launch(job)
        # Certificates do not fix themselves: not retried as transient.
        assert not isinstance(info.value, TransientExecutorError)
        assert info.value.job_id == job.job_id


def test_tls_daemon_not_signed_by_our_ca(tls_dir: Path) -> None:
    # The client certificate is no CA: the daemon's certificate cannot verify against it.
    tls = {
        "ca_cert": str(tls_dir / "cert.pem"),
        "client_cert": str(tls_dir / "cert.pem"),
        "client_key": str(tls_dir / "key.pem"),
    }
    with DockerExecutor(base_url=TLS_URL, tls=tls) as executor:
        health = executor.health()
        assert not health.healthy
        assert "certificate verify failed" in health.detail


def test_plain_http_to_the_tls_port(tls_dir: Path) -> None:  # noqa: ARG001
    with DockerExecutor(base_url=TLS_URL.replace("tcp://", "http://")) as executor:
        health = executor.health()
        assert not health.healthy
        assert "400" in health.detail


def test_health_of_the_local_daemon(docker_api: docker.APIClient) -> None:
    with DockerExecutor() as executor:
        health = executor.health()
        assert health.healthy, health.detail
        assert health.version == docker_api.version()["Version"]
        assert health.latency is not None
        assert 0 <= health.latency < 5
        caps = executor.capabilities()
        assert caps.max_cpu == float(docker_api.info()["NCPU"])
        assert caps.max_memory_mb == docker_api.info()["MemTotal"] // (1024 * 1024)
        assert caps.log_split
        assert caps.list_managed


@pytest.mark.parametrize(
    "base_url",
    [f"unix:///tmp/jobrelay-no-daemon-{uuid.uuid4().hex[:8]}.sock", "tcp://127.0.0.1:1"],
)
def test_no_daemon_is_transient(base_url: str) -> None:
    with DockerExecutor(base_url=base_url, timeout=2) as executor:
        health = executor.health()
        assert not health.healthy
        assert base_url in health.detail
        job = JobSpec(IMAGE, ["true"])
        with pytest.raises(TransientExecutorError, match="no answer") as info:
            executor.launch(job)
        assert info.value.executor == "docker"
        assert info.value.job_id == job.job_id
        with pytest.raises(TransientExecutorError):
            executor.statuses([executor_execution(job.job_id)])
        # Capabilities never fail: limits are simply unknown.
        assert executor.capabilities().max_cpu is None


def executor_execution(job_id: str) -> Execution:
    return Execution("docker", "0" * 64, job_id, datetime.now(timezone.utc))


def test_errors_name_the_executor(docker_api: docker.APIClient) -> None:  # noqa: ARG001
    with DockerExecutor(name="docker-eu", pull_policy="never") as executor:
        with pytest.raises(LaunchError) as info:
            executor.launch(JobSpec("jobrelay-test/does-not-exist:1", ["true"]))
        assert info.value.executor == "docker-eu"
        assert isinstance(info.value, ExecutorError)
