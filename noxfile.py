"""Every check a contributor or CI runs: one test session per package, then lint,
typecheck, docs and bench.

Each test session installs one package plus its test needs into its own virtualenv,
so a dependency a package forgot to declare fails its own session.
"""

from __future__ import annotations

from pathlib import Path

import nox

nox.options.default_venv_backend = "uv|virtualenv"
nox.options.reuse_existing_virtualenvs = False
nox.options.error_on_missing_interpreters = True
nox.options.sessions = ["tests", "lint", "typecheck", "docs"]

CORE = "packages/core"
TEST_TOOLS = ["pytest>=8", "hypothesis>=6.100"]

# package folder -> (the packages it needs from this repo, extra test requirements)
PACKAGES: dict[str, tuple[list[str], list[str]]] = {
    "core": ([CORE, "packages/executor-mock"], []),
    "executor-mock": ([CORE], []),
    "executor-docker": ([CORE], []),
    "executor-fargate": ([CORE], ["moto[server]>=5.2.5"]),
    "executor-cloudrun": ([CORE], ["google-api-python-client>=2.100"]),
    "executor-scaleway": ([CORE], []),
    "plugin-opentelemetry": (
        [CORE, "packages/executor-mock", "packages/executor-docker"],
        ["opentelemetry-sdk>=1.25"],
    ),
    "plugin-archive": ([CORE, "packages/executor-mock"], ["s3fs>=2024.2", "moto[server]>=5.2.5"]),
}
LINT_TOOLS = ["ruff>=0.6"]
TYPE_TOOLS = ["mypy>=1.10", "boto3-stubs[ecs,logs]", "nox>=2024.4", *TEST_TOOLS]


def _editable(paths: list[str]) -> list[str]:
    return [arg for path in paths for arg in ("-e", path)]


@nox.session
@nox.parametrize("package", list(PACKAGES))
def tests(session: nox.Session, package: str) -> None:
    """Run one package's tests in an environment holding only that package."""
    needs, extra = PACKAGES[package]
    folder = f"packages/{package}"
    session.install(*_editable([*needs, folder]), *TEST_TOOLS, *extra)
    session.run("pytest", f"{folder}/tests", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """Ruff lint and format check over the whole tree."""
    session.install(*LINT_TOOLS)
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session
def typecheck(session: nox.Session) -> None:
    """mypy --strict on every package, its tests and the benchmarks."""
    folders = [f"packages/{name}" for name in PACKAGES]
    extras = sorted({req for _, extra in PACKAGES.values() for req in extra})
    session.install(*_editable(folders), *TYPE_TOOLS, *extras, "docker>=7", "boto3>=1.34")
    session.run("mypy", *(f"{folder}/src" for folder in folders))
    for folder in folders:
        session.run("mypy", f"{folder}/tests")
    session.run("mypy", "benchmarks", ".ci/check_readmes.py", "noxfile.py")


@nox.session
def docs(session: nox.Session) -> None:
    """Every package README exists and its Python example runs against the installed code."""
    folders = [f"packages/{name}" for name in PACKAGES]
    session.install(*_editable(folders))
    session.run("python", ".ci/check_readmes.py", *folders)


@nox.session
def bench(session: nox.Session) -> None:
    """Run every benchmark in benchmarks/; each prints its figures and ratio."""
    folders = [f"packages/{name}" for name in PACKAGES]
    extras = sorted({req for _, extra in PACKAGES.values() for req in extra})
    session.install(*_editable(folders), *extras, "docker>=7")
    scripts = session.posargs or sorted(str(path) for path in Path("benchmarks").glob("bench_*.py"))
    for script in scripts:
        session.run("python", script)
