"""A fake Cloud Run Admin API v2 and Cloud Logging v2 over real HTTP on 127.0.0.1.

Every request body and query is checked against the discovery documents (unknown
fields, output-only fields, enums, formats) and refused with 400 like the service
would; every answer is checked against the same documents before it is sent, and a
bad one is recorded in :attr:`FakeGCP.problems` (tests assert it stays empty).
Faults (error answers, replies lost after the call took effect, stalls) are injected
with :meth:`FakeGCP.fail`; every call is counted in :attr:`FakeGCP.calls`.
"""

from __future__ import annotations

import json
import re
import threading
import time
import urllib.parse
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from fake_gcp._filter import FilterError, compile_filter, names_timestamp
from fake_gcp._schema import load
from fake_gcp._state import ApiError, World, stamp

__all__ = ["Call", "FakeGCP", "Fault"]

_P = r"projects/(?P<project>[^/]+)/locations/(?P<region>[^/]+)"
# (http method, path regex) -> (method id, request schema, response schema, query params)
_ROUTES: list[tuple[str, re.Pattern[str], str, str | None, str, set[str]]] = [
    ("POST", re.compile(rf"/v2/{_P}/jobs"), "run.jobs.create", "GoogleCloudRunV2Job",
     "GoogleLongrunningOperation", {"jobId", "validateOnly"}),
    ("GET", re.compile(rf"/v2/{_P}/jobs"), "run.jobs.list", None,
     "GoogleCloudRunV2ListJobsResponse", {"pageSize", "pageToken", "showDeleted"}),
    ("GET", re.compile(rf"/v2/{_P}/jobs/(?P<job>[^/:]+)"), "run.jobs.get", None,
     "GoogleCloudRunV2Job", set()),
    ("DELETE", re.compile(rf"/v2/{_P}/jobs/(?P<job>[^/:]+)"), "run.jobs.delete", None,
     "GoogleLongrunningOperation", {"etag", "validateOnly"}),
    ("POST", re.compile(rf"/v2/{_P}/jobs/(?P<job>[^/:]+):run"), "run.jobs.run",
     "GoogleCloudRunV2RunJobRequest", "GoogleLongrunningOperation", set()),
    ("GET", re.compile(rf"/v2/{_P}/jobs/(?P<job>[^/:]+)/executions"), "run.executions.list",
     None, "GoogleCloudRunV2ListExecutionsResponse", {"pageSize", "pageToken", "showDeleted"}),
    ("GET", re.compile(rf"/v2/{_P}/jobs/(?P<job>[^/:]+)/executions/(?P<ex>[^/:]+)"),
     "run.executions.get", None, "GoogleCloudRunV2Execution", set()),
    ("POST", re.compile(rf"/v2/{_P}/jobs/(?P<job>[^/:]+)/executions/(?P<ex>[^/:]+):cancel"),
     "run.executions.cancel", "GoogleCloudRunV2CancelExecutionRequest",
     "GoogleLongrunningOperation", set()),
    ("GET", re.compile(rf"/v2/{_P}/jobs/(?P<job>[^/:]+)/executions/(?P<ex>[^/:]+)/tasks"),
     "run.tasks.list", None, "GoogleCloudRunV2ListTasksResponse",
     {"pageSize", "pageToken", "showDeleted"}),
    ("GET", re.compile(rf"/v2/{_P}/operations/(?P<op>[^/:]+)"), "run.operations.get", None,
     "GoogleLongrunningOperation", set()),
    ("POST", re.compile(r"/v2/entries:list"), "logging.entries.list", "ListLogEntriesRequest",
     "ListLogEntriesResponse", set()),
]  # fmt: skip

_TYPES = {
    "GoogleCloudRunV2Job": "type.googleapis.com/google.cloud.run.v2.Job",
    "GoogleCloudRunV2Execution": "type.googleapis.com/google.cloud.run.v2.Execution",
}


@dataclass
class Fault:
    """One injected fault.

    Args:
        method: the method id it applies to (``"run.jobs.create"``), or ``"*"``.
        status: answer this HTTP status (with ``grpc_status`` and ``message``) instead.
        lost_reply: do the call, then drop the connection without answering.
        stall: seconds to hold the request before handling it.
        times: how many calls it hits.
    """

    method: str
    status: int | None = None
    grpc_status: str = "UNAVAILABLE"
    message: str = "injected fault"
    lost_reply: bool = False
    stall: float = 0.0
    times: int = 1


@dataclass(frozen=True)
class Call:
    """One request the fake received."""

    method: str
    path: str
    query: dict[str, str]
    body: Any
    at: float


class _DroppedError(Exception):
    """Close the connection without an answer."""


