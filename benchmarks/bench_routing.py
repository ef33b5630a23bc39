"""Routing speed: compiled conditions against the Django manager's per-job ``eval``.

Claim: ``Router.route()`` with the Django manager's default rule table (seven
conditions and the default: eight rules) takes at least 10x less time per job than
evaluating each condition with ``eval(condition, {"__builtins__": {}}, context)`` per
job, as the Django container manager did (its ``ExecutorFactory._evaluate_rule``
builds the context and calls ``eval`` for each rule, a failing rule counting as no
match). Both sides read the same names, which the baseline takes from the public
``Router.context_for()`` (no copy of the Router's code), evaluate the rules in the
same order and stop at the first match; the script checks that they pick the same
executor for every job before timing anything. The Router's side is the public
``route()``, with everything it does: building the context, the rules, the
availability check of the chosen executor and the decision.

It also times how fast the condition compiler refuses a hostile corpus (tests may not
assert on time, so the figures are printed here).

Run: ``python benchmarks/bench_routing.py`` (or ``nox -s bench``).
"""

from __future__ import annotations

import statistics
import sys
import time
import timeit
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

from jobrelay import JobSpec, Resources, Router, RuleError, compile_rule
from jobrelay_mock import MockExecutor

TARGET = 10.0

# The Django container manager's default EXECUTOR_ROUTING_RULES, in its order.
DJANGO_RULES = [
    ("memory_mb > 8192", "fargate"),
    ("cpu_cores > 4.0", "fargate"),
    ("timeout_seconds > 3600", "cloudrun"),
    ('template.name.startswith("ml-")', "fargate"),
    ('template.name.startswith("batch-")', "cloudrun"),
    ('user and "premium" in user.groups', "cloudrun"),
    ('name.startswith("test-")', "mock"),
]
DEFAULT = "docker"

STAFF = SimpleNamespace(username="ana", groups=["staff", "eu"], is_staff=True)
PREMIUM = SimpleNamespace(username="bo", groups=["premium"], is_staff=False)

# One job per outcome of the table; "web-app" is the everyday job that falls through
# every condition to the default.
JOBS: list[tuple[str, JobSpec, Any]] = [
    ("default (all 7 evaluated)", JobSpec("python:3.12", "manage.py send_mail", name="web-app"), STAFF),
    ("memory_mb > 8192", JobSpec("python:3.12", "etl", name="etl", resources=Resources(memory="16Gi")), STAFF),
    ("cpu_cores > 4.0", JobSpec("python:3.12", "render", name="render", resources=Resources(cpu=8)), STAFF),
    ("timeout_seconds > 3600", JobSpec("python:3.12", "backfill", name="backfill", timeout=7200), STAFF),
    ("ml- template", JobSpec("pytorch/pytorch", "train.py", name="ml-train"), STAFF),
    ("batch- template", JobSpec("python:3.12", "nightly", name="batch-nightly"), STAFF),
    ("premium user", JobSpec("python:3.12", "report", name="report"), PREMIUM),
    ("test- job", JobSpec("busybox", "true", name="test-smoke"), None),
]  # fmt: skip


def evaluate_rule(router: Router, condition: str, job: JobSpec, user: Any) -> bool:
    """The Django manager's ``ExecutorFactory._evaluate_rule``: a context per rule, eval."""
    try:
        context = router.context_for(job, {"user": user})
        return bool(eval(condition, {"__builtins__": {}}, context))  # noqa: S307 - the baseline
    except Exception:  # noqa: BLE001 - as the Django manager did: a failing rule is no match
        return False


def baseline(router: Router, job: JobSpec, user: Any) -> str:
    """The Django manager's routing: each rule evaluated in order, first match wins."""
    for condition, executor in DJANGO_RULES:
        if evaluate_rule(router, condition, job, user):
            return executor
    return DEFAULT


def make_router() -> Router:
    executors = [MockExecutor(name=name) for name in ("docker", "cloudrun", "fargate", "mock")]
    rules = [{"condition": c, "executor": e, "reason": c} for c, e in DJANGO_RULES]
    return Router(executors, rules=rules, default=DEFAULT)


def per_call(fn: Callable[[], object], number: int, repeat: int) -> float:
    """Best-of-``repeat`` microseconds per call (the minimum is the least disturbed)."""
    return min(timeit.repeat(fn, number=number, repeat=repeat)) / number * 1e6


