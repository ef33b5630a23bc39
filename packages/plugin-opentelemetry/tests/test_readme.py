"""The README's example runs, with the SDK and the entry point, in a fresh interpreter.

The repository's docs check only compiles it (its environment holds no SDK), so it is
run here, in a subprocess because it installs the global tracer provider.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_example_runs() -> None:
    blocks = re.findall(r"^```python[^\n]*\n(.*?)^```", README.read_text("utf-8"), re.M | re.S)
    assert len(blocks) == 1
    proc = subprocess.run(
        [sys.executable, "-c", blocks[0]], capture_output=True, text=True, check=False, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
