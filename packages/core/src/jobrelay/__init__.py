"""jobrelay: run a container job on any backend through one API, with rule-based routing.

Example::

    from jobrelay import JobSpec, get_executor

    with get_executor("mock") as executor:
        execution = executor.launch(JobSpec("busybox", ["echo", "hello"]))
        print(executor.harvest(execution).logs.stdout)
"""

from jobrelay import errors
from jobrelay._clock import Clock, ManualClock, SystemClock
from jobrelay._hooks import Hooks
from jobrelay._models import (
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
from jobrelay._protocol import CostEstimator, Executor, ManagedLister
from jobrelay._registry import (
    ExecutorInfo,
    available_executors,
    describe_executors,
    get_executor,
    load_executor_class,
    register_executor,
)
from jobrelay._retry import RetryPolicy, is_testing, set_testing
from jobrelay._router import RouteDecision, Router, RoutingRule
from jobrelay._rules import Rule, compile_rule
from jobrelay._runner import JobHandle, Progress, Runner
from jobrelay._spec import JobSpec, Resources, parse_memory
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
from jobrelay.hookspecs import hookimpl

__all__ = [
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
    "RouteDecision",
    "Router",
    "RoutingRule",
    "Rule",
    "RuleError",
    "Runner",
    "SpecError",
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
