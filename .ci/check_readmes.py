"""Check each package README: it exists, shows `pip install`, and its Python examples run.

Usage: python .ci/check_readmes.py packages/core packages/executor-mock ...

A fenced block that starts with ```python is executed in a fresh namespace; blocks
marked ```python skip-check are shown to readers but need a real backend, and are
only compiled.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

FENCE = re.compile(r"^```python( skip-check)?\n(.*?)^```", re.MULTILINE | re.DOTALL)


def check(folder: Path) -> list[str]:
    """Return the problems of one package README."""
    problems: list[str] = []
    readme = folder / "README.md"
    if not readme.is_file():
        return [f"{readme}: missing"]
    text = readme.read_text(encoding="utf-8")
    if "pip install" not in text:
        problems.append(f"{readme}: no `pip install` line")
    blocks = FENCE.findall(text)
    if not blocks:
        problems.append(f"{readme}: no ```python example")
    for index, (skip, code) in enumerate(blocks, 1):
        name = f"{readme}#example-{index}"
        try:
            compiled = compile(code, name, "exec")
            if not skip:
                exec(compiled, {"__name__": "__readme__"})  # noqa: S102 - our own docs
        except Exception as exc:  # noqa: BLE001 - report every failing example
            problems.append(f"{name}: {type(exc).__name__}: {exc}")
    return problems


def main(folders: list[str]) -> int:
    """Check every folder's README and the root README's links; exit 1 on problems."""
    problems = [p for folder in folders for p in check(Path(folder))]
    root = Path("README.md").read_text(encoding="utf-8")
    problems += [
        f"README.md: no link to {folder}/README.md"
        for folder in folders
        if f"{folder}/README.md" not in root
    ]
    for problem in problems:
        print(problem, file=sys.stderr)
    print(f"checked {len(folders)} package READMEs: {len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
