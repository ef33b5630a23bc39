"""A local fake of Scaleway Serverless Jobs v1alpha2, Cockpit's data sources and Loki.

One threaded ``http.server`` on 127.0.0.1 (a free port) that the official SDK talks to
over real HTTP. Every request body and query, and every answer, is held to the SDK's
own generated code (see :mod:`fake_schema`): unknown keys or wrong types get
Scaleway's ``invalid_arguments`` error, and an answer the SDK would not read fails
the test.

Quirks of the service it copies: ``exit_code`` is omitted for runs that never exited;
not-found is 404 ``{"message": "resource is not found", "resource": ..., "resource_id":
..., "type": "not_found"}``; lists page with ``page``/``page_size`` (default 20, at most
100) and answer ``total_count``; the run's environment is the definition's merged with
the start overrides; stopping a run passes through ``interrupting`` before
``interrupted``; Loki streams carry no label telling stdout from stderr.

Tests drive runs to their end (:meth:`FakeScaleway.finish`, :meth:`FakeScaleway.fail`,
or :attr:`FakeScaleway.autopilot`) and inject faults (:meth:`FakeScaleway.inject`): an
error status, an error with an empty body, a reply lost after the call took effect, a
stall. Calls are counted per action (``fake.calls["ListJobRuns"]``); the fake's own
failures are kept in :attr:`FakeScaleway.errors` and fail the test.
"""

from __future__ import annotations

import dataclasses
import json
import re
import sys
import threading
import time
import urllib.parse
import uuid
from collections import Counter
from collections.abc import Callable
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from scaleway.jobs.v1alpha2 import types  # type: ignore[import-untyped, unused-ignore]

from fake_schema import (
    BODIES,
    ApiError,
    check_payload,
    check_query,
    check_request_body,
    invalid,
    not_found,
)

ACCESS_KEY = "SCWXXXXXXXXXXXXXXXXX"
SECRET_KEY = "11111111-2222-4333-8444-555555555555"
PROJECT_ID = "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee"
LOGS_TOKEN = "cockpit-token-for-tests"
REGION = "fr-par"
DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 100

_JOBS = "/serverless-jobs/v1alpha2/regions/(?P<region>[a-z]{2}-[a-z]{3})"
_ROUTES: list[tuple[str, re.Pattern[str], str]] = [
    ("POST", re.compile(rf"^{_JOBS}/job-definitions$"), "CreateJobDefinition"),
    ("GET", re.compile(rf"^{_JOBS}/job-definitions$"), "ListJobDefinitions"),
    ("GET", re.compile(rf"^{_JOBS}/job-definitions/(?P<id>[^/]+)$"), "GetJobDefinition"),
    ("DELETE", re.compile(rf"^{_JOBS}/job-definitions/(?P<id>[^/]+)$"), "DeleteJobDefinition"),
    ("POST", re.compile(rf"^{_JOBS}/job-definitions/(?P<id>[^/]+)/start$"), "StartJobDefinition"),
    ("GET", re.compile(rf"^{_JOBS}/job-runs$"), "ListJobRuns"),
    ("GET", re.compile(rf"^{_JOBS}/job-runs/(?P<id>[^/]+)$"), "GetJobRun"),
    ("POST", re.compile(rf"^{_JOBS}/job-runs/(?P<id>[^/]+)/stop$"), "StopJobRun"),
    (
        "GET",
        re.compile(r"^/cockpit/v1/regions/(?P<region>[a-z]{2}-[a-z]{3})/data-sources$"),
        "ListDataSources",
    ),
    ("GET", re.compile(r"^/loki/api/v1/query_range$"), "LokiQueryRange"),
]

_ACTIVE_STATES = {"initialized", "validated", "queued", "running", "interrupting", "retrying"}


def _now() -> str:
    return datetime.now(timezone.utc).isoformat().replace("+00:00", "Z")


