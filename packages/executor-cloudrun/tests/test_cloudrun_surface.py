"""The public face: exported names, the entry point, discovery without importing Google."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import jobrelay_cloudrun
from jobrelay import load_executor_class
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


def _fresh_interpreter(code: str, **env: str) -> str:
    """Run ``code`` in a new interpreter, as a user's command gets it; return its stdout."""
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **env},
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_importing_the_package_imports_no_sdk() -> None:
    code = (
        "import inspect, json, sys\n"
        "import jobrelay, jobrelay_cloudrun\n"
        "from jobrelay_cloudrun import CloudRunExecutor\n"
        "loaded = jobrelay.load_executor_class('cloudrun')\n"
        "parameters = list(inspect.signature(loaded).parameters)\n"
        "print(json.dumps({\n"
        "    'same': loaded is CloudRunExecutor,\n"
        "    'parameters': parameters,\n"
        f"    'sdk': sorted(m for m in sys.modules if m.split('.')[0] in {_SDK!r}),\n"
        "}))\n"
    )
    found = json.loads(_fresh_interpreter(code))
    assert found["sdk"] == []
    assert found["same"] is True
    assert found["parameters"][:4] == ["project", "region", "credentials", "api_endpoint"]


def test_constructing_imports_google_auth_and_checks_credentials() -> None:
    # No credentials given and none to find: google-auth's own error, reached through
    # the lazy modules in a fresh interpreter, becomes the ConfigError naming the argument.
    code = (
        "from jobrelay import ConfigError\n"
        "from jobrelay_cloudrun import CloudRunExecutor\n"
        "try:\n"
        "    CloudRunExecutor('my-project', 'europe-west1')\n"
        "except ConfigError as error:\n"
        "    print(error)\n"
    )
    out = _fresh_interpreter(
        code,
        GOOGLE_APPLICATION_CREDENTIALS="/nonexistent/jobrelay-test-creds.json",
        GCE_METADATA_HOST="127.0.0.1:9",
        GCE_METADATA_IP="127.0.0.1:9",
    )
    assert out.startswith("credentials: none given and none found: ")
    assert "/nonexistent/jobrelay-test-creds.json" in out
