"""Entry-point conformance: installed, the hooks run through a Runner; uninstalled, gone."""

from __future__ import annotations

import importlib.metadata as importlib_metadata
import json
import os
import shutil
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import pytest

import jobrelay_archive
from conftest import FILES, jobs, read_tree, run_jobs
from jobrelay import Execution, Hooks, JobResult, JobState, JobStatus, Logs

ROOT = Path(__file__).resolve().parents[3]


def test_entry_point_is_the_plugin_object() -> None:
    [ep] = importlib_metadata.entry_points(group="jobrelay.plugins", name="archive")
    assert ep.value == "jobrelay_archive:plugin"
    assert ep.dist is not None
    assert ep.dist.name == "jobrelay-archive"
    assert ep.load() is jobrelay_archive.plugin


def test_installed_plugin_archives_through_a_default_runner(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(jobrelay_archive.ENV_URL, tmp_path.as_uri())
    hooks = Hooks()  # loads the jobrelay.plugins entry points, as every Router does
    results = run_jobs(None, jobs(2), hooks=hooks)
    assert hooks.manager.get_plugin("archive") is jobrelay_archive.plugin
    assert jobrelay_archive.flush(10)
    tree = read_tree(tmp_path)
    assert sorted(tree) == sorted(f"mock/{r.execution.job_id}/{f}" for r in results for f in FILES)
    archive = jobrelay_archive.current()
    assert archive is not None
    assert archive.url == tmp_path.as_uri()


def test_without_a_url_the_plugin_does_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(jobrelay_archive.ENV_URL, raising=False)
    monkeypatch.chdir(tmp_path)
    run_jobs(None, jobs(1), hooks=Hooks())
    assert jobrelay_archive.current() is None
    assert list(tmp_path.iterdir()) == []


def test_bad_environment_is_logged_once_and_disables(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv(jobrelay_archive.ENV_URL, "nosuchprotocol://x")
    run_jobs(None, jobs(3), hooks=Hooks())
    assert jobrelay_archive.current() is None
    errors = [r for r in caplog.records if "jobrelay-archive disabled" in r.getMessage()]
    assert len(errors) == 1
    assert "url: cannot open 'nosuchprotocol://x'" in errors[0].getMessage()


def test_configure_replaces_and_flushes_the_previous_archive(tmp_path: Path) -> None:
    first = jobrelay_archive.configure((tmp_path / "a").as_uri())
    run_jobs(None, jobs(2), hooks=Hooks())
    second = jobrelay_archive.configure((tmp_path / "b").as_uri(), when_full="block")
    assert jobrelay_archive.current() is second
    assert first.stats().written == 2
    assert first.stats().pending == 0
    assert not first.submit(*_any_result())  # closed
    run_jobs(None, jobs(1), hooks=Hooks())
    assert jobrelay_archive.close(10)
    assert len(list((tmp_path / "a").rglob("result.json"))) == 2
    assert len(list((tmp_path / "b").rglob("result.json"))) == 1


def _any_result() -> tuple[Execution, JobResult]:
    execution = Execution("mock", "m", "j", datetime.now(timezone.utc))
    return execution, JobResult(execution, JobStatus(JobState.SUCCEEDED), Logs())


CHECK = """
import json, pathlib, sys
from jobrelay import Hooks, JobSpec, Router, Runner
from jobrelay_mock import MockExecutor

root = pathlib.Path(sys.argv[1])
hooks = Hooks()
with Runner(Router([MockExecutor()], default="mock", hooks=hooks), poll_interval=0.05) as runner:
    [result] = runner.run([JobSpec("busybox", "true", job_id=sys.argv[2])])
hooks.manager.check_pending()
print(json.dumps({
    "plugins": sorted(name for name, _ in hooks.manager.list_name_plugin()),
    "state": result.state.value,
}))
"""


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    uv = shutil.which("uv")
    if uv is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("uv is required under CI=true to build the plugin environment")
        pytest.skip("uv not on PATH")
    env = tmp_path_factory.mktemp("archive-env") / "venv"
    subprocess.run([uv, "venv", "--quiet", "--python", sys.executable, str(env)], check=True)
    python = env / "bin" / "python"
    packages = ["core", "executor-mock", "plugin-archive"]
    subprocess.run(
        [uv, "pip", "install", "--quiet", "--python", str(python)]
        + [str(ROOT / "packages" / name) for name in packages],
        check=True,
        timeout=300,
    )
    return python


def _check(python: Path, root: Path, job_id: str) -> dict[str, object]:
    env = {**os.environ, "JOBRELAY_ARCHIVE_URL": root.as_uri()}
    proc = subprocess.run(
        [str(python), "-c", CHECK, str(root), job_id],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr
    out: dict[str, object] = json.loads(proc.stdout)
    return out


def test_install_then_uninstall(venv: Path, tmp_path: Path) -> None:
    root = tmp_path / "archive"
    installed = _check(venv, root, "with-plugin")
    assert installed == {"plugins": ["archive"], "state": "succeeded"}
    assert sorted(read_tree(root)) == [f"mock/with-plugin/{name}" for name in FILES]
    uv = shutil.which("uv")
    assert uv is not None
    subprocess.run(
        [uv, "pip", "uninstall", "--quiet", "--python", str(venv), "jobrelay-archive"],
        check=True,
        timeout=120,
    )
    removed = _check(venv, root, "without-plugin")
    assert removed == {"plugins": [], "state": "succeeded"}
    assert not (root / "mock" / "without-plugin").exists()
