"""Commands over what is configured: ``executors``, ``route``, ``ps``, ``logs``, ``cancel``, ``gc``.

``ps``, ``logs``, ``cancel`` and ``gc`` look across every configured executor that can
list its managed workloads (``Capabilities.list_managed``). ``ps`` and ``gc`` keep to
this host's workloads (the ``jobrelay.owner`` label) unless ``--all-owners``; ``logs``
and ``cancel`` take any job by its id. An executor that cannot be reached is one line
on stderr and exit code 1; the others are still listed.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import IO, TYPE_CHECKING, Any

from jobrelay._cli_batch import table
from jobrelay._cli_progress import clock_text
from jobrelay._cli_setup import build_router, job_from_args
from jobrelay._cli_signals import Interrupted, SignalGuard
from jobrelay._cli_text import one_line, secret_scrubber
from jobrelay._models import Cost, Execution, JobStatus
from jobrelay._registry import describe_executors
from jobrelay.errors import JobrelayError
from jobrelay.labels import default_owner

if TYPE_CHECKING:
    from jobrelay._router import RouteDecision, Router

__all__ = ["cmd_cancel", "cmd_executors", "cmd_gc", "cmd_logs", "cmd_ps", "cmd_route"]

_OPS_DEFAULT = "docker"
_HOUR = Decimal(3600)


def cmd_executors(args: argparse.Namespace, out: IO[str], err: IO[str]) -> int:
    """List installed executors; with ``--config``, the configured ones and their health."""
    rows = [("NAME", "DISTRIBUTION", "VERSION", "TARGET")]
    rows += [
        (info.name, info.distribution or "-", info.version or "-", info.target)
        for info in describe_executors()
    ]
    table(rows, out)
    if args.config is not None:
        with build_router(args, err) as router:
            out.write("\n")
            health_rows = [("CONFIGURED", "AVAILABLE", "DETAIL")]
            for name in router.names:
                ok, why = router.is_available(name)
                health_rows.append((name, "yes" if ok else "no", one_line(why)))
            table(health_rows, out)
    return 0


# -- route ------------------------------------------------------------------------


def _money(cost: Cost | None, seconds: float | None = None, *, hourly: bool = False) -> str:
    """The hourly rate (``hourly``), or the price of ``seconds`` at that rate."""
    if cost is None or (seconds is None and not hourly):
        return "-"
    rate = cost.rate_per_hour
    amount = rate if seconds is None else rate * Decimal(str(seconds)) / _HOUR
    return f"{amount:.4f} {cost.currency}"


def _candidates(decision: RouteDecision, timeout: float | None) -> list[tuple[str, ...]]:
    """Rows (name, available, cost per hour, for the timeout, detail) of every candidate."""
    rows: list[tuple[str, ...]] = []
    for candidate in decision.candidates:
        chosen = candidate.executor == decision.executor
        shown = "chosen" if chosen else ("yes" if candidate.available else "no")
        detail = one_line(candidate.why) or (decision.reason if chosen else "-")
        cost = candidate.cost
        rows.append(
            (candidate.executor, shown, _money(cost, hourly=True), _money(cost, timeout), detail)
        )
    return rows


def cmd_route(args: argparse.Namespace, argv: Sequence[str], out: IO[str], err: IO[str]) -> int:
    """Print where the job would go; ``--explain``: every candidate, why, and its price."""
    job = job_from_args(args)
    scrub = secret_scrubber(argv, [job])
    with build_router(args, err) as router:
        decision = router.route(job, context=dict(args.context) or None, explain=args.explain)
        out.write(f"{decision.executor}\t{scrub(decision.reason)}\n")
        if args.explain:
            if decision.rule is not None:
                out.write(f"rule: {decision.rule.condition}\n")
            timeout = f"FOR {clock_text(job.timeout)}" if job.timeout else "FOR TIMEOUT"
            rows: list[tuple[str, ...]] = [
                ("CANDIDATE", "AVAILABLE", "PER HOUR", timeout, "DETAIL")
            ]
            rows += _candidates(decision, job.timeout)
            table([tuple(scrub(cell) for cell in row) for row in rows], out)
    return 0


# -- ps, logs, cancel, gc ---------------------------------------------------------


def _ops_router(args: argparse.Namespace, err: IO[str]) -> Router:
    return build_router(args, err, default=_OPS_DEFAULT)


def _managed(router: Router, err: IO[str], problems: list[str]) -> Iterator[tuple[Any, Execution]]:
    """Every managed workload of every configured executor that can list them."""
    for name in router.names:
        try:
            executor = router.executor(name)
            lister = getattr(executor, "list_managed", None)
            if not callable(lister) or not executor.capabilities().list_managed:
                continue
            executions: list[Execution] = list(lister())
        except JobrelayError as exc:
            problems.append(name)
            err.write(f"jobrelay: {name}: cannot list workloads: {one_line(str(exc))}\n")
            continue
        for execution in executions:
            yield executor, execution


def _owner(execution: Execution) -> str | None:
    owner = execution.metadata.get("owner")
    return str(owner) if owner else None


def _mine(execution: Execution, *, all_owners: bool) -> bool:
    owner = _owner(execution)
    return all_owners or owner is None or owner == default_owner()


def _age(moment: datetime) -> str:
    return clock_text((datetime.now(timezone.utc) - moment).total_seconds())


def cmd_ps(args: argparse.Namespace, out: IO[str], err: IO[str]) -> int:
    """List managed workloads (this host's unless ``--all-owners``)."""
    problems: list[str] = []
    rows = [("EXECUTOR", "JOB ID", "STATE", "OWNER", "AGE", "EXECUTION")]
    with _ops_router(args, err) as router:
        found: dict[str, tuple[Any, list[Execution]]] = {}
        for executor, execution in _managed(router, err, problems):
            if _mine(execution, all_owners=args.all_owners):
                found.setdefault(execution.executor, (executor, []))[1].append(execution)
        listed: list[tuple[Execution, JobStatus | None]] = []
        for name, (executor, executions) in found.items():
            try:
                statuses = executor.statuses(executions)
            except JobrelayError as exc:
                problems.append(name)
                err.write(f"jobrelay: {name}: cannot read statuses: {one_line(str(exc))}\n")
                statuses = {}
            listed += [(e, statuses.get(e.execution_id)) for e in executions]
    listed.sort(key=lambda pair: pair[0].launched_at)
    for execution, status in listed:
        rows.append(
            (
                execution.executor,
                execution.job_id or "-",
                status.state.value if status is not None else "?",
                _owner(execution) or "-",
                _age(execution.launched_at),
                execution.execution_id[:12],
            )
        )
    table(rows, out)
    return 1 if problems else 0


def _find(router: Router, job_id: str, err: IO[str]) -> tuple[Any, Execution] | None:
    """The newest workload of ``job_id`` (or of an execution id starting with it)."""
    problems: list[str] = []
    matches = [
        (executor, execution)
        for executor, execution in _managed(router, err, problems)
        if execution.job_id == job_id
        or (len(job_id) >= 12 and execution.execution_id.startswith(job_id))
    ]
    if not matches:
        where = ", ".join(router.names)
        err.write(f"jobrelay: no workload of job {job_id!r} on {where}\n")
        return None
    return max(matches, key=lambda pair: pair[1].launched_at)


def cmd_logs(args: argparse.Namespace, out: IO[str], err: IO[str]) -> int:
    """Print a job's output; ``-f`` follows it until the job ends."""
    guard = SignalGuard(lambda name: f"jobrelay: {name}: stopped following (the job goes on)\n")
    with _ops_router(args, err) as router, guard:
        found = _find(router, args.job_id, err)
        if found is None:
            return 1
        executor, execution = found
        try:
            if args.follow and executor.capabilities().log_streaming:
                for line in executor.stream_logs(execution):
                    target = err if line.stream == "stderr" else out
                    target.write(line.text + "\n")
                    target.flush()
                return 0
            logs = executor.logs(execution)
        except Interrupted as stop:
            return stop.exit_code
    for target, text in ((out, logs.stdout), (err, logs.stderr)):
        if text:
            target.write(text if text.endswith("\n") else text + "\n")
    return 0


def cmd_cancel(args: argparse.Namespace, out: IO[str], err: IO[str]) -> int:
    """Cancel a job's workload, wherever it runs."""
    with _ops_router(args, err) as router:
        found = _find(router, args.job_id, err)
        if found is None:
            return 1
        executor, execution = found
        executor.cancel(execution)
    out.write(
        f"cancelled job {execution.job_id!r} on {execution.executor} "
        f"[{execution.execution_id[:12]}]\n"
    )
    return 0


def cmd_gc(args: argparse.Namespace, out: IO[str], err: IO[str]) -> int:
    """Remove finished managed workloads that ended more than ``--older-than`` ago."""
    cutoff = datetime.now(timezone.utc) - timedelta(seconds=args.older_than)
    problems: list[str] = []
    removed = 0
    with _ops_router(args, err) as router:
        for executor, execution in list(_managed(router, err, problems)):
            if not _mine(execution, all_owners=args.all_owners) or execution.launched_at > cutoff:
                continue
            try:
                status = executor.status(execution)
                ended = status.finished_at or execution.launched_at
                if not status.is_terminal or status.state.value == "lost" or ended > cutoff:
                    continue
                executor.cleanup(execution)
            except JobrelayError as exc:
                problems.append(execution.executor)
                err.write(
                    f"jobrelay: {execution.executor}: cannot remove "
                    f"{execution.execution_id[:12]}: {one_line(str(exc))}\n"
                )
                continue
            removed += 1
            out.write(
                f"removed {execution.executor} {execution.job_id} "
                f"[{execution.execution_id[:12]}] ({status.state.value})\n"
            )
    out.write(f"{removed} finished workloads removed (older than {clock_text(args.older_than)})\n")
    return 1 if problems else 0