def compare_one(router: Router, job: JobSpec, user: Any, number: int) -> tuple[float, float]:
    """Best microseconds per call for one job: (baseline, route)."""
    context = {"user": user}
    route = router.route

    def ours() -> None:
        route(job, context)

    def theirs() -> None:
        baseline(router, job, user)

    return best_of(theirs, ours, number)


def compare_mixed(router: Router, number: int) -> tuple[float, float]:
    """Best microseconds per job over the whole list: (baseline, route)."""
    cases = [(job, {"user": user}, user) for _, job, user in JOBS]
    route = router.route

    def ours() -> None:
        for job, context, _ in cases:
            route(job, context)

    def theirs() -> None:
        for job, _, user in cases:
            baseline(router, job, user)

    theirs_us, ours_us = best_of(theirs, ours, number)
    return theirs_us / len(cases), ours_us / len(cases)


def best_of(
    theirs: Callable[[], None], ours: Callable[[], None], number: int
) -> tuple[float, float]:
    theirs_us, ours_us = [], []
    for _ in range(5):  # interleaved, so both see the same machine
        theirs_us.append(per_call(theirs, max(number // 20, 1), 3))
        ours_us.append(per_call(ours, number, 3))
    return min(theirs_us), min(ours_us)


HOSTILE = {
    "__class__ chain": "().__class__.__bases__[0].__subclasses__()",
    "__globals__": "job.environment.__func__.__globals__",
    "__import__": "__import__('os').system('true')",
    "9**9**9**9": "9**9**9**9",
    "'a'*10**9": "'a'*10**9",
    "10,000 parentheses": "(" * 10_000 + "1" + ")" * 10_000,
    "1 MB of text": "x" * (1 << 20),
    "4000 unary minus": "-" * 4000 + "1",
    "1000 not": "not " * 1000 + "x",
}


def hostile_times() -> dict[str, float]:
    """Worst milliseconds to refuse each hostile condition (compile, then evaluate)."""
    worst: dict[str, float] = {}
    for label, text in HOSTILE.items():
        times = []
        for _ in range(5):
            start = time.perf_counter()
            try:
                compile_rule(text).evaluate({"job": None, "x": 1})
            except RuleError:
                pass
            else:
                raise AssertionError(f"hostile condition accepted: {label}")
            times.append((time.perf_counter() - start) * 1e3)
        worst[label] = max(times)
    return worst


def main() -> int:
    router = make_router()
    for label, job, user in JOBS:
        ours = router.route(job, {"user": user}).executor
        theirs = baseline(router, job, user)
        if ours != theirs:
            raise AssertionError(f"{label}: router chose {ours}, baseline {theirs}")

    print(f"Python {sys.version.split()[0]}; microseconds per route(), best of 5 interleaved runs")
    print(f"{'job':<28} {'eval baseline':>14} {'Router.route':>13} {'ratio':>7}")
    rows = []
    for label, job, user in JOBS:
        theirs_us, ours_us = compare_one(router, job, user, 20_000)
        rows.append((label, theirs_us, ours_us))
        print(f"{label:<28} {theirs_us:>12.2f}us {ours_us:>11.2f}us {theirs_us / ours_us:>6.1f}x")
    theirs_us, ours_us = compare_mixed(router, 4_000)
    mixed = "mixed (all 8 jobs above)"
    print(f"{mixed:<28} {theirs_us:>12.2f}us {ours_us:>11.2f}us {theirs_us / ours_us:>6.1f}x")

    headline = rows[0]
    ratio = headline[1] / headline[2]
    print()
    print(
        f"typical job (falls through the seven conditions to the default): baseline "
        f"{headline[1]:.2f}us, route() {headline[2]:.2f}us, {ratio:.1f}x faster "
        f"(target {TARGET:.0f}x: {'met' if ratio >= TARGET else 'NOT met'})"
    )
    print(f"mixed workload: {theirs_us / ours_us:.1f}x faster")

    print()
    print("hostile conditions, worst of 5 (milliseconds to RuleError):")
    worst = hostile_times()
    for label, ms in worst.items():
        print(f"  {label:<22} {ms:8.3f} ms")
    print(
        f"  median {statistics.median(worst.values()):.3f} ms, worst {max(worst.values()):.3f} ms"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