class FakeGCP:
    """Cloud Run Admin v2 + Cloud Logging v2 for one project and region.

    Args:
        project: the project id.
        region: the region (Cloud Run location).
        max_page_size: most items one list page holds, whatever the client asks.
        logging_quota: ``entries.list`` calls allowed per 60 s (more answer 429).
    """

    def __init__(
        self,
        project: str = "jobrelay-test",
        region: str = "europe-west1",
        *,
        max_page_size: int = 100,
        logging_quota: int = 60,
    ) -> None:
        self.world = World(project, region, max_page_size=max_page_size)
        self.logging_quota = self._default_quota = logging_quota
        self.run_schemas = load("run.v2")
        self.logging_schemas = load("logging.v2")
        self.calls: Counter[str] = Counter()
        self.requests: list[Call] = []
        self.problems: list[str] = []
        self.rejected: list[str] = []
        self.faults: list[Fault] = []
        self.timer: Callable[[], float] = time.monotonic
        self.on_call: Callable[[str], None] | None = None  # a test's hook, run per call
        self._lock = threading.Lock()
        self._release = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifetime ------------------------------------------------------------------

    @property
    def url(self) -> str:
        assert self._server is not None, "start() the fake first"
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> FakeGCP:
        fake = self

        class Handler(_Handler):
            owner = fake

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="fake-gcp", kwargs={"poll_interval": 0.05}
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._release.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join()

    def reset(self) -> None:
        """Forget all state, faults and counts (between tests)."""
        # Requests still stalled from the last test are dropped, never served into this one.
        self._release.set()
        self._release = threading.Event()
        world = self.world
        self.world = World(world.project, world.region, max_page_size=world.max_page_size)
        self.clear()
        self.faults.clear()
        self.timer = time.monotonic
        self.on_call = None
        self.logging_quota = self._default_quota
        self.problems.clear()
        self.rejected.clear()

    def clear(self) -> None:
        """Forget the counted calls only."""
        with self._lock:
            self.calls.clear()
            self.requests.clear()

    # -- faults and counts -----------------------------------------------------------

    def fail(self, method: str, status: int | None = None, **options: Any) -> Fault:
        """Inject a fault (see :class:`Fault`); return it (its ``times`` counts down)."""
        fault = Fault(method, status, **options)
        with self._lock:
            self.faults.append(fault)
        return fault

    def count(self, prefix: str = "") -> int:
        """Return how many calls of methods starting with ``prefix`` were made."""
        with self._lock:
            return sum(n for method, n in self.calls.items() if method.startswith(prefix))

    def calls_of(self, method: str) -> list[Call]:
        with self._lock:
            return [call for call in self.requests if call.method == method]

    def _fault_for(self, method: str) -> Fault | None:
        with self._lock:
            for fault in self.faults:
                if fault.times > 0 and fault.method in (method, "*"):
                    fault.times -= 1
                    return fault
        return None

    # -- driving the world (tests) -----------------------------------------------

    @property
    def project(self) -> str:
        return self.world.project

    @property
    def region(self) -> str:
        return self.world.region

    def job(self, name: str) -> dict[str, Any]:
        """Return the stored job (full name or the short job id)."""
        full = name if name.startswith("projects/") else f"{self.world.parent}/jobs/{name}"
        return self.world.job(full)

    @property
    def jobs(self) -> dict[str, dict[str, Any]]:
        return self.world.jobs

    @property
    def executions(self) -> dict[str, dict[str, Any]]:
        return self.world.executions

    def start_execution(self, execution: str) -> None:
        self.world.start(execution)

    def finish(
        self,
        execution: str,
        exit_code: int = 0,
        *,
        signal: int | None = None,
        timed_out: bool = False,
        stdout: Iterable[str] = (),
        stderr: Iterable[str] = (),
    ) -> None:
        """Run ``execution`` to its end, writing its output lines first."""
        self.world.start(execution)
        self.write_log(execution, "stdout", stdout)
        self.write_log(execution, "stderr", stderr)
        self.world.finish(execution, exit_code=exit_code, signal=signal, timed_out=timed_out)

    def write_log(
        self, execution: str, stream: str, lines: Iterable[str], *, when: datetime | None = None
    ) -> None:
        self.world.write_log(execution, stream, lines, when=when)

    def create_foreign_job(self, job_id: str, labels: dict[str, str] | None = None) -> str:
        """Create a job someone else made (no jobrelay labels); return its name."""
        body = {
            "labels": labels or {"team": "other"},
            "template": {"template": {"containers": [{"image": "gcr.io/other/app:1"}]}},
            "startExecutionToken": "manual",
        }
        return str(self.world.create_job(job_id, body)["name"])

    # -- handling ------------------------------------------------------------------

    def handle(self, verb: str, raw_path: str, body: bytes) -> tuple[int, Any]:
        """Serve one request; return (HTTP status, JSON answer)."""
        parsed = urllib.parse.urlsplit(raw_path)
        path = urllib.parse.unquote(parsed.path)
        query = dict(urllib.parse.parse_qsl(parsed.query, keep_blank_values=True))
        routes = ((route, route[1].fullmatch(path)) for route in _ROUTES if route[0] == verb)
        route, match = next(((r, m) for r, m in routes if m is not None), (None, None))
        if route is None or match is None:
            return 404, _error(404, "NOT_FOUND", f"no such method: {verb} {path}")
        _, _, method, request_schema, response_schema, params = route
        decoded: Any = None
        if body:
            try:
                decoded = json.loads(body)
            except ValueError:
                return 400, _error(400, "INVALID_ARGUMENT", "request body is not JSON")
        with self._lock:
            self.calls[method] += 1
            self.requests.append(Call(method, path, query, decoded, self.timer()))
        if self.on_call is not None:
            self.on_call(method)
        release = self._release
        fault = self._fault_for(method)
        if fault is not None and fault.stall and release.wait(fault.stall):
            raise _DroppedError
        if fault is not None and fault.status is not None:
            return fault.status, _error(fault.status, fault.grpc_status, fault.message)
        schemas = self.logging_schemas if method.startswith("logging.") else self.run_schemas
        problems = self._check_request(method, query, params, decoded, request_schema, schemas)
        if problems:
            self.rejected.extend(problems)
            return 400, _error(400, "INVALID_ARGUMENT", "; ".join(problems))
        if decoded is not None and request_schema is not None:
            decoded = schemas.enum_strings(decoded, request_schema)
        try:
            if "project" in match.groupdict():
                self._check_place(match)
            answer = self._dispatch(method, match, query, decoded or {})
        except ApiError as exc:
            return exc.code, _error(exc.code, exc.status, exc.message)
        self._check_response(method, answer, response_schema, schemas)
        if fault is not None and fault.lost_reply:
            raise _DroppedError
        return 200, answer

    def _check_place(self, match: re.Match[str]) -> None:
        if match["project"] != self.world.project:
            raise ApiError(
                403, "PERMISSION_DENIED", f"Permission denied on project {match['project']}"
            )
        if match["region"] != self.world.region:
            raise ApiError(404, "NOT_FOUND", f"Location {match['region']} is not served here")

    def _check_request(
        self,
        method: str,
        query: dict[str, str],
        params: set[str],
        body: Any,
        schema: str | None,
        schemas: Any,
    ) -> list[str]:
        problems: list[str] = []
        alt = query.get("$alt", "json")
        if alt not in {"json", "json;enum-encoding=int"}:
            problems.append(f"$alt: {alt!r} is not json")
        ints = alt.endswith("enum-encoding=int")
        problems.extend(
            f"query parameter {key!r} is not one of {sorted(params)}"
            for key in query
            if key not in params and key not in {"$alt", "alt", "prettyPrint"}
        )
        if schema is None:
            if body is not None:
                problems.append(f"{method} takes no body")
        elif body is None and method in {"run.jobs.create", "logging.entries.list"}:
            problems.append(f"{method} needs a body")
        elif body is not None:
            problems += schemas.check(body, schema, request=True, int_enums=ints)
        return problems

    def _check_response(self, method: str, answer: Any, schema: str, schemas: Any) -> None:
        found = schemas.check(answer, schema, request=False)
        if schema == "GoogleLongrunningOperation":
            for part in ("metadata", "response"):
                inner = dict(answer.get(part) or {})
                kind = inner.pop("@type", None)
                if inner or kind:
                    ref = next((k for k, v in _TYPES.items() if v == kind), None)
                    if ref is None:
                        found.append(f"{part}: unknown @type {kind!r}")
                    else:
                        found += schemas.check(inner, ref, request=False)
        if isinstance(answer, dict) and answer.get("nextPageToken") == "":
            found.append("nextPageToken: the service omits an empty token")
        if found:
            self.problems.extend(f"{method} answer: {p}" for p in found)

    def _dispatch(
        self, method: str, match: re.Match[str], query: dict[str, str], body: dict[str, Any]
    ) -> Any:
        world = self.world
        groups = match.groupdict()
        job_name = f"{world.parent}/jobs/{groups.get('job')}"
        execution_name = f"{job_name}/executions/{groups.get('ex')}"
        page_size = _int(query.get("pageSize", "0"), "pageSize")
        token = query.get("pageToken", "")
        handlers: dict[str, Callable[[], Any]] = {
            "run.jobs.create": lambda: self._operation(
                world.create_job(query.get("jobId", ""), body), "GoogleCloudRunV2Job", done=False
            ),
            "run.jobs.list": lambda: _paged("jobs", *world.list_jobs(page_size, token)),
            "run.jobs.get": lambda: world.job(job_name),
            "run.jobs.delete": lambda: self._operation(
                world.delete_job(job_name), "GoogleCloudRunV2Job", done=True
            ),
            "run.jobs.run": lambda: self._operation(
                world.run_job(job_name, None, body.get("overrides", {})),
                "GoogleCloudRunV2Execution",
                done=False,
            ),
            "run.executions.list": lambda: _paged(
                "executions", *world.list_executions(job_name, page_size, token)
            ),
            "run.executions.get": lambda: world.execution(execution_name),
            "run.executions.cancel": lambda: self._operation(
                world.cancel(execution_name), "GoogleCloudRunV2Execution", done=False
            ),
            "run.tasks.list": lambda: _paged("tasks", world.list_tasks(execution_name), ""),
            "run.operations.get": lambda: self._get_operation(
                f"{world.parent}/operations/{groups.get('op')}"
            ),
            "logging.entries.list": lambda: self._entries(body),
        }
        return handlers[method]()

    def _operation(self, resource: dict[str, Any], schema: str, *, done: bool) -> dict[str, Any]:
        name = f"{self.world.parent}/operations/{len(self.world.operations) + 1:08d}"
        operation: dict[str, Any] = {
            "name": name,
            "metadata": {"@type": _TYPES[schema], **resource},
            "done": done,
        }
        if done:
            operation["response"] = {"@type": _TYPES[schema], **resource}
        self.world.operations[name] = operation
        return operation

    def _get_operation(self, name: str) -> dict[str, Any]:
        if name not in self.world.operations:
            raise ApiError(404, "NOT_FOUND", f"Operation '{name}' was not found")
        return self.world.operations[name]

    def _entries(self, body: dict[str, Any]) -> dict[str, Any]:
        self._logging_quota()
        names = body.get("resourceNames", [])
        if names != [f"projects/{self.world.project}"]:
            raise ApiError(400, "INVALID_ARGUMENT", f"resourceNames {names!r} not served here")
        text = str(body.get("filter", ""))
        try:
            predicate = compile_filter(text)
        except FilterError as exc:
            raise ApiError(400, "INVALID_ARGUMENT", f"invalid filter: {exc}") from None
        horizon = "" if names_timestamp(text) else stamp(self.world.now() - timedelta(hours=24))
        order = str(body.get("orderBy", "timestamp asc"))
        if order not in {"timestamp asc", "timestamp desc"}:
            raise ApiError(400, "INVALID_ARGUMENT", f"invalid orderBy {order!r}")
        with self.world.lock:
            found = [
                entry
                for entry in self.world.entries
                if predicate(entry) and (not horizon or entry["timestamp"] >= horizon)
            ]
        found.sort(key=lambda e: (e["timestamp"], e["insertId"]), reverse=order.endswith("desc"))
        size = int(body.get("pageSize") or 50)
        size = min(size, 1000)
        start = _int(body.get("pageToken") or "0", "pageToken")
        page = found[start : start + size]
        answer: dict[str, Any] = {}
        if page:
            answer["entries"] = page
        if start + size < len(found):
            answer["nextPageToken"] = str(start + size)
        return answer

    def _logging_quota(self) -> None:
        now = self.timer()
        with self._lock:
            recent = [c for c in self.requests if c.method == "logging.entries.list"]
            recent = [c for c in recent if now - c.at < 60.0]
        if len(recent) > self.logging_quota:
            raise ApiError(
                429,
                "RESOURCE_EXHAUSTED",
                "Quota exceeded for quota metric 'Read requests' and limit "
                "'Read requests per minute' of service 'logging.googleapis.com'",
            )


def _int(text: str, what: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise ApiError(400, "INVALID_ARGUMENT", f"{what} {text!r} is not a number") from None


def _paged(key: str, items: list[dict[str, Any]], token: str) -> dict[str, Any]:
    answer: dict[str, Any] = {key: items} if items else {}
    if token:
        answer["nextPageToken"] = token
    return answer


def _error(code: int, status: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "status": status}}


class _Handler(BaseHTTPRequestHandler):
    owner: FakeGCP
    protocol_version = "HTTP/1.0"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        """Keep test output quiet."""

    def _serve(self, verb: str) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        try:
            status, answer = self.owner.handle(verb, self.path, body)
        except _DroppedError:
            self.close_connection = True
            return
        payload = json.dumps(answer).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=UTF-8")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
        except OSError:
            # The client gave up (a stall past its deadline): nothing to answer.
            self.close_connection = True

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def do_DELETE(self) -> None:
        self._serve("DELETE")

    def do_PATCH(self) -> None:
        self._serve("PATCH")
