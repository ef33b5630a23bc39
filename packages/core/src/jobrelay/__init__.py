"""jobrelay: run a container job on any backend through one API, with rule-based routing.

Example::

    from jobrelay import JobSpec, get_executor

    with get_executor("mock") as executor:
        execution = executor.launch(JobSpec("busybox", ["echo", "hello"]))
        print(executor.harvest(execution).logs.stdout)
"""

import importlib
import logging
from typing import TYPE_CHECKING, Any

from jobrelay import errors
from jobrelay.errors import (
    ConfigError,
    ExecutorError,
    ExecutorLoadError,
    ExecutorNotFoundError,
    JobrelayError,
    JobTimeoutError,
    LaunchError,
    NoExecutorAvailableError,
    RuleError,
    SpecError,
    TransientExecutorError,
)

# A library's logger stays silent unless the application configures logging.
logging.getLogger("jobrelay").addHandler(logging.NullHandler())

if TYPE_CHECKING:
    from jobrelay._clock import (
        Clock,
        ManualClock,
        SystemClock,
    )
    from jobrelay._hooks import (
        Hooks,
    )
    from jobrelay._models import (
        ROUTE_METADATA_KEY,
        Capabilities,
        Cost,
        Execution,
        Health,
        JobResult,
        JobState,
        JobStatus,
        LogLine,
        Logs,
    )
    from jobrelay._protocol import (
        CostEstimator,
        Executor,
        ManagedLister,
        StdinFeeder,
    )
    from jobrelay._registry import (
        ExecutorInfo,
        available_executors,
        describe_executors,
        get_executor,
        load_executor_class,
        register_executor,
    )
    from jobrelay._retry import (
        RetryPolicy,
        is_testing,
        set_testing,
    )
    from jobrelay._router import (
        RouteCandidate,
        RouteDecision,
        Router,
        RoutingRule,
    )
    from jobrelay._rules import (
        Rule,
        compile_rule,
    )
    from jobrelay._runner import (
        JobHandle,
        Progress,
        Runner,
    )
    from jobrelay._spec import (
        JobSpec,
        Resources,
        parse_memory,
    )
    from jobrelay.hookspecs import (
        hookimpl,
    )

# Public name -> module that defines it. Loaded on first use (PEP 562), so that
# ``import jobrelay; jobrelay.available_executors()`` imports neither the Router, the
# Runner, the rule compiler nor the CLI machinery.
_LAZY = {
    "Capabilities": "jobrelay._models",
    "ROUTE_METADATA_KEY": "jobrelay._models",
    "Clock": "jobrelay._clock",
    "Cost": "jobrelay._models",
    "CostEstimator": "jobrelay._protocol",
    "Execution": "jobrelay._models",
    "Executor": "jobrelay._protocol",
    "ExecutorInfo": "jobrelay._registry",
    "Health": "jobrelay._models",
    "Hooks": "jobrelay._hooks",
    "JobHandle": "jobrelay._runner",
    "JobResult": "jobrelay._models",
    "JobSpec": "jobrelay._spec",
    "JobState": "jobrelay._models",
    "JobStatus": "jobrelay._models",
    "LogLine": "jobrelay._models",
    "Logs": "jobrelay._models",
    "ManagedLister": "jobrelay._protocol",
    "ManualClock": "jobrelay._clock",
    "Progress": "jobrelay._runner",
    "Resources": "jobrelay._spec",
    "RetryPolicy": "jobrelay._retry",
    "RouteCandidate": "jobrelay._router",
    "RouteDecision": "jobrelay._router",
    "Router": "jobrelay._router",
    "RoutingRule": "jobrelay._router",
    "Rule": "jobrelay._rules",
    "Runner": "jobrelay._runner",
    "StdinFeeder": "jobrelay._protocol",
    "SystemClock": "jobrelay._clock",
    "available_executors": "jobrelay._registry",
    "compile_rule": "jobrelay._rules",
    "describe_executors": "jobrelay._registry",
    "get_executor": "jobrelay._registry",
    "hookimpl": "jobrelay.hookspecs",
    "is_testing": "jobrelay._retry",
    "load_executor_class": "jobrelay._registry",
    "parse_memory": "jobrelay._spec",
    "register_executor": "jobrelay._registry",
    "set_testing": "jobrelay._retry",
}
_SUBMODULES = frozenset({"backend", "labels", "testing", "hookspecs"})


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is not None:
        value = getattr(importlib.import_module(module), name)
        globals()[name] = value
        return value
    if name in _SUBMODULES:
        return importlib.import_module(f"jobrelay.{name}")
    if name == "__version__":
        from importlib.metadata import version  # noqa: PLC0415 - only when asked

        globals()["__version__"] = found = version("jobrelay")
        return found
    raise AttributeError(f"module 'jobrelay' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__, "__version__"})


__all__ = [
    "ROUTE_METADATA_KEY",
    "Capabilities",
    "Clock",
    "ConfigError",
    "Cost",
    "CostEstimator",
    "Execution",
    "Executor",
    "ExecutorError",
    "ExecutorInfo",
    "ExecutorLoadError",
    "ExecutorNotFoundError",
    "Health",
    "Hooks",
    "JobHandle",
    "JobResult",
    "JobSpec",
    "JobState",
    "JobStatus",
    "JobTimeoutError",
    "JobrelayError",
    "LaunchError",
    "LogLine",
    "Logs",
    "ManagedLister",
    "ManualClock",
    "NoExecutorAvailableError",
    "Progress",
    "Resources",
    "RetryPolicy",
    "RouteCandidate",
    "RouteDecision",
    "Router",
    "RoutingRule",
    "Rule",
    "RuleError",
    "Runner",
    "SpecError",
    "StdinFeeder",
    "SystemClock",
    "TransientExecutorError",
    "available_executors",
    "compile_rule",
    "describe_executors",
    "errors",
    "get_executor",
    "hookimpl",
    "is_testing",
    "load_executor_class",
    "parse_memory",
    "register_executor",
    "set_testing",
]
