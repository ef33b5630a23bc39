"""Importing jobrelay_scaleway must not import the Scaleway SDK (nor requests under it)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

from fake_scaleway import ACCESS_KEY, PROJECT_ID, SECRET_KEY

SDK_PACKAGES = ("scaleway", "scaleway_core", "requests", "urllib3")


def _fresh(code: str) -> dict[str, list[str]]:
    """Run ``code`` in a new interpreter, as a user's program starts; return ``seen``."""
    script = "\n".join(
        [
            "import json, sys",
            "def sdk():",
            f"    return sorted(m for m in sys.modules if m.split('.')[0] in {SDK_PACKAGES!r})",
            "seen = {}",
            textwrap.dedent(code),
            "print(json.dumps(seen))",
        ]
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, list[str]] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def test_import_signature_and_loading_the_class_import_no_sdk() -> None:
    seen = _fresh(
        """
        import inspect
        import jobrelay
        import jobrelay_scaleway

        parameters = inspect.signature(jobrelay_scaleway.ScalewayExecutor).parameters
        assert "project_id" in parameters and "logs_token" in parameters, parameters
        assert jobrelay.load_executor_class("scaleway") is jobrelay_scaleway.ScalewayExecutor
        seen["after_import"] = sdk()
        """
    )
    assert seen["after_import"] == []


def test_constructing_loads_the_sdk_and_its_errors_are_still_mapped() -> None:
    # The other half: the stand-ins become the real SDK when the executor is made,
    # and a refused connection (a requests error, caught by the table built on first
    # use) comes back as an unhealthy Health naming the call.
    seen = _fresh(
        f"""
        from jobrelay_scaleway import ScalewayExecutor

        with ScalewayExecutor(
            {PROJECT_ID!r},
            access_key={ACCESS_KEY!r},
            secret_key={SECRET_KEY!r},
            api_url="http://127.0.0.1:9",
            health_timeout=5.0,
        ) as executor:
            seen["after_construct"] = sdk()
            health = executor.health()
        seen["health"] = [str(health.healthy), health.detail]
        """
    )
    for module in ("scaleway.jobs.v1alpha2", "scaleway.cockpit.v1", "scaleway_core.api"):
        assert module in seen["after_construct"]
    assert "requests" in seen["after_construct"]
    healthy, detail = seen["health"]
    assert healthy == "False"
    assert detail.startswith("scaleway ListJobDefinitions failed: ConnectionError"), detail
    assert SECRET_KEY not in detail
