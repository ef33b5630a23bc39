"""Importing jobrelay_scaleway must not import the Scaleway SDK (nor requests under it)."""

from __future__ import annotations

from fake_scaleway import ACCESS_KEY, PROJECT_ID, SECRET_KEY
from jobrelay.testing import in_fresh_interpreter

SDK = ("scaleway", "scaleway_core", "requests", "urllib3")


def test_import_signature_and_loading_the_class_import_no_sdk() -> None:
    loaded = in_fresh_interpreter(
        f"""
        import inspect
        import jobrelay
        import jobrelay_scaleway

        parameters = inspect.signature(jobrelay_scaleway.ScalewayExecutor).parameters
        assert "project_id" in parameters and "logs_token" in parameters, parameters
        assert jobrelay.load_executor_class("scaleway") is jobrelay_scaleway.ScalewayExecutor
        result = loaded(*{SDK!r})
        """
    )
    assert loaded == []


def test_constructing_loads_the_sdk_and_its_errors_are_still_mapped() -> None:
    # The other half: the stand-ins become the real SDK when the executor is made,
    # and a refused connection (a requests error, caught by the table built on first
    # use) comes back as an unhealthy Health naming the call.
    after_construct, (healthy, detail) = in_fresh_interpreter(
        f"""
        from jobrelay_scaleway import ScalewayExecutor

        with ScalewayExecutor(
            {PROJECT_ID!r},
            access_key={ACCESS_KEY!r},
            secret_key={SECRET_KEY!r},
            api_url="http://127.0.0.1:9",
            health_timeout=5.0,
        ) as executor:
            modules = loaded(*{SDK!r})
            health = executor.health()
        result = [modules, [health.healthy, health.detail]]
        """
    )
    for module in ("scaleway.jobs.v1alpha2", "scaleway.cockpit.v1", "scaleway_core.api"):
        assert module in after_construct
    assert "requests" in after_construct
    assert healthy is False
    assert detail.startswith("scaleway ListJobDefinitions failed: ConnectionError"), detail
    assert SECRET_KEY not in detail
