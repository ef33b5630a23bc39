"""jobrelay.backend.lazy_import: an SDK imported at its first use, once, from any thread."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from jobrelay.backend import lazy_import


def python(code: str) -> str:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True, text=True, check=True, timeout=60,
    ).stdout  # fmt: skip


def test_nothing_is_imported_until_an_attribute_is_read() -> None:
    out = python(
        """
        import sys
        from jobrelay.backend import lazy_import
        fractions = lazy_import("fractions")
        print("fractions" in sys.modules, repr(fractions))
        print(fractions.Fraction(1, 3), "fractions" in sys.modules, repr(fractions))
        """
    )
    assert out.splitlines() == [
        "False <lazy module 'fractions' (not yet imported)>",
        "1/3 True <lazy module 'fractions' (imported)>",
    ]


def test_the_module_runs_once_when_many_threads_read_at_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "slow_sdk.py").write_text(
        "import time\nRUNS = []\nRUNS.append(1)\ntime.sleep(0.2)\nclass Client: pass\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    sdk = lazy_import("slow_sdk")
    seen: list[object] = []
    threads = [threading.Thread(target=lambda: seen.append(sdk.Client)) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert len(seen) == 8
    assert len({id(cls) for cls in seen}) == 1
    assert sdk.RUNS == [1]
    assert sys.modules["slow_sdk"].Client is seen[0]


def test_a_missing_module_raises_at_each_use_not_at_the_stand_in() -> None:
    missing = lazy_import("no_such_sdk_for_jobrelay")
    for _ in range(2):
        with pytest.raises(ModuleNotFoundError, match="no_such_sdk_for_jobrelay"):
            _ = missing.Client


def test_in_fresh_interpreter_returns_the_result_and_fails_with_stderr() -> None:
    from jobrelay.testing import in_fresh_interpreter  # noqa: PLC0415 - the kit needs pytest

    seen = in_fresh_interpreter(
        """
        import os
        from jobrelay.backend import lazy_import
        fractions = lazy_import("fractions")
        result = [loaded("fractions"), os.environ["JOBRELAY_T"]]
        """,
        env={"JOBRELAY_T": "given"},
    )
    assert seen == [[], "given"]
    with pytest.raises(AssertionError, match="ZeroDivisionError"):
        in_fresh_interpreter("result = 1 / 0")
