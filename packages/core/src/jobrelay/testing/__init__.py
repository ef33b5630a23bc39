"""The conformance kit: behaviour tests every executor, ours or yours, must pass.

Needs pytest. See :class:`ExecutorConformance` for the fixtures to supply; a backend's
conformance test file is a few lines.
"""

from jobrelay.testing._conformance import (
    ERR_MARKER,
    FAIL_EXIT_CODE,
    OUT_MARKER,
    ExecutorConformance,
    Scenario,
    wait_for_state,
)

__all__ = [
    "ERR_MARKER",
    "FAIL_EXIT_CODE",
    "OUT_MARKER",
    "ExecutorConformance",
    "Scenario",
    "wait_for_state",
]
