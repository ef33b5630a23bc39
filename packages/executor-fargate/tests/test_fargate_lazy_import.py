"""Importing jobrelay_fargate must not import boto3: the SDK comes with the first executor."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

SDK_PREFIXES = ("boto3", "botocore", "s3transfer", "jmespath", "dateutil")


def _fresh(code: str) -> dict[str, list[str]]:
    """Run ``code`` in a new interpreter, as a user's program starts; return its JSON."""
    script = textwrap.dedent(
        f"""
        import json, sys

        def sdk():
            return sorted(m for m in sys.modules if m.split(".")[0] in {SDK_PREFIXES!r})

        seen = {{}}
        {textwrap.indent(textwrap.dedent(code), "        ").strip()}
        print(json.dumps(seen))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, list[str]] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def test_import_and_signature_load_no_sdk() -> None:
    seen = _fresh(
        """
        import inspect
        import jobrelay
        import jobrelay_fargate

        parameters = inspect.signature(jobrelay_fargate.FargateExecutor).parameters
        assert "cluster" in parameters and "session" in parameters
        assert jobrelay.load_executor_class("fargate") is jobrelay_fargate.FargateExecutor
        seen["after_import"] = sdk()
        """
    )
    assert seen["after_import"] == []


def test_constructing_an_executor_loads_the_sdk_and_it_works() -> None:
    # The other half: the stand-ins resolve to the real botocore when used. A refused
    # connection must come back as an unhealthy Health (botocore's error caught).
    seen = _fresh(
        """
        import os
        os.environ.update(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing")
        from jobrelay_fargate import FargateExecutor

        with FargateExecutor(
            "c", ["subnet-1"], [], region="eu-west-1", endpoint_url="http://127.0.0.1:9"
        ) as executor:
            seen["after_construct"] = sdk()
            health = executor.health()
        seen["health"] = [str(health.healthy), health.detail]
        """
    )
    assert "boto3" in seen["after_construct"]
    assert "botocore.exceptions" in seen["after_construct"]
    healthy, detail = seen["health"]
    assert healthy == "False"
    assert detail.startswith("DescribeClusters failed:")
    assert "127.0.0.1:9" in detail
