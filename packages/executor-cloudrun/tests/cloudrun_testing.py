"""Types shared by the tests (a module of its own: ``conftest`` is not importable by name)."""

from __future__ import annotations

from collections.abc import Callable

from jobrelay_cloudrun import CloudRunExecutor

MakeExecutor = Callable[..., CloudRunExecutor]
