"""The public surface: ``__all__`` is exactly the documented names, sorted, and importable.

A name added to or dropped from a public module must be added to or dropped from the
lists below on purpose: that is the point of this test.
"""

from __future__ import annotations

import importlib.metadata
import logging
import re
import subprocess
import sys
import types

import pytest

import jobrelay
import jobrelay.backend
import jobrelay.errors
import jobrelay.labels
import jobrelay.testing
import jobrelay_mock

JOBRELAY = [
    # values and models
    "ROUTE_METADATA_KEY",
    "Capabilities",
    "Cost",
    "Execution",
    "Health",
    "JobResult",
    "JobSpec",
    "JobState",
    "JobStatus",
    "LogLine",
    "Logs",
    "Resources",
    "parse_memory",
    # the executor contract and registry
    "CostEstimator",
    "Executor",
    "ExecutorInfo",
    "ManagedLister",
    "StdinFeeder",
    "available_executors",
    "describe_executors",
    "get_executor",
    "load_executor_class",
    "register_executor",
    # errors (also in jobrelay.errors)
    "ConfigError",
    "ExecutorError",
    "ExecutorLoadError",
    "ExecutorNotFoundError",
    "JobTimeoutError",
    "JobrelayError",
    "LaunchError",
    "NoExecutorAvailableError",
    "RuleError",
    "SpecError",
    "TransientExecutorError",
    "errors",
    # hooks, retries, time
    "Clock",
    "Hooks",
    "ManualClock",
    "RetryPolicy",
    "SystemClock",
    "hookimpl",
    "is_testing",
    "set_testing",
    # routing
    "Rule",
    "RouteCandidate",
    "RouteDecision",
    "Router",
    "RoutingRule",
    "compile_rule",
    # the runner; Progress is what a progress display reads
    "JobHandle",
    "Progress",
    "Runner",
]

ERRORS = [
    "ConfigError",
    "ExecutorError",
    "ExecutorLoadError",
    "ExecutorNotFoundError",
    "JobTimeoutError",
    "JobrelayError",
    "LaunchError",
    "NoExecutorAvailableError",
    "RuleError",
    "SpecError",
    "TransientExecutorError",
]

TESTING = [
    "ERR_MARKER",
    "FAIL_EXIT_CODE",
    "OUT_MARKER",
    "ExecutorConformance",
    "Scenario",
    "in_fresh_interpreter",
    "wait_for_state",
]

MOCK = ["MockEvent", "MockExecutor", "MockOutcome", "outcome_from_labels"]

LABELS = [
    "EXECUTOR",
    "JOB_ID",
    "JOB_NAME",
    "KEYS",
    "MANAGED",
    "OWNER",
    "default_owner",
    "is_managed",
    "launching_for",
    "owner_of",
    "workload_labels",
]

BACKEND = [
    "MASK",
    "ErrorTable",
    "ExecutorBase",
    "RateLimiter",
    "Scrubber",
    "billed_seconds",
    "duration_of",
    "follow_logs",
    "lazy_import",
    "load_price_document",
    "make_result",
    "paginate",
    "parse_price",
    "probe_health",
    "scrub",
    "secret_forms",
    "utc_from_epoch",
    "wait_until_terminal",
]

MODULES = [
    pytest.param(jobrelay, JOBRELAY, id="jobrelay"),
    pytest.param(jobrelay.errors, ERRORS, id="jobrelay.errors"),
    pytest.param(jobrelay.testing, TESTING, id="jobrelay.testing"),
    pytest.param(jobrelay_mock, MOCK, id="jobrelay_mock"),
    pytest.param(jobrelay.labels, LABELS, id="jobrelay.labels"),
    pytest.param(jobrelay.backend, BACKEND, id="jobrelay.backend"),
]


@pytest.mark.parametrize(("module", "documented"), MODULES)
def test_all_is_the_documented_names(module: types.ModuleType, documented: list[str]) -> None:
    assert sorted(module.__all__) == sorted(documented)
    assert len(set(module.__all__)) == len(module.__all__)


