"""The conformance kit: behaviour tests every executor, ours or yours, must pass.

Needs pytest. See :class:`ExecutorConformance` for the fixtures to supply; a backend's
conformance test file is a few lines. :func:`in_fresh_interpreter` runs a snippet in a
new Python, for what only a fresh process shows (which SDK modules an import loads).
"""

from jobrelay.testing._conformance import (
    ERR_MARKER,
    FAIL_EXIT_CODE,
    OUT_MARKER,
    ExecutorConformance,
    Scenario,
    wait_for_state,
)
from jobrelay.testing._fresh import in_fresh_interpreter

__all__ = [
    "ERR_MARKER",
    "FAIL_EXIT_CODE",
    "OUT_MARKER",
    "ExecutorConformance",
    "Scenario",
    "in_fresh_interpreter",
    "wait_for_state",
]
