"""Importing jobrelay_fargate must not import boto3: the SDK comes with the first executor."""

from __future__ import annotations

from jobrelay.testing import in_fresh_interpreter

SDK = ("boto3", "botocore", "s3transfer", "jmespath", "dateutil")


def test_import_and_signature_load_no_sdk() -> None:
    loaded = in_fresh_interpreter(
        f"""
        import inspect
        import jobrelay
        import jobrelay_fargate

        parameters = inspect.signature(jobrelay_fargate.FargateExecutor).parameters
        assert "cluster" in parameters and "session" in parameters
        assert jobrelay.load_executor_class("fargate") is jobrelay_fargate.FargateExecutor
        result = loaded(*{SDK!r})
        """
    )
    assert loaded == []


def test_constructing_an_executor_loads_the_sdk_and_it_works() -> None:
    # The other half: the stand-ins resolve to the real botocore when used. A refused
    # connection must come back as an unhealthy Health (botocore's error caught).
    after_construct, (healthy, detail) = in_fresh_interpreter(
        f"""
        from jobrelay_fargate import FargateExecutor

        with FargateExecutor(
            "c", ["subnet-1"], [], region="eu-west-1", endpoint_url="http://127.0.0.1:9"
        ) as executor:
            modules = loaded(*{SDK!r})
            health = executor.health()
        result = [modules, [health.healthy, health.detail]]
        """,
        env={"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"},
    )
    assert "boto3" in after_construct
    assert "botocore.exceptions" in after_construct
    assert healthy is False
    assert detail.startswith("DescribeClusters failed:")
    assert "127.0.0.1:9" in detail
