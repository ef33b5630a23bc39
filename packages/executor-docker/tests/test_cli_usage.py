"""Bad Docker settings given on the command line are usage errors (exit 2), not launches."""

from __future__ import annotations

import subprocess
import sys

import docker
import pytest

from conftest import IMAGE

pytestmark = pytest.mark.docker


@pytest.mark.parametrize(
    ("flags", "named"),
    [
        (["--volume", "nocolon"], "volumes[0]"),
        (["--volume", "/tmp:relative"], "volumes[0]"),
    ],
)
def test_a_bad_setting_exits_2_naming_it_and_creates_nothing(
    flags: list[str], named: str, docker_api: docker.APIClient
) -> None:
    before = {c["Id"] for c in docker_api.containers(all=True)}
    proc = subprocess.run(
        [sys.executable, "-m", "jobrelay", "run", "--executor", "docker", *flags, IMAGE,
         "--", "true"],
        capture_output=True, text=True, check=False, timeout=60, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    [line] = proc.stderr.splitlines()
    assert line.startswith(f"jobrelay: error: {named}:"), line
    assert {c["Id"] for c in docker_api.containers(all=True)} <= before
