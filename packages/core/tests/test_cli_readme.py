"""The batch file and router config examples of the README's "Command line" section, run.

The router example names docker and fargate executors, which the core test
environment does not install: its executors are swapped for mocks (keeping
``enabled`` and ``max_concurrent``), so the rules, priorities, default and fallback
are what is tested, through `jobrelay route`.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

import pytest

from test_cli import jobrelay

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib  # type: ignore[import-not-found, unused-ignore]

README = Path(__file__).parents[1] / "README.md"
_BLOCK = re.compile(r"^```toml\n# (?P<name>[\w.]+)\n(?P<body>.*?)^```", re.MULTILINE | re.DOTALL)


def example(name: str) -> str:
    text = README.read_text(encoding="utf-8")
    section = text[text.index("\n## Command line\n") :]
    blocks = {m["name"]: m["body"] for m in _BLOCK.finditer(section)}
    assert name in blocks, f"no ```toml block starting '# {name}' in the Command line section"
    return blocks[name]


def test_batch_example_runs(tmp_path: Path) -> None:
    path = tmp_path / "jobs.toml"
    path.write_text(example("jobs.toml"))
    proc = jobrelay("batch", str(path), "--executor", "mock", "--json", "--quiet")
    assert proc.returncode == 0, proc.stderr
    records = [json.loads(line) for line in proc.stdout.splitlines()]
    assert sorted(r["name"] for r in records) == ["extract", "report"]
    assert {r["state"] for r in records} == {"succeeded"}
    assert "report-2024-06-01" in {r["job_id"] for r in records}


def _as_mocks(config: dict[str, Any]) -> dict[str, Any]:
    kept = ("enabled", "max_concurrent")
    config["executors"] = {
        name: {"type": "mock", **{key: entry[key] for key in kept if key in entry}}
        for name, entry in config["executors"].items()
    }
    return config


def _toml(data: dict[str, Any]) -> str:
    lines = [f"{key} = {json.dumps(value)}" for key, value in data.items() if key != "executors"]
    lines = [line for line in lines if not line.startswith("rules")]
    for name, entry in data["executors"].items():
        lines.append(f"[executors.{name}]")
        lines += [f"{key} = {json.dumps(value)}" for key, value in entry.items()]
    for rule in data.get("rules", []):
        lines.append("[[rules]]")
        lines += [f"{key} = {json.dumps(value)}" for key, value in rule.items()]
    return "\n".join(lines) + "\n"


@pytest.fixture
def router_config(tmp_path: Path) -> Path:
    config = tomllib.loads(example("jobrelay.toml"))
    assert {entry["type"] for entry in config["executors"].values()} == {"docker", "fargate"}
    path = tmp_path / "jobrelay.toml"
    path.write_text(_toml(_as_mocks(config)))
    return path


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        ([], "local\tdefault"),
        (["--memory", "16Gi"], "fargate\ttoo big for this machine"),
        (["--cpu", "8"], "fargate\ttoo big for this machine"),
        # priority 0 (tests stay local) comes before priority 10: lower first
        (["--name", "test-x", "--memory", "16Gi"], "local\ttests stay local"),
    ],
)
def test_router_example_routes_as_the_readme_says(
    router_config: Path, flags: list[str], expected: str
) -> None:
    proc = jobrelay("route", "--config", str(router_config), *flags, "busybox")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[0] == expected
