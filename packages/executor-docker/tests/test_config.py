"""Configuration, discovery and the public surface: no daemon needed."""

from __future__ import annotations

import re
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

import jobrelay
import jobrelay_docker
from jobrelay import Cost, CostEstimator, JobSpec
from jobrelay.errors import ConfigError
from jobrelay_docker import DockerExecutor, TLSConfig


@pytest.fixture
def pem(tmp_path: Path) -> dict[str, str]:
    files = {}
    for key in ("ca_cert", "client_cert", "client_key"):
        path = tmp_path / f"{key}.pem"
        path.write_text("not checked until a connection is made\n")
        files[key] = str(path)
    return files


def test_public_surface() -> None:
    assert jobrelay_docker.__all__ == sorted(jobrelay_docker.__all__)
    assert set(jobrelay_docker.__all__) == {"DockerExecutor", "ExecResult", "TLSConfig"}


def test_discovered_by_entry_point() -> None:
    assert "docker" in jobrelay.available_executors()
    info = {entry.name: entry for entry in jobrelay.describe_executors()}["docker"]
    assert info.target == "jobrelay_docker:DockerExecutor"
    assert info.distribution == "jobrelay-docker"
    assert jobrelay.load_executor_class("docker") is DockerExecutor


def test_defaults_make_no_connection() -> None:
    # Built for a host that does not exist: construction must not touch the network.
    executor = DockerExecutor(base_url="tcp://docker-host.invalid:2375")
    assert executor.name == "docker"
    assert (
        repr(executor) == "DockerExecutor(name='docker', base_url='tcp://docker-host.invalid:2375')"
    )
    executor.close()


def test_router_style_config(pem: dict[str, str]) -> None:
    executor = jobrelay.get_executor(
        "docker",
        base_url="tcp://build-1.internal:2376",
        tls=pem,
        pull_policy="always",
        labels={"team": "data"},
        name="build-1",
    )
    assert isinstance(executor, DockerExecutor)
    assert executor.name == "build-1"
    settings = executor._settings
    assert settings.tls == TLSConfig(**pem)
    assert settings.docker_tls is not None
    assert settings.docker_tls.cert == (pem["client_cert"], pem["client_key"])
    assert settings.docker_tls.ca_cert == pem["ca_cert"]


@pytest.mark.parametrize(
    ("config", "key"),
    [
        ({"pull_policy": "sometimes"}, "pull_policy"),
        ({"pull_policy": None}, "pull_policy"),
        ({"timeout": 0}, "timeout"),
        ({"timeout": "30"}, "timeout"),
        ({"timeout": float("nan")}, "timeout"),
        ({"pull_timeout": -1}, "pull_timeout"),
        ({"stop_grace": -1}, "stop_grace"),
        ({"stop_grace": 1.5}, "stop_grace"),
        ({"stop_grace": True}, "stop_grace"),
        ({"remove_on_harvest": "yes"}, "remove_on_harvest"),
        ({"keep_failed": 1}, "keep_failed"),
        ({"name": ""}, "name"),
        ({"name": None}, "name"),
        ({"network": ""}, "network"),
        ({"labels": ["a=b"]}, "labels"),
        ({"labels": {"jobrelay.managed": "false"}}, "labels['jobrelay.managed']"),
        ({"labels": {"team": 3}}, "labels['team']"),
        ({"base_url": "docker-host:2375"}, "base_url"),
        ({"base_url": ""}, "base_url"),
        ({"tls": "yes"}, "tls"),
        ({"tls": {"ca": "x"}}, "tls"),
        ({"tls": {"ca_cert": "/nonexistent/ca.pem"}}, "tls.ca_cert"),
        ({"tls": {"verify": "no"}}, "tls.verify"),
        ({"tls": True, "base_url": "unix:///var/run/docker.sock"}, "tls"),
        ({"timeout": 10**5000}, "timeout"),
        ({"stop_grace": 10**400}, "stop_grace"),
        ({"start_grace": 0}, "start_grace"),
        ({"start_grace": float("inf")}, "start_grace"),
        ({"cost_per_hour": -1}, "cost_per_hour"),
        ({"cost_per_hour": float("nan")}, "cost_per_hour"),
        ({"cost_per_hour": "1e999999"}, "cost_per_hour"),
        ({"cost_per_hour": 10**5000}, "cost_per_hour"),
        ({"cost_per_hour": "cheap"}, "cost_per_hour"),
        ({"currency": "euro"}, "currency"),
    ],
)
def test_bad_config_names_the_key(config: dict[str, Any], key: str) -> None:
    config.setdefault("base_url", "tcp://127.0.0.1:2376")
    with pytest.raises(ConfigError, match=rf"^{re.escape(key)}"):
        DockerExecutor(**config)


