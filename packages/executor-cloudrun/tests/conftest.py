"""Fixtures: one fake Cloud Run + Cloud Logging server per session, reset per test.

The official clients (run_v2 over REST, google-cloud-logging over HTTP) talk to it on
127.0.0.1 with anonymous credentials. After each test the fake must have seen no
request its schemas refuse and sent no answer they refuse, unless the test says it
provoked them (``fake.rejected.clear()``).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from google.auth.credentials import AnonymousCredentials

from cloudrun_testing import MakeExecutor
from fake_gcp import FakeGCP
from jobrelay import set_testing
from jobrelay_cloudrun import CloudRunExecutor


@pytest.fixture(scope="session")
def gcp() -> Iterator[FakeGCP]:
    server = FakeGCP().start()
    yield server
    server.stop()


@pytest.fixture
def fake(gcp: FakeGCP, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeGCP]:
    gcp.reset()
    # The clients must never look for real credentials or a metadata server.
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", "/nonexistent/jobrelay-test-creds.json")
    monkeypatch.setenv("GCE_METADATA_HOST", "127.0.0.1:9")
    monkeypatch.setenv("GCE_METADATA_IP", "127.0.0.1:9")
    set_testing(True)
    yield gcp
    set_testing(False)
    assert gcp.problems == [], "the fake sent answers its schemas refuse"
    assert gcp.rejected == [], "the executor sent requests the schemas refuse"


@pytest.fixture
def make_executor(fake: FakeGCP) -> Iterator[MakeExecutor]:
    made: list[CloudRunExecutor] = []

    def make(**overrides: Any) -> CloudRunExecutor:
        options: dict[str, Any] = {
            "credentials": AnonymousCredentials(),  # type: ignore[no-untyped-call]
            "api_endpoint": fake.url,
            "logging_endpoint": fake.url,
            "poll_interval": 0.01,
            "log_grace": 0.0,
            "request_timeout": 5.0,
            "logs_per_minute": 10_000,
            "reads_per_minute": 100_000,
        }
        options.update(overrides)
        project = options.pop("project", fake.project)
        region = options.pop("region", fake.region)
        executor = CloudRunExecutor(project, region, **options)
        made.append(executor)
        return executor

    yield make
    for executor in made:
        executor.close()


@pytest.fixture
def executor(make_executor: MakeExecutor) -> CloudRunExecutor:
    return make_executor()
