"""Plugins installed for real: a fresh virtualenv holding only jobrelay, jobrelay-mock,
a tiny working executor distribution and a broken one, all installed by the installer.

This is the check a plugin author runs first: discovery lists the names without
importing any backend SDK, the working plugin runs a job, and the broken one raises
ExecutorLoadError naming its entry point and distribution without hurting the others.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]

WORKING = """
from datetime import datetime, timezone
from jobrelay import Capabilities, Execution, Health, JobResult, JobState, JobStatus, Logs


class TinyExecutor:
    name = "tiny"

    def __init__(self, name="tiny"):
        self.name = name

    def launch(self, job):
        return Execution(self.name, "tiny-" + job.job_id, job.job_id, datetime.now(timezone.utc))

    def status(self, execution):
        return JobStatus(JobState.SUCCEEDED, 0)

    def statuses(self, executions):
        return {e.execution_id: self.status(e) for e in executions}

    def logs(self, execution, *, tail=None):
        return Logs("tiny says hi\\n")

    def stream_logs(self, execution):
        return iter(())

    def harvest(self, execution):
        return JobResult(execution, self.status(execution), self.logs(execution))

    def cancel(self, execution):
        pass

    def cleanup(self, execution):
        pass

    def capabilities(self):
        return Capabilities(log_streaming=False)

    def health(self):
        return Health(True)

    def close(self):
        pass
"""

CHECK = """
import json, sys
import jobrelay
from jobrelay import JobSpec, get_executor, ExecutorLoadError

names = jobrelay.available_executors()
sdk = sorted(m for m in sys.modules if m.startswith(("docker", "boto", "google", "scaleway")))
plugin_modules = sorted(m for m in sys.modules if m.startswith(("tiny_plugin", "broken_plugin")))
out = {"names": names, "sdk": sdk, "plugin_modules_after_discovery": plugin_modules}
try:
    get_executor("broken")
except ExecutorLoadError as exc:
    out["broken"] = {"message": str(exc), "entry_point": exc.entry_point,
                     "distribution": exc.distribution, "alternatives": list(exc.alternatives)}
tiny = get_executor("tiny")
out["tiny"] = tiny.harvest(tiny.launch(JobSpec("busybox", "true"))).logs.stdout
mock = get_executor("mock")
out["mock"] = mock.harvest(mock.launch(JobSpec("busybox", "true"))).state.value
print(json.dumps(out))
"""


def _plugin(root: Path, dist: str, module: str, source: str, target: str, name: str) -> Path:
    folder = root / dist
    (folder / module).mkdir(parents=True)
    (folder / module / "__init__.py").write_text(source, encoding="utf-8")
    (folder / "pyproject.toml").write_text(
        textwrap.dedent(
            f"""
            [build-system]
            requires = ["hatchling"]
            build-backend = "hatchling.build"

            [project]
            name = "{dist}"
            version = "0.0.1"
            dependencies = ["jobrelay"]

            [project.entry-points."jobrelay.executors"]
            {name} = "{target}"
            """
        ),
        encoding="utf-8",
    )
    return folder


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    uv = shutil.which("uv")
    if uv is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("uv is required under CI=true to build the plugin environment")
        pytest.skip("uv not on PATH")
    root = tmp_path_factory.mktemp("plugin-env")
    working = _plugin(
        root, "tiny-plugin", "tiny_plugin", WORKING, "tiny_plugin:TinyExecutor", "tiny"
    )
    broken = _plugin(
        root,
        "broken-plugin",
        "broken_plugin",
        "raise ImportError('broken_plugin needs libfoo, which is not installed')\n",
        "broken_plugin:Executor",
        "broken",
    )
    env = root / "venv"
    subprocess.run([uv, "venv", "--quiet", "--python", sys.executable, str(env)], check=True)
    python = env / "bin" / "python"
    subprocess.run(
        [
            uv,
            "pip",
            "install",
            "--quiet",
            "--python",
            str(python),
            str(ROOT / "packages" / "core"),
            str(ROOT / "packages" / "executor-mock"),
            str(working),
            str(broken),
        ],
        check=True,
        timeout=300,
    )
    return python


def test_installed_plugins_discovered_loaded_and_isolated(venv: Path) -> None:
    proc = subprocess.run(
        [str(venv), "-c", CHECK], capture_output=True, text=True, check=False, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["names"] == ["broken", "mock", "tiny"]
    assert out["sdk"] == []
    assert out["plugin_modules_after_discovery"] == []
    broken = out["broken"]
    assert broken["entry_point"] == "broken_plugin:Executor"
    assert broken["distribution"] == "broken-plugin"
    assert broken["alternatives"] == ["mock", "tiny"]
    assert "needs libfoo" in broken["message"]
    assert out["tiny"] == "tiny says hi\n"
    assert out["mock"] == "succeeded"


def test_done_when_command(venv: Path) -> None:
    """Listing executors in an environment without any backend SDK."""
    command = (
        "import jobrelay, sys; print(jobrelay.available_executors()); "
        "print(sorted(m for m in sys.modules "
        "if m.startswith(('docker','boto','google','scaleway'))))"
    )
    proc = subprocess.run(
        [str(venv), "-c", command], capture_output=True, text=True, check=True, timeout=60
    )
    names, sdk = proc.stdout.splitlines()
    assert "'mock'" in names
    assert sdk == "[]"


def test_cli_in_installed_environment(venv: Path) -> None:
    script = venv.parent / "jobrelay"
    proc = subprocess.run(
        [str(script), "run", "--executor", "tiny", "busybox"],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "tiny says hi\n"
    proc = subprocess.run(
        [str(script), "run", "--executor", "broken", "busybox"],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert proc.returncode == 2
    assert "broken-plugin" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