@dataclasses.dataclass
class Fault:
    """One injected fault, used up ``times`` times."""

    action: str
    status: int | None = None
    body: dict[str, Any] | None = None
    empty_body: bool = False
    lose_reply: bool = False
    stall: float = 0.0
    times: int = 1


@dataclasses.dataclass
class Run:
    data: dict[str, Any]
    logs: list[tuple[int, str]] = dataclasses.field(default_factory=list)


class FakeScaleway:
    """The fake service. Use as a context manager; :attr:`url` is its base URL."""

    def __init__(self) -> None:
        self.definitions: dict[str, dict[str, Any]] = {}
        self.runs: dict[str, Run] = {}
        self.calls: Counter[str] = Counter()
        self.requests: list[tuple[str, str, Any]] = []
        self.faults: list[Fault] = []
        self.errors: list[BaseException] = []
        self.default_page_size = DEFAULT_PAGE_SIZE
        self.data_sources: list[dict[str, Any]] = []
        self.autopilot: Callable[[dict[str, str]], tuple[int, list[str]]] | None = None
        self._lock = threading.RLock()
        self._released = threading.Event()
        self._server = _Server(("127.0.0.1", 0), _handler_for(self))
        self._server.errors = self.errors
        self._server.daemon_threads = False
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        port = self._server.server_address[1]
        self.url = f"http://127.0.0.1:{port}"
        self.loki_url = self.url
        self.data_sources.append(
            {
                "id": str(uuid.uuid4()),
                "project_id": PROJECT_ID,
                "name": "Scaleway Logs",
                "url": self.loki_url,
                "type": "logs",
                "origin": "scaleway",
                "synchronized_with_grafana": True,
                "retention_days": 7,
                "region": REGION,
                "created_at": _now(),
                "updated_at": _now(),
            }
        )

    # -- lifetime ----------------------------------------------------------------

    def start(self) -> FakeScaleway:
        self._thread.start()
        return self

    def close(self) -> None:
        self._released.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)

    def __enter__(self) -> FakeScaleway:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def reset(self) -> None:
        with self._lock:
            self.definitions.clear()
            self.runs.clear()
            self.calls.clear()
            self.requests.clear()
            self.faults.clear()
            self.errors.clear()
            self._released.set()  # wake calls stalled by the last test
            self._released = threading.Event()
            self.default_page_size = DEFAULT_PAGE_SIZE
            self.autopilot = None

    # -- test controls -------------------------------------------------------------

    def inject(self, action: str, **fault: Any) -> Fault:
        """Make the next call(s) to ``action`` misbehave (see :class:`Fault`)."""
        item = Fault(action, **fault)
        with self._lock:
            self.faults.append(item)
        return item

    def run(self, run_id: str) -> dict[str, Any]:
        return self.runs[run_id].data

    def set_state(self, run_id: str, state: str) -> None:
        with self._lock:
            data = self.runs[run_id].data
            data["state"] = state
            data["updated_at"] = _now()
            if state == "running" and data.get("started_at") is None:
                data["started_at"] = _now()

    def finish(self, run_id: str, exit_code: int = 0) -> None:
        """End a run the way its container exiting with ``exit_code`` would."""
        with self._lock:
            data = self.runs[run_id].data
            if data.get("started_at") is None:
                data["started_at"] = _now()
            data.update(terminated_at=_now(), updated_at=_now(), exit_code=exit_code)
            if exit_code == 0:
                data.update(state="succeeded", reason="unknown_reason")
            else:
                data.update(
                    state="failed",
                    reason="exited_with_error",
                    error_message=f"exited with code {exit_code}",
                )
            data["run_duration"] = "1s"

    def fail(self, run_id: str, reason: str, message: str = "") -> None:
        """End a run that never exited (no ``exit_code`` in the payload, like Scaleway)."""
        with self._lock:
            data = self.runs[run_id].data
            data.pop("exit_code", None)
            data.update(
                state="failed",
                reason=reason,
                error_message=message or reason.replace("_", " "),
                terminated_at=_now(),
                updated_at=_now(),
            )

    def write_logs(self, run_id: str, lines: list[str]) -> None:
        with self._lock:
            run = self.runs[run_id]
            for line in lines:
                stamp = time.time_ns()
                if run.logs and stamp <= run.logs[-1][0]:
                    stamp = run.logs[-1][0] + 1
                run.logs.append((stamp, line))

    def add_definition(self, **fields: Any) -> dict[str, Any]:
        """Create a definition directly (an unmanaged one made by someone else)."""
        definition = self._new_definition(
            {
                "cpu_limit": 1000,
                "memory_limit": 1024,
                "local_storage_capacity": 1024,
                "image_uri": "busybox",
                "name": "someone-else",
                "description": "not jobrelay's",
                "project_id": PROJECT_ID,
                **fields,
            }
        )
        with self._lock:
            self.definitions[definition["id"]] = definition
        return definition

    def start_run(self, definition_id: str, environment: dict[str, str] | None = None) -> str:
        """Start a run directly (as someone else would); return its id."""
        with self._lock:
            started = self._start(definition_id, {"environment_variables": environment or {}})
            return str(started[0]["id"])

    # -- the service ---------------------------------------------------------------

    def _take_fault(self, action: str) -> Fault | None:
        with self._lock:
            for fault in self.faults:
                if fault.action == action and fault.times > 0:
                    fault.times -= 1
                    return fault
        return None

    def _new_definition(self, body: dict[str, Any]) -> dict[str, Any]:
        definition: dict[str, Any] = {
            "id": str(uuid.uuid4()),
            "name": body.get("name", ""),
            "project_id": body.get("project_id") or PROJECT_ID,
            "cpu_limit": body["cpu_limit"],
            "memory_limit": body["memory_limit"],
            "local_storage_capacity": body["local_storage_capacity"],
            "image_uri": body["image_uri"],
            "environment_variables": dict(body.get("environment_variables") or {}),
            "created_at": _now(),
            "updated_at": _now(),
            "description": body.get("description", ""),
            "startup_command": list(body.get("startup_command") or []),
            "args": list(body.get("args") or []),
            "region": REGION,
        }
        if body.get("job_timeout") is not None:
            definition["job_timeout"] = body["job_timeout"]
        if body.get("retry_policy") is not None:
            definition["retry_policy"] = dict(body["retry_policy"])
        return definition

    def _start(self, definition_id: str, body: dict[str, Any]) -> list[dict[str, Any]]:
        definition = self.definitions.get(definition_id)
        if definition is None:
            raise not_found("job_definition", definition_id)
        runs = []
        for _ in range(max(1, int(body.get("replicas") or 1))):
            environment = dict(definition["environment_variables"])
            environment.update(body.get("environment_variables") or {})
            data: dict[str, Any] = {
                "id": str(uuid.uuid4()),
                "job_definition_id": definition_id,
                "state": "queued",
                "cpu_limit": definition["cpu_limit"],
                "memory_limit": definition["memory_limit"],
                "local_storage_capacity": definition["local_storage_capacity"],
                "environment_variables": environment,
                "startup_command": list(
                    body.get("startup_command") or definition["startup_command"]
                ),
                "args": list(body.get("args") or definition["args"]),
                "region": REGION,
                "created_at": _now(),
                "updated_at": _now(),
                "reason": "unknown_reason",
                "attempts": 1,
            }
            self.runs[data["id"]] = Run(data)
            runs.append(data)
        return runs

    def _page(
        self, items: list[dict[str, Any]], query: dict[str, list[str]], key: str
    ) -> dict[str, Any]:
        page = int(query.get("page", ["1"])[0])
        size = int(query.get("page_size", [str(self.default_page_size)])[0])
        if page < 1:
            raise invalid("page", "constraint", "must be 1 or more")
        if not 1 <= size <= MAX_PAGE_SIZE:
            raise invalid("page_size", "constraint", f"must be 1 to {MAX_PAGE_SIZE}")
        order = query.get("order_by", ["created_at_asc"])[0]
        ordered = sorted(items, key=lambda item: item["created_at"], reverse=order.endswith("desc"))
        return {key: ordered[(page - 1) * size : page * size], "total_count": len(items)}

    def handle(
        self,
        action: str,
        method: str,
        match: dict[str, str],
        query: dict[str, list[str]],
        body: Any,
    ) -> Any:
        check_query(action, query)
        if action in BODIES:
            check_request_body(action, body)
        with self._lock:
            return self._dispatch(action, match, query, body)

    def _dispatch(  # noqa: PLR0911, PLR0912 - one switch over the routes
        self, action: str, match: dict[str, str], query: dict[str, list[str]], body: Any
    ) -> Any:
        if action == "CreateJobDefinition":
            definition = self._new_definition(body)
            self.definitions[definition["id"]] = definition
            return definition
        if action == "ListJobDefinitions":
            project = query.get("project_id", [None])[0]
            items = [d for d in self.definitions.values() if project in (None, d["project_id"])]
            return self._page(items, query, "job_definitions")
        if action == "GetJobDefinition":
            found = self.definitions.get(match["id"])
            if found is None:
                raise not_found("job_definition", match["id"])
            return found
        if action == "DeleteJobDefinition":
            if self.definitions.pop(match["id"], None) is None:
                raise not_found("job_definition", match["id"])
            return None
        if action == "StartJobDefinition":
            return {"job_runs": self._start(match["id"], body)}
        if action == "GetJobRun":
            return self._read_run(match["id"])
        if action == "ListJobRuns":
            items = [self._read_run(run_id) for run_id in list(self.runs)]
            wanted_states = set(query.get("states", [])) | set(query.get("state", []))
            for state in wanted_states:
                if state not in {s.value for s in types.JobRunState}:
                    raise invalid("states", "constraint", f"unknown state {state!r}")
            of_definition = query.get("job_definition_id", [None])[0]
            project = query.get("project_id", [None])[0]
            items = [
                run
                for run in items
                if (not wanted_states or run["state"] in wanted_states)
                and of_definition in (None, run["job_definition_id"])
                and project
                in (None, self.definitions.get(run["job_definition_id"], {}).get("project_id"))
            ]
            return self._page(items, query, "job_runs")
        if action == "StopJobRun":
            data = self._read_run(match["id"])
            if data["state"] not in _ACTIVE_STATES:
                raise ApiError(
                    412,
                    {
                        "message": "precondition is not respected",
                        "precondition": "job_run_is_not_running",
                        "type": "precondition_failed",
                    },
                )
            stopped = self.runs[match["id"]].data
            stopped.update(state="interrupting", updated_at=_now())
            return {key: value for key, value in stopped.items() if not key.startswith("_")}
        if action == "ListDataSources":
            types_wanted = set(query.get("types", []))
            items = [s for s in self.data_sources if not types_wanted or s["type"] in types_wanted]
            return {"data_sources": items, "total_count": len(items)}
        raise AssertionError(action)

    def _read_run(self, run_id: str) -> dict[str, Any]:
        run = self.runs.get(run_id)
        if run is None:
            raise not_found("job_run", run_id)
        data = run.data
        if self.autopilot is not None:
            self._steer(run_id, data)
        if data["state"] == "interrupting" and data.get("_seen_interrupting"):
            data.update(
                state="interrupted",
                reason="cancellation",
                error_message="job run was stopped",
                terminated_at=_now(),
            )
        elif data["state"] == "interrupting":
            data["_seen_interrupting"] = True
        return {key: value for key, value in data.items() if not key.startswith("_")}

    def _steer(self, run_id: str, data: dict[str, Any]) -> None:
        """Autopilot: queued -> running on one read, then the end on the next."""
        assert self.autopilot is not None
        if data["state"] == "queued":
            self.set_state(run_id, "running")
        elif data["state"] == "running":
            exit_code, lines = self.autopilot(data["environment_variables"])
            self.write_logs(run_id, lines)
            self.finish(run_id, exit_code)

    def loki(self, query: dict[str, list[str]], headers: Any) -> dict[str, Any]:
        if headers.get("Authorization") != f"Bearer {LOGS_TOKEN}":
            raise ApiError(401, None)
        expression = query.get("query", [""])[0]
        selector = dict(re.findall(r'(\w+)\s*=\s*"([^"]*)"', expression))
        start = int(query.get("start", ["0"])[0])
        end = int(query.get("end", [str(time.time_ns())])[0])
        limit = int(query.get("limit", ["100"])[0])
        direction = query.get("direction", ["backward"])[0]
        streams = []
        with self._lock:
            for run_id, run in self.runs.items():
                definition = self.definitions.get(run.data["job_definition_id"], {})
                labels = {
                    "resource_type": "serverless_job",
                    "resource_id": run.data["job_definition_id"],
                    "resource_name": definition.get("name", ""),
                    "job_run_id": run_id,
                }
                if any(labels.get(key) != value for key, value in selector.items()):
                    continue
                lines = [(ts, line) for ts, line in run.logs if start <= ts < end]
                lines.sort(reverse=direction == "backward")
                lines = lines[:limit]
                if lines:
                    streams.append(
                        {"stream": labels, "values": [[str(ts), line] for ts, line in lines]}
                    )
        return {"status": "success", "data": {"resultType": "streams", "result": streams}}


