"""Fixtures: one fake Scaleway (Serverless Jobs, Cockpit, Loki) per session, reset per test.

The official SDK talks real HTTP to :class:`fake_scaleway.FakeScaleway` on 127.0.0.1.
The SDK's config chain is cut off from the machine's own ``~/.config/scw`` and
``SCW_*`` variables, and retries are instant (``jobrelay.set_testing``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from fake_scaleway import ACCESS_KEY, LOGS_TOKEN, PROJECT_ID, SECRET_KEY, FakeScaleway
from jobrelay import ManualClock, set_testing
from jobrelay_scaleway import ScalewayExecutor

MakeExecutor = Callable[..., ScalewayExecutor]


@pytest.fixture(scope="session")
def _server() -> Iterator[FakeScaleway]:
    with FakeScaleway() as fake:
        yield fake


@pytest.fixture
def fake(_server: FakeScaleway) -> Iterator[FakeScaleway]:
    _server.reset()
    yield _server
    assert not _server.errors, f"the fake itself failed: {_server.errors!r}"


@pytest.fixture(autouse=True)
def _scw_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    for name in (
        "SCW_ACCESS_KEY",
        "SCW_SECRET_KEY",
        "SCW_DEFAULT_PROJECT_ID",
        "SCW_DEFAULT_ORGANIZATION_ID",
        "SCW_DEFAULT_REGION",
        "SCW_DEFAULT_ZONE",
        "SCW_API_URL",
        "SCW_PROFILE",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SCW_CONFIG_PATH", str(tmp_path / "no-scw-config.yaml"))
    set_testing(True)
    yield
    set_testing(False)


@pytest.fixture
def make_executor(fake: FakeScaleway) -> Iterator[MakeExecutor]:
    made: list[ScalewayExecutor] = []

    def make(**overrides: Any) -> ScalewayExecutor:
        options: dict[str, Any] = {
            "project_id": PROJECT_ID,
            "access_key": ACCESS_KEY,
            "secret_key": SECRET_KEY,
            "api_url": fake.url,
            "logs_url": fake.loki_url,
            "logs_token": LOGS_TOKEN,
            "poll_interval": 0.01,
            "log_grace": 0.0,
            "clock": ManualClock(),
        }
        options.update(overrides)
        executor = ScalewayExecutor(**options)
        made.append(executor)
        return executor

    yield make
    for executor in made:
        executor.close()


@pytest.fixture
def executor(make_executor: MakeExecutor) -> ScalewayExecutor:
    return make_executor()
