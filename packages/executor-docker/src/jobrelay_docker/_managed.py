"""Extras beyond the Executor protocol: reconcile, orphan sweeping, exec and inspect."""

from __future__ import annotations

import copy
import logging
import shlex
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from typing import Any

import attrs

from jobrelay import Execution
from jobrelay.backend import Scrubber
from jobrelay.errors import ExecutorError
from jobrelay.labels import EXECUTOR
from jobrelay_docker._connection import DockerConnection, secret_values
from jobrelay_docker._state import LABEL_SECRET_ENV, parse_time

__all__ = ["ExecResult", "ManagedContainers"]

logger = logging.getLogger("jobrelay.docker")


@attrs.frozen
class ExecResult:
    """What :meth:`DockerExecutor.exec` returns: exit code and separated output."""

    exit_code: int
    stdout: str
    stderr: str


class ManagedContainers(DockerConnection):
    """The containers this executor manages, beyond single executions (internal)."""

    def list_managed(self) -> list[Execution]:
        """Return this executor's containers (``jobrelay.managed=true``) as executions.

        Each execution's ``metadata["owner"]`` is the container's ``jobrelay.owner``
        label (None on containers made before owners existed), so a Runner's
        reconcile can keep to its own.
        """
        return [
            self._execution_from_summary(summary)
            for summary in self._list(f"{EXECUTOR}={self.name}")
        ]

    def cleanup_orphans(self, older_than: float | timedelta) -> list[Execution]:
        """Remove this executor's containers that ended more than ``older_than`` ago.

        Running containers are never touched. A container that never started (a
        launcher died between create and start, or it was cancelled first) counts
        as ended when it was created. Unmanaged containers are never listed.

        Args:
            older_than: seconds, or a ``timedelta``.

        Returns:
            The executions whose containers were removed.
        """
        age: object = (
            older_than.total_seconds() if isinstance(older_than, timedelta) else older_than
        )
        if isinstance(age, bool) or not isinstance(age, (int, float)) or age < 0:
            raise ValueError(f"older_than: must be seconds >= 0 or a timedelta, got {older_than!r}")
        cutoff = datetime.now(timezone.utc) - timedelta(seconds=age)
        removed: list[Execution] = []
        for summary in self._list(f"{EXECUTOR}={self.name}"):
            phase = summary.get("State")
            execution = self._execution_from_summary(summary)
            if phase not in ("exited", "dead", "created") or execution.launched_at > cutoff:
                continue
            if phase != "created":
                data = self._inspect_managed(execution.execution_id)
                finished = parse_time(((data or {}).get("State") or {}).get("FinishedAt"))
                if data is None or finished is None or finished > cutoff:
                    continue
            self._remove(execution.execution_id)
            logger.info(
                "removed orphan container %s (job %s)", execution.execution_id, execution.job_id
            )
            removed.append(execution)
        return removed

    def exec(
        self,
        execution: Execution,
        cmd: str | Sequence[str],
        user: str | None = None,
        workdir: str | None = None,
    ) -> ExecResult:
        """Run ``cmd`` in the running container; return its exit code and output.

        ``cmd`` is an argument list; a string is split like a shell would, but no
        shell runs it. stdout and stderr come back apart.

        Raises:
            ValueError: ``cmd`` is empty or not strings.
            ExecutorError: no such jobrelay container, or it is not running.
        """
        argv = shlex.split(cmd) if isinstance(cmd, str) else list(cmd)
        if not argv or not all(isinstance(arg, str) for arg in argv):
            raise ValueError(f"cmd: must be a non-empty list of strings, got {cmd!r}")
        container_id = execution.execution_id
        self._require(execution)
        api = self._client()
        with self._translated(f"exec in container {container_id}"):
            exec_id = api.exec_create(
                container_id, argv, stdout=True, stderr=True, user=user or "", workdir=workdir
            )["Id"]
            stdout, stderr = api.exec_start(exec_id, demux=True)
            exit_code = api.exec_inspect(exec_id).get("ExitCode")
        if not isinstance(exit_code, int):
            raise ExecutorError(
                f"exec in container {container_id}: the daemon reported no exit code",
                executor=self.name,
                job_id=execution.job_id,
            )
        return ExecResult(
            exit_code=exit_code,
            stdout=(stdout or b"").decode("utf-8", errors="replace"),
            stderr=(stderr or b"").decode("utf-8", errors="replace"),
        )

    def inspect(self, execution: Execution) -> dict[str, Any]:
        """Return the daemon's raw data for the container, secret values masked.

        Raises:
            ExecutorError: no such jobrelay container.
        """
        data = copy.deepcopy(self._require(execution))
        config = data.get("Config") or {}
        secret_names = set(
            filter(None, (config.get("Labels") or {}).get(LABEL_SECRET_ENV, "").split(","))
        )
        scrub = Scrubber(secret_values(data))
        if secret_names and isinstance(config.get("Env"), list):
            config["Env"] = [
                f"{item.partition('=')[0]}=***" if item.partition("=")[0] in secret_names else item
                for item in config["Env"]
            ]
        state = data.get("State") or {}
        if scrub and isinstance(state.get("Error"), str):
            state["Error"] = scrub(state["Error"])  # a failed start may quote the env
        return data