class _Server(ThreadingHTTPServer):
    errors: list[BaseException]

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Keep the fake's own failures for the test; a client that gave up is normal."""
        error = sys.exc_info()[1]
        if error is not None and not isinstance(error, ConnectionError):
            self.errors.append(error)


def _match(method: str, path: str) -> tuple[str, re.Match[str]] | None:
    for verb, pattern, action in _ROUTES:
        found = pattern.match(path)
        if verb == method and found:
            return action, found
    return None


def _check_auth(token: str | None) -> None:
    if token != SECRET_KEY:
        raise ApiError(
            401,
            {
                "message": "authentication is denied",
                "method": "api_key",
                "reason": "invalid_argument",
                "type": "denied_authentication",
            },
        )


def _handler_for(fake: FakeScaleway) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            """Keep test output quiet."""

        def _route(self, method: str) -> None:
            parsed = urllib.parse.urlsplit(self.path)
            query = urllib.parse.parse_qs(parsed.query, keep_blank_values=True)
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            routed = _match(method, parsed.path)
            if routed is None:
                self._send(404, {"message": "route not found", "type": "not_found"})
                return
            action, found = routed
            body: Any = json.loads(raw) if raw else None
            with fake._lock:
                fake.calls[action] += 1
                fake.requests.append((action, self.path, body))
            fault = fake._take_fault(action)
            if fault is not None and fault.stall:
                fake._released.wait(fault.stall)
            if fault is not None and (fault.status is not None or fault.empty_body):
                self._send(fault.status or 502, None if fault.empty_body else fault.body or {})
                return
            payload: Any
            try:
                if action == "LokiQueryRange":
                    payload = fake.loki(query, self.headers)
                else:
                    _check_auth(self.headers.get("X-Auth-Token"))
                    payload = fake.handle(action, method, found.groupdict(), query, body)
                    if payload is not None:
                        check_payload(action, payload)
            except ApiError as error:
                self._send(error.status, error.body)
                return
            if fault is not None and fault.lose_reply:
                self.close_connection = True
                return
            self._send(200 if payload is not None else 204, payload)

        def _send(self, status: int, payload: Any) -> None:
            data = json.dumps(payload).encode() if payload is not None else b""
            self.send_response(status)
            if data:
                self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            self._route("GET")

        def do_POST(self) -> None:
            self._route("POST")

        def do_DELETE(self) -> None:
            self._route("DELETE")

    return Handler
