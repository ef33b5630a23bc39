"""The public face: exported names, the entry point, discovery without importing Google."""

from __future__ import annotations

import subprocess
import sys

import jobrelay_cloudrun
from jobrelay import load_executor_class
from jobrelay.testing import in_fresh_interpreter
from jobrelay_cloudrun import CloudRunExecutor


def test_exported_names() -> None:
    assert jobrelay_cloudrun.__all__ == [
        "CloudRunExecutor",
        "Size",
        "fit",
        "google_label",
        "google_labels",
        "job_name",
    ]


def test_entry_point_loads_the_executor() -> None:
    assert load_executor_class("cloudrun") is CloudRunExecutor


def test_discovery_does_not_import_google_clients() -> None:
    code = (
        "import sys, jobrelay\n"
        "names = [info.name for info in jobrelay.describe_executors()]\n"
        "assert 'cloudrun' in names, names\n"
        "assert 'google.cloud.run_v2' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


# Top-level modules of the SDK this package depends on (google-cloud-run/logging,
# google-api-core, google-auth, grpc, proto-plus, protobuf, requests).
_SDK = ("google", "grpc", "proto", "requests", "urllib3")


def test_importing_the_package_imports_no_sdk() -> None:
    same, parameters, sdk = in_fresh_interpreter(
        f"""
        import inspect
        import jobrelay, jobrelay_cloudrun
        from jobrelay_cloudrun import CloudRunExecutor
        loaded_class = jobrelay.load_executor_class("cloudrun")
        parameters = list(inspect.signature(loaded_class).parameters)
        result = [loaded_class is CloudRunExecutor, parameters, loaded(*{_SDK!r})]
        """
    )
    assert sdk == []
    assert same is True
    assert parameters[:4] == ["project", "region", "credentials", "api_endpoint"]


def test_constructing_imports_google_auth_and_checks_credentials() -> None:
    # No credentials given and none to find: google-auth's own error, reached through
    # the lazy modules in a fresh interpreter, becomes the ConfigError naming the argument.
    out = in_fresh_interpreter(
        """
        from jobrelay import ConfigError
        from jobrelay_cloudrun import CloudRunExecutor
        try:
            CloudRunExecutor("my-project", "europe-west1")
        except ConfigError as error:
            result = str(error)
        """,
        env={
            "GOOGLE_APPLICATION_CREDENTIALS": "/nonexistent/jobrelay-test-creds.json",
            "GCE_METADATA_HOST": "127.0.0.1:9",
            "GCE_METADATA_IP": "127.0.0.1:9",
        },
    )
    assert out.startswith("credentials: none given and none found: ")
    assert "/nonexistent/jobrelay-test-creds.json" in out
