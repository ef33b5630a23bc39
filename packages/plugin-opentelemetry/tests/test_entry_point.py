"""The entry point: installing the distribution makes every Router's hooks record spans.

Three levels: the installed metadata names the plugin; a Runner whose hooks load entry
points records spans through the global providers (in a subprocess, which owns its
global providers); and a fresh virtualenv where the distribution is installed, then
uninstalled, by the installer, with the hooks running and then gone.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import pytest

import jobrelay_opentelemetry
from conftest import IN_CI
from jobrelay import Hooks, JobSpec

ROOT = Path(__file__).resolve().parents[3]

# Global SDK providers, a Runner on the mock with the default Hooks(): entry points load.
CHECK = """
import json
from importlib.metadata import entry_points
from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from jobrelay import JobSpec, Router, Runner
from jobrelay_mock import MockExecutor

exporter = InMemorySpanExporter()
tracer_provider = TracerProvider()
tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
trace.set_tracer_provider(tracer_provider)
reader = InMemoryMetricReader()
metrics.set_meter_provider(MeterProvider(metric_readers=[reader]))

router = Router({"mock": MockExecutor()}, default="mock")
with Runner(router, poll_interval=0.05) as runner:
    (result,) = runner.run([JobSpec("busybox", "true", job_id="ep-job")])
names = sorted(
    m.name for rm in reader.get_metrics_data().resource_metrics
    for sm in rm.scope_metrics for m in sm.metrics
) if reader.get_metrics_data() is not None else []
print(json.dumps({
    "state": result.state.value,
    "plugins": sorted(ep.name for ep in entry_points(group="jobrelay.plugins")),
    "spans": sorted(
        (s.name, s.attributes.get("jobrelay.job.id", "")) for s in exporter.get_finished_spans()
    ),
    "metrics": names,
}))
"""


def test_distribution_publishes_the_plugin_instance() -> None:
    (ep,) = [ep for ep in entry_points(group="jobrelay.plugins") if ep.name == "opentelemetry"]
    assert ep.value == "jobrelay_opentelemetry:plugin"
    assert ep.dist is not None
    assert ep.dist.name == "jobrelay-opentelemetry"
    assert ep.load() is jobrelay_opentelemetry.plugin


def test_hooks_that_load_entry_points_register_it() -> None:
    hooks = Hooks()
    hooks.emit(
        "job_routed", job=JobSpec("busybox", "true"), decision=None
    )  # loading happens on first use
    assert hooks.manager.get_plugin("opentelemetry") is jobrelay_opentelemetry.plugin
    jobrelay_opentelemetry.plugin.close()
    assert Hooks(load_entry_points=False).manager.get_plugin("opentelemetry") is None


def test_a_runner_records_spans_through_the_global_providers() -> None:
    out = _check(Path(sys.executable))
    assert out["state"] == "succeeded"
    assert "opentelemetry" in out["plugins"]
    assert out["spans"] == [["jobrelay.job", "ep-job"], ["jobrelay.launch", ""]]
    assert "jobrelay.job.finished" in out["metrics"]
    assert "jobrelay.job.duration" in out["metrics"]


def test_install_then_uninstall_in_a_fresh_environment(tmp_path: Path) -> None:
    uv = shutil.which("uv")
    if uv is None:
        if IN_CI:
            pytest.fail("uv is required under CI=true to build the plugin environment")
        pytest.skip("uv not on PATH")
    env = tmp_path / "venv"
    subprocess.run([uv, "venv", "--quiet", "--python", sys.executable, str(env)], check=True)
    python = env / "bin" / "python"
    install = [uv, "pip", "install", "--quiet", "--python", str(python)]
    subprocess.run(
        [
            *install,
            str(ROOT / "packages" / "core"),
            str(ROOT / "packages" / "executor-mock"),
            str(ROOT / "packages" / "plugin-opentelemetry"),
            "opentelemetry-sdk>=1.25",
        ],
        check=True,
        timeout=300,
    )
    installed = _check(python)
    assert installed["plugins"] == ["opentelemetry"]
    assert installed["spans"] == [["jobrelay.job", "ep-job"], ["jobrelay.launch", ""]]

    subprocess.run(
        [uv, "pip", "uninstall", "--quiet", "--python", str(python), "jobrelay-opentelemetry"],
        check=True,
        timeout=120,
    )
    removed = _check(python)
    assert removed["state"] == "succeeded"
    assert removed["plugins"] == []
    assert removed["spans"] == []
    assert removed["metrics"] == []


def _check(python: Path) -> dict[str, Any]:
    proc = subprocess.run(
        [str(python), "-c", CHECK], capture_output=True, text=True, check=False, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    result: dict[str, Any] = json.loads(proc.stdout)
    return result
