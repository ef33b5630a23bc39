"""Shared fixtures: throwaway installed distributions, and registry state put back after."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest
from hypothesis import settings

from jobrelay import _registry

# Property tests run on slow shared CI machines: no per-example deadline.
settings.register_profile("jobrelay", deadline=None)
settings.load_profile("jobrelay")


class Site:
    """A directory on ``sys.path`` holding real ``.dist-info`` distributions and modules.

    ``importlib.metadata`` finds these exactly as it finds what pip installed: a
    ``<name>-<version>.dist-info`` folder with ``METADATA`` and ``entry_points.txt``.
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self.modules: list[str] = []

    def distribution(
        self,
        name: str,
        version: str = "1.0",
        *,
        entry_points: Mapping[str, Mapping[str, str]] | None = None,
        modules: Mapping[str, str] | None = None,
    ) -> None:
        """Install ``name`` with its entry points and top-level modules (name -> source)."""
        folder = self.root / f"{name.replace('-', '_')}-{version}.dist-info"
        folder.mkdir()
        (folder / "METADATA").write_text(
            f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n", encoding="utf-8"
        )
        sections = [
            f"[{group}]\n" + "".join(f"{key} = {value}\n" for key, value in points.items())
            for group, points in (entry_points or {}).items()
        ]
        (folder / "entry_points.txt").write_text("\n".join(sections), encoding="utf-8")
        records = [f"{folder.name}/METADATA,,", f"{folder.name}/entry_points.txt,,"]
        for module, source in (modules or {}).items():
            (self.root / f"{module}.py").write_text(source, encoding="utf-8")
            self.modules.append(module)
            records.append(f"{module}.py,,")
        (folder / "RECORD").write_text("\n".join([*records, f"{folder.name}/RECORD,,"]) + "\n")
        importlib.invalidate_caches()

    def imported(self) -> list[str]:
        """The modules of this site that have been imported so far."""
        return sorted(module for module in self.modules if module in sys.modules)


@pytest.fixture
def registry_state() -> Iterator[None]:
    """Put the executor registry back as it was, whatever a test registered."""
    registry = _registry._registry
    saved = (registry._entries, dict(registry._explicit), dict(registry._classes))
    registry._entries = None  # make the test read entry points afresh
    try:
        yield
    finally:
        registry._entries, explicit, classes = saved
        registry._explicit.clear()
        registry._explicit.update(explicit)
        registry._classes.clear()
        registry._classes.update(classes)


@pytest.fixture
def site(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> Iterator[Site]:
    """A fresh site directory on ``sys.path``; its modules are unimported afterwards."""
    request.getfixturevalue("registry_state")
    root = tmp_path / "site"
    root.mkdir()
    monkeypatch.syspath_prepend(str(root))
    created = Site(root)
    yield created
    for module in created.modules:
        sys.modules.pop(module, None)