def test_client_cert_and_key_go_together(pem: dict[str, str]) -> None:
    with pytest.raises(ConfigError, match=r"tls\.client_key"):
        TLSConfig(client_cert=pem["client_cert"])
    with pytest.raises(ConfigError, match=r"tls\.client_cert"):
        TLSConfig(client_key=pem["client_key"])


def test_tls_forms(pem: dict[str, str]) -> None:
    assert TLSConfig.coerce(None) is None
    assert TLSConfig.coerce(value=False) is None
    assert TLSConfig.coerce(value=True) == TLSConfig()
    assert TLSConfig.coerce({**pem, "verify": False}) == TLSConfig(**pem, verify=False)
    tls = TLSConfig(ca_cert=Path(pem["ca_cert"]))
    assert tls.ca_cert == pem["ca_cert"]
    assert TLSConfig.coerce(tls) is tls


def test_tls_needs_a_tcp_address(pem: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DOCKER_HOST", raising=False)
    monkeypatch.delenv("DOCKER_TLS_VERIFY", raising=False)
    monkeypatch.delenv("DOCKER_CERT_PATH", raising=False)
    with pytest.raises(ConfigError, match="tls: only applies"):
        DockerExecutor(tls=pem)


def test_environment_is_read_when_base_url_is_none(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("ca.pem", "cert.pem", "key.pem"):
        (tmp_path / name).write_text("x\n")
    monkeypatch.setenv("DOCKER_HOST", "tcp://remote.invalid:2376")
    monkeypatch.setenv("DOCKER_TLS_VERIFY", "1")
    monkeypatch.setenv("DOCKER_CERT_PATH", str(tmp_path))
    executor = DockerExecutor()
    assert executor._settings.address == "tcp://remote.invalid:2376"
    assert executor._settings.docker_tls is not None
    assert executor._settings.docker_tls.ca_cert == str(tmp_path / "ca.pem")
    monkeypatch.setenv("DOCKER_CERT_PATH", str(tmp_path / "missing"))
    with pytest.raises(ConfigError, match="DOCKER_CERT_PATH"):
        DockerExecutor()


def test_huge_numbers_in_config_fail_fast_and_short() -> None:
    started = time.perf_counter()
    with pytest.raises(ConfigError) as info:
        DockerExecutor(timeout=10**100_000)
    assert time.perf_counter() - started < 0.1
    assert len(str(info.value)) < 200


def test_cost_per_hour_prices_any_job_by_its_duration() -> None:
    job = JobSpec("busybox", ["true"], resources={"cpu": 4, "memory": "8Gi"})
    free = DockerExecutor()
    assert free.capabilities().cost_estimate
    assert isinstance(free, CostEstimator)
    assert free.estimate_cost(job, 600) == Cost(
        Decimal(0), "USD", Decimal(0), "config: cost_per_hour"
    )
    priced = DockerExecutor(cost_per_hour="0.36", currency="EUR")
    cost = priced.estimate_cost(job, 600)
    assert cost is not None
    assert (cost.amount, cost.currency, cost.rate_per_hour) == (
        Decimal("0.06"),
        "EUR",
        Decimal("0.36"),
    )
    assert priced.estimate_cost(job, 0.5) == Cost(
        Decimal("0.00005"), "EUR", Decimal("0.36"), "config: cost_per_hour"
    )
    assert DockerExecutor(cost_per_hour=2).estimate_cost(job, 5400) == Cost(
        Decimal(3), "USD", Decimal(2), "config: cost_per_hour"
    )
    # A TOML float is taken as written, not as its binary neighbour.
    assert DockerExecutor(cost_per_hour=0.1)._settings.cost_per_hour == Decimal("0.1")
    for bad in (-1, float("nan"), float("inf"), True):
        with pytest.raises(ValueError, match="duration_seconds"):
            priced.estimate_cost(job, bad)


@pytest.mark.parametrize(
    ("volumes", "where"),
    [
        ("/a:/b", "volumes"),
        (["/a"], "volumes[0]"),
        (["/a:relative"], "volumes[0]"),
        (["/a:/b:rx"], "volumes[0]"),
        (["/a:/b", 3], "volumes[1]"),
    ],
)
def test_bad_volumes_name_the_entry(volumes: object, where: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(where)):
        DockerExecutor(volumes=volumes)  # type: ignore[arg-type]


def test_volumes_and_user_reach_the_container_spec() -> None:
    executor = DockerExecutor(volumes=["/srv/data:/data:ro"], user="1000:1000")
    assert executor._settings.volumes == ("/srv/data:/data:ro",)
    assert executor._settings.user == "1000:1000"
