"""Configuration: the SDK's chain, and a ConfigError naming the field before any call."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import attrs
import pytest

import jobrelay_scaleway
from conftest import MakeExecutor
from fake_scaleway import ACCESS_KEY, PROJECT_ID, SECRET_KEY, FakeScaleway
from jobrelay import ConfigError, JobSpec, get_executor
from jobrelay_scaleway import ScalewayExecutor
from jobrelay_scaleway._config import make_client


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"region": "fr-par-1"}, "region"),
        ({"region": "us-east-1"}, "region"),
        ({"access_key": "AKIA1234"}, "access_key"),
        ({"access_key": ""}, "access_key"),
        ({"secret_key": "not-a-uuid-secret"}, "secret_key"),
        ({"project_id": "my-project"}, "project_id"),
        ({"api_url": "ftp://example"}, "api_url"),
        ({"logs_url": "loki.local"}, "logs_url"),
        ({"logs_token": ""}, "logs_token"),
        ({"local_storage_mb": 20_000}, "local_storage_mb"),
        ({"local_storage_mb": 1.5}, "local_storage_mb"),
        ({"poll_interval": 0}, "poll_interval"),
        ({"timeout": -1}, "timeout"),
        ({"name": ""}, "name"),
        ({"prices": {"currency": "EUR", "regions": {}}}, "prices"),
    ],
)
def test_bad_values_name_the_field(
    make_executor: MakeExecutor, fake: FakeScaleway, overrides: dict[str, Any], field: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        make_executor(**overrides)
    assert str(caught.value).startswith(f"{field}:"), caught.value
    assert "not-a-uuid-secret" not in str(caught.value)
    assert sum(fake.calls.values()) == 0


def test_credentials_from_scw_environment(
    monkeypatch: pytest.MonkeyPatch, fake: FakeScaleway
) -> None:
    monkeypatch.setenv("SCW_ACCESS_KEY", ACCESS_KEY)
    monkeypatch.setenv("SCW_SECRET_KEY", SECRET_KEY)
    monkeypatch.setenv("SCW_DEFAULT_PROJECT_ID", PROJECT_ID)
    monkeypatch.setenv("SCW_API_URL", fake.url)
    with ScalewayExecutor(log_grace=0) as executor:
        assert executor.project_id == PROJECT_ID
        assert executor.health().healthy


def test_credentials_from_scw_config_file(
    monkeypatch: pytest.MonkeyPatch, fake: FakeScaleway, tmp_path: Path
) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(
        f"access_key: {ACCESS_KEY}\nsecret_key: 00000000-0000-4000-8000-000000000000\n"
        f"default_project_id: {PROJECT_ID}\napi_url: {fake.url}\n"
        f"profiles:\n  work:\n    secret_key: {SECRET_KEY}\n",
        encoding="utf-8",
    )
    monkeypatch.setenv("SCW_CONFIG_PATH", str(config))
    monkeypatch.setenv("SCW_PROFILE", "work")
    with ScalewayExecutor() as executor:
        assert executor.health().healthy
    monkeypatch.setenv("SCW_SECRET_KEY", "99999999-0000-4000-8000-000000000000")
    with ScalewayExecutor() as executor:  # the environment wins over the file
        assert not executor.health().healthy


def test_broken_config_file_is_a_config_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(f"secret_key: {SECRET_KEY}\n: : [\n", encoding="utf-8")
    monkeypatch.setenv("SCW_CONFIG_PATH", str(config))
    with pytest.raises(ConfigError, match="SCW_CONFIG_PATH") as caught:
        ScalewayExecutor()
    assert SECRET_KEY not in str(caught.value)
    monkeypatch.setenv("SCW_CONFIG_PATH", str(tmp_path / "missing.yaml"))
    with pytest.raises(ConfigError, match=r"^access_key: no Scaleway access key"):
        ScalewayExecutor()


def test_missing_project_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"^project_id: no Scaleway project"):
        ScalewayExecutor(access_key=ACCESS_KEY, secret_key=SECRET_KEY)


def test_repr_hides_credentials(executor: ScalewayExecutor) -> None:
    assert SECRET_KEY not in repr(executor)
    assert SECRET_KEY not in repr(executor._settings)


def test_entry_point_loads(fake: FakeScaleway) -> None:
    executor = get_executor(
        "scaleway",
        project_id=PROJECT_ID,
        access_key=ACCESS_KEY,
        secret_key=SECRET_KEY,
        api_url=fake.url,
    )
    with executor:
        assert isinstance(executor, ScalewayExecutor)
        assert executor.capabilities().platform_retries
    assert JobSpec("busybox").image == "busybox"


def test_sdk_format_errors_become_config_errors(executor: ScalewayExecutor) -> None:
    bad = attrs.evolve(executor._settings, secret_key="sekrit-but-not-a-uuid")
    with pytest.raises(ConfigError, match=r"^scaleway client: Invalid secret key format") as caught:
        make_client(bad)
    assert "sekrit-but-not-a-uuid" not in str(caught.value)
    assert caught.value.__cause__ is None


def test_public_surface() -> None:
    assert jobrelay_scaleway.__all__ == ["ScalewayExecutor"]
