"""What the ``jobrelay`` commands share: the router from flags or files, the job from flags.

Where the executors come from, in order: ``--executor NAME``, ``--config FILE``,
``$JOBRELAY_CONFIG``, ``./jobrelay.toml``, else a default executor, said on stderr
(the mock for ``run``/``batch``, so nobody takes a mock result for real work).
"""

from __future__ import annotations

import argparse
import inspect
import os
from collections.abc import Mapping
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from jobrelay._clock import Clock, ManualClock
from jobrelay._config import load_toml
from jobrelay._models import JobState
from jobrelay._registry import available_executors, load_executor_class
from jobrelay._spec import JobSpec
from jobrelay.errors import ConfigError

if TYPE_CHECKING:
    from jobrelay._models import JobResult
    from jobrelay._router import Router

__all__ = [
    "EXECUTOR_FLAGS",
    "build_router",
    "is_launch_failure",
    "job_from_args",
]

RUNNER_KEYS = frozenset({"budget", "max_running", "max_workers"})
CONFIG_ENV = "JOBRELAY_CONFIG"
CONFIG_FILE = "jobrelay.toml"
# flag -> (argparse dest, the executor setting it becomes)
EXECUTOR_FLAGS: dict[str, tuple[str, str]] = {
    "--pull": ("pull", "pull_policy"),
    "--stop-grace": ("stop_grace", "stop_grace"),
    "--network": ("network", "network"),
    "--volume": ("volume", "volumes"),
    "--user": ("user", "user"),
}


def is_launch_failure(result: JobResult) -> bool:
    """Whether ``result`` stands for a job that never got a workload."""
    if result.status.state is not JobState.FAILED:
        return False
    reason = result.status.reason or ""
    return result.execution.execution_id == "" or reason.startswith("launch failed")


# -- the job ----------------------------------------------------------------------


def job_from_args(args: argparse.Namespace, *, stdin: bool = False) -> JobSpec:
    """Build the job of ``run``/``route`` from its flags (``SpecError`` names the field).

    ``stdin``: the job's standard input stays open for input (``run`` with a pipe).
    """
    cmd = list(args.cmd)
    if cmd and cmd[0] == "--":
        cmd = cmd[1:]
    resources: dict[str, Any] = {
        field: getattr(args, field)
        for field in ("cpu", "memory", "gpu")
        if getattr(args, field) is not None
    }
    fields: dict[str, Any] = {
        "env": dict(args.env),
        "secrets": dict(args.secret),
        "labels": dict(args.label),
        "resources": resources,
        "timeout": args.timeout,
        "working_dir": args.workdir,
        "entrypoint": args.entrypoint,
        "stdin": stdin,
    }
    if args.name:
        fields["name"] = args.name
    if args.job_id:
        fields["job_id"] = args.job_id
    return JobSpec(args.image, cmd or None, **fields)


# -- the router -------------------------------------------------------------------


def _config_path(args: argparse.Namespace) -> Path | None:
    given: Path | None = getattr(args, "config", None)
    if given is not None:
        return given
    if getattr(args, "executor", None):
        return None
    from_env = os.environ.get(CONFIG_ENV)
    if from_env:
        return Path(from_env)
    local = Path(CONFIG_FILE)
    return local if local.is_file() else None


def _executor_settings(args: argparse.Namespace) -> dict[str, tuple[str, Any]]:
    """The executor flags given: setting name -> (flag, value)."""
    settings: dict[str, tuple[str, Any]] = {}
    for flag, (dest, setting) in EXECUTOR_FLAGS.items():
        value = getattr(args, dest, None)
        if value is not None and value != []:
            settings[setting] = (flag, value)
    return settings


def _accepts(kind: str, setting: str) -> bool:
    try:
        parameters = inspect.signature(load_executor_class(kind)).parameters
    except (TypeError, ValueError):
        return False
    found = parameters.get(setting)
    if found is not None:
        return found.kind is not inspect.Parameter.POSITIONAL_ONLY
    return any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())


def _apply_settings(
    entries: Mapping[str, Any], settings: Mapping[str, tuple[str, Any]]
) -> dict[str, Any]:
    """Add the executor flags to every entry; a ``ConfigError`` where one is unsupported."""
    out: dict[str, Any] = {}
    for name, entry in entries.items():
        if not isinstance(entry, Mapping) or not settings:
            out[name] = entry
            continue
        kind = str(entry.get("type", name))
        updated = dict(entry)
        for setting, (flag, value) in settings.items():
            if not _accepts(kind, setting):
                raise ConfigError(
                    f"{flag}: the {kind!r} executor{_named(name, kind)} has no {setting!r} "
                    "setting, so it cannot do this"
                )
            updated[setting] = value
        out[name] = updated
    return out


def _named(name: str, kind: str) -> str:
    return "" if name == kind else f" (configured as {name!r})"


def build_router(
    args: argparse.Namespace,
    err: IO[str],
    *,
    default: str = "mock",
    say_default: bool = True,
    unhealthy_wait: float = 0,
) -> Router:
    """Return the router the command's flags (or the environment) describe.

    A router made from ``--executor`` waits ``unhealthy_wait`` seconds at most for an
    unhealthy executor (0: a daemon that does not answer is an error at once, as
    for the docker CLI); a config file says for itself.
    """
    from jobrelay._router import Router  # noqa: PLC0415 - keeps `jobrelay --help` light

    settings = _executor_settings(args)
    path = _config_path(args)
    if path is not None:
        if not path.is_file():
            raise ConfigError(f"config file not found: {path}")
        data = load_toml(path)
        if isinstance(data, Mapping) and "runner" in data:
            # The [runner] table (budget, max_running) is the Runner's, not the Router's.
            runner = data["runner"]
            if not isinstance(runner, Mapping) or set(runner) - RUNNER_KEYS:
                raise ConfigError(f"{path}: [runner] takes only {', '.join(sorted(RUNNER_KEYS))}")
            args.runner_settings = dict(runner)
            data = {key: value for key, value in data.items() if key != "runner"}
        if isinstance(data, Mapping) and isinstance(data.get("executors"), Mapping):
            data = {**data, "executors": _apply_settings(data["executors"], settings)}
            return Router.from_config(data, clock=_simulated_if_mock_only(data["executors"]))
        return Router.from_config(data)
    name = getattr(args, "executor", None)
    if not name:
        name = default if default in available_executors() else "mock"
        if say_default:
            where = f"--executor, --config, ${CONFIG_ENV} or ./{CONFIG_FILE}"
            note = " (nothing really runs)" if name == "mock" else ""
            err.write(f"jobrelay: no {where}: using the {name} executor{note}\n")
    load_executor_class(name)  # an unknown or broken executor is a usage error, now
    entries = _apply_settings({name: {"type": name}}, settings)
    router = Router(
        entries,
        default=name,
        unhealthy_wait=unhealthy_wait,
        clock=_simulated_if_mock_only(entries),
    )
    # The one executor is made now (no executor touches the network in its
    # constructor): a bad setting (`--volume nocolon`) is a usage error, exit 2,
    # rather than a launch that failed.
    router.executor(name)
    return router


def _simulated_if_mock_only(entries: Mapping[str, Any]) -> Clock | None:
    """A simulated clock when every executor is the mock: its jobs never take wall time.

    The Router hands it to the mock and the Runner alike, so a ``mock.duration=20`` job
    ends as soon as only its duration is left to wait (real time still flows).
    """
    kinds = {
        str(entry.get("type", name)) if isinstance(entry, Mapping) else None
        for name, entry in entries.items()
    }
    return ManualClock(follow_real_time=True) if kinds == {"mock"} else None
