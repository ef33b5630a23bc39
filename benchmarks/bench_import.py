"""Import cost: ``import jobrelay; jobrelay.available_executors()`` against its dependencies.

Each side runs in a fresh interpreter (``python -X importtime`` is not used: it slows
imports unevenly), alternating, many times; the medians are compared. The target is a
ratio of at most 1.2: jobrelay's own import adds little to what its dependencies
(attrs, pluggy, tenacity) and the standard ``importlib.metadata`` it reads entry
points with cost together.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile

ROUNDS = 25
BASELINE = "import attrs, pluggy, tenacity, importlib.metadata"
JOBRELAY = "import jobrelay; jobrelay.available_executors()"
EMPTY = "pass"


def timed(code: str, env: dict[str, str]) -> float:
    """Return the wall time of a fresh interpreter running ``code``, startup excluded."""
    script = f"import time; _t = time.perf_counter()\n{code}\nprint(time.perf_counter() - _t)"
    out = subprocess.run(
        [sys.executable, "-c", script], check=True, capture_output=True, text=True, env=env
    ).stdout
    return float(out.strip().splitlines()[-1])


def main() -> None:
    """Measure both sides alternately and print the medians and their ratio."""
    # Imports as users have them: compiled once. A machine with PYTHONDONTWRITEBYTECODE
    # would otherwise compile every module on every start, on both sides.
    cache = tempfile.mkdtemp(prefix="bench-import-")
    env = {**os.environ, "PYTHONPYCACHEPREFIX": cache}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    timed(BASELINE, env)
    timed(JOBRELAY, env)
    sides: dict[str, list[float]] = {"deps": [], "jobrelay": []}
    for _ in range(ROUNDS):
        sides["deps"].append(timed(BASELINE, env))
        sides["jobrelay"].append(timed(JOBRELAY, env))
    deps = statistics.median(sides["deps"])
    ours = statistics.median(sides["jobrelay"])
    print(f"import of attrs+pluggy+tenacity+importlib.metadata: {deps * 1000:.1f} ms (median)")
    print(f"import jobrelay; available_executors():            {ours * 1000:.1f} ms (median)")
    print(f"ratio jobrelay / dependencies: {ours / deps:.2f} (target <= 1.20)")


if __name__ == "__main__":
    main()
