"""Running a snippet in a new interpreter, as a user's program starts (import costs)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Mapping
from typing import Any

__all__ = ["in_fresh_interpreter"]

_PRELUDE = """\
import json as _json, sys as _sys


def loaded(*packages):
    return sorted(m for m in _sys.modules if m.split(".")[0] in packages)


result = None
"""
_REPORT = '\nprint("\\n" + _json.dumps(result))\n'


def in_fresh_interpreter(
    code: str, *, env: Mapping[str, str] | None = None, timeout: float = 120
) -> Any:
    """Run ``code`` in a new Python and return the ``result`` it leaves (JSON values).

    For what only a fresh process shows, such as which modules an import pulls in.
    ``code`` (dedented) may call ``loaded(*packages)``: the sorted names of the
    imported modules of those top-level packages. ``env`` is added to this process's
    environment.

    Example::

        assert in_fresh_interpreter("import jobrelay_fargate; result = loaded('boto3')") == []

    Raises:
        AssertionError: the snippet failed (an ``assert`` in it, an error); the
            message has its stderr.
    """
    script = _PRELUDE + textwrap.dedent(code) + _REPORT
    done = subprocess.run(  # noqa: S603 - our own interpreter, our own snippet
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
        check=False,
    )
    if done.returncode != 0:
        raise AssertionError(f"the snippet failed in a fresh interpreter:\n{done.stderr}")
    return json.loads(done.stdout.rstrip().rsplit("\n", 1)[-1])