def _isort_style(name: str) -> tuple[int, list[int | str]]:
    # The order ruff's RUF022 (enabled for this repository) keeps: CONSTANTS, then
    # CamelCase, then the rest; a natural sort (digits as numbers) within each group.
    if len(name) > 1 and name.isupper():
        group = 0
    elif name[:1].isupper():
        group = 1
    else:
        group = 2
    parts = re.split(r"(\d+)", name)
    return group, [int(part) if part.isdigit() else part for part in parts]


def test_isort_style_order() -> None:
    names = ["wait_for_state", "Scenario", "OUT_MARKER", "JobrelayError", "JobTimeoutError"]
    assert sorted(names, key=_isort_style) == [
        "OUT_MARKER",
        "JobTimeoutError",
        "JobrelayError",
        "Scenario",
        "wait_for_state",
    ]
    assert sorted(["v10", "v9"], key=_isort_style) == ["v9", "v10"]


@pytest.mark.parametrize("module", [p.values[0] for p in MODULES], ids=[str(p.id) for p in MODULES])
def test_all_is_sorted(module: types.ModuleType) -> None:
    assert list(module.__all__) == sorted(module.__all__, key=_isort_style)


@pytest.mark.parametrize("module", [p.values[0] for p in MODULES], ids=[str(p.id) for p in MODULES])
def test_every_name_exists_and_is_documented(module: types.ModuleType) -> None:
    for name in module.__all__:
        value = getattr(module, name)
        if isinstance(value, (type, types.FunctionType)):
            assert value.__doc__, f"{module.__name__}.{name} has no docstring"


def test_star_import_gives_exactly_all() -> None:
    namespace: dict[str, object] = {}
    exec("from jobrelay import *", namespace)  # noqa: S102 - a fixed literal, not input
    assert sorted(k for k in namespace if k != "__builtins__") == sorted(jobrelay.__all__)


def test_errors_are_the_same_objects() -> None:
    for name in ERRORS:
        assert getattr(jobrelay, name) is getattr(jobrelay.errors, name)


def test_error_tree() -> None:
    errors = jobrelay.errors
    for name in ERRORS:
        assert issubclass(getattr(errors, name), errors.JobrelayError)
    assert issubclass(errors.SpecError, ValueError)
    assert issubclass(errors.JobTimeoutError, TimeoutError)
    assert issubclass(errors.ExecutorNotFoundError, LookupError)
    assert issubclass(errors.LaunchError, errors.ExecutorError)
    assert issubclass(errors.TransientExecutorError, errors.ExecutorError)
    assert not issubclass(errors.TransientExecutorError, errors.LaunchError)
    assert errors.__doc__ is not None
    for name in ERRORS:
        assert name in errors.__doc__, f"{name} missing from the tree in the docstring"


def test_no_third_party_machinery_leaks() -> None:
    # tenacity stays behind RetryPolicy; pluggy's hookimpl marker is the documented exception.
    for name in jobrelay.__all__:
        value = getattr(jobrelay, name)
        if isinstance(value, (type, types.FunctionType)):
            assert value.__module__.startswith("jobrelay"), f"{name} is {value.__module__}'s"
        assert "tenacity" not in type(value).__module__


def test_version_and_null_handler() -> None:
    assert jobrelay.__version__ == importlib.metadata.version("jobrelay")
    handlers = logging.getLogger("jobrelay").handlers
    assert any(isinstance(handler, logging.NullHandler) for handler in handlers)


def test_listing_executors_loads_no_router_runner_or_rule_compiler() -> None:
    code = (
        "import sys, jobrelay; jobrelay.available_executors(); "
        "print(sorted(m for m in sys.modules if m.startswith('jobrelay')))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    for heavy in ("_router", "_runner", "_rule_compiler", "_cli", "_hooks"):
        assert f"jobrelay.{heavy}" not in loaded, loaded
