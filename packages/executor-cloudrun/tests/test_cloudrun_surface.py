"""The public face: exported names, the entry point, discovery without importing Google."""

from __future__ import annotations

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
