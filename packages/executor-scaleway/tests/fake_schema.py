"""The fake's contract with the official SDK: its requests and answers, checked.

There is no OpenAPI document for Serverless Jobs at hand, so the generated SDK is the
schema: a request body must be exactly what the SDK's ``marshal_*`` function for that
call produces (it is rebuilt into the SDK's request dataclass and marshalled again),
query parameters must be fields of the SDK's request dataclass, and every answer
must go through the SDK's ``unmarshal_*`` function holding only keys it reads.
Violations are Scaleway's own ``invalid_arguments`` error (400).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from scaleway.cockpit.v1 import marshalling as cockpit_marshalling  # type: ignore[import-untyped, unused-ignore]
from scaleway.cockpit.v1 import types as cockpit_types  # type: ignore[import-untyped, unused-ignore]
from scaleway.jobs.v1alpha2 import marshalling, types  # type: ignore[import-untyped, unused-ignore]
from scaleway_core.profile import ProfileDefaults

__all__ = [
    "BODIES",
    "QUERIES",
    "ApiError",
    "check_payload",
    "check_query",
    "check_request_body",
    "check_response",
    "invalid",
    "not_found",
]


# The SDK's request dataclass and marshal function for each call with a body.
BODIES: dict[str, tuple[type[Any], Callable[..., dict[str, Any]], set[str]]] = {
    "CreateJobDefinition": (
        types.CreateJobDefinitionRequest,
        marshalling.marshal_CreateJobDefinitionRequest,
        {"region"},
    ),
    "StartJobDefinition": (
        types.StartJobDefinitionRequest,
        marshalling.marshal_StartJobDefinitionRequest,
        {"region", "job_definition_id"},
    ),
}
_NESTED: dict[str, type[Any]] = {
    "retry_policy": types.RetryPolicy,
    "cron_schedule": types.CreateJobDefinitionRequestCronScheduleConfig,
}
# The SDK's request dataclass for each call with query parameters.
QUERIES: dict[str, type[Any]] = {
    "ListJobDefinitions": types.ListJobDefinitionsRequest,
    "ListJobRuns": types.ListJobRunsRequest,
    "ListDataSources": cockpit_types.RegionalApiListDataSourcesRequest,
}


class ApiError(Exception):
    """An error answer: status and Scaleway's JSON body (None for an empty body)."""

    def __init__(self, status: int, body: dict[str, Any] | None) -> None:
        super().__init__(status, body)
        self.status = status
        self.body = body


def invalid(argument: str, reason: str, help_message: str) -> ApiError:
    return ApiError(
        400,
        {
            "details": [
                {"argument_name": argument, "reason": reason, "help_message": help_message}
            ],
            "message": "invalid argument(s)",
            "type": "invalid_arguments",
        },
    )


def not_found(resource: str, resource_id: str) -> ApiError:
    return ApiError(
        404,
        {
            "message": "resource is not found",
            "resource": resource,
            "resource_id": resource_id,
            "type": "not_found",
        },
    )


def _check_type(name: str, annotation: str, value: Any) -> None:
    """Reject a value whose JSON type differs from the SDK dataclass annotation."""
    if value is None:
        return
    ok: bool
    if "list[str]" in annotation:
        ok = isinstance(value, list) and all(isinstance(item, str) for item in value)
    elif "dict[str, str]" in annotation:
        ok = isinstance(value, dict) and all(
            isinstance(k, str) and isinstance(v, str) for k, v in value.items()
        )
    elif annotation.replace("Optional[", "").rstrip("]") == "int":
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif annotation.replace("Optional[", "").rstrip("]") in {"str", "ScwRegion"}:
        ok = isinstance(value, str)
    else:
        ok = isinstance(value, dict)
    if not ok:
        raise invalid(name, "constraint", f"wrong type for {annotation}: {value!r}")


def check_request_body(action: str, body: Any) -> None:
    """Raise :class:`ApiError` unless ``body`` is what the SDK's marshal_* would send."""
    cls, marshal, path_fields = BODIES[action]
    if not isinstance(body, dict):
        raise invalid("body", "constraint", "the body must be a JSON object")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    allowed = set(fields) - path_fields
    for key, value in body.items():
        if key not in allowed:
            raise invalid(key, "unknown", f"unknown field {key!r}")
        _check_type(key, str(fields[key].type), value)
    arguments = dict(body)
    for key, nested in _NESTED.items():
        if isinstance(arguments.get(key), dict):
            try:
                arguments[key] = nested(**arguments[key])
            except TypeError as exc:
                raise invalid(key, "unknown", str(exc)) from None
    for name, field in fields.items():
        required = (
            field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING
        )
        if name not in path_fields and required and name not in body:
            raise invalid(name, "required", f"{name} is required")
    # The SDK's methods pass every optional field explicitly (None when not given).
    omitted = {name: None for name in fields if name not in arguments}
    request = cls(**omitted, **arguments)
    remarshalled = marshal(request, ProfileDefaults(default_project_id=body.get("project_id")))
    if remarshalled != body:
        raise invalid("body", "constraint", f"not what the SDK sends: {remarshalled!r}")


def check_response(unmarshal: Callable[[Any], Any], cls: type[Any], payload: Any) -> None:
    """Assert that ``payload`` holds only keys the SDK reads and that it unmarshals."""
    names = {f.name.rstrip("_") for f in dataclasses.fields(cls)}
    unknown = set(payload) - names
    if unknown:
        raise AssertionError(f"fake response has keys the SDK does not read: {unknown}")
    unmarshal(payload)


_UNMARSHAL: dict[str, tuple[Callable[[Any], Any], type[Any]]] = {
    "CreateJobDefinition": (marshalling.unmarshal_JobDefinition, types.JobDefinition),
    "GetJobDefinition": (marshalling.unmarshal_JobDefinition, types.JobDefinition),
    "ListJobDefinitions": (
        marshalling.unmarshal_ListJobDefinitionsResponse,
        types.ListJobDefinitionsResponse,
    ),
    "StartJobDefinition": (
        marshalling.unmarshal_StartJobDefinitionResponse,
        types.StartJobDefinitionResponse,
    ),
    "GetJobRun": (marshalling.unmarshal_JobRun, types.JobRun),
    "StopJobRun": (marshalling.unmarshal_JobRun, types.JobRun),
    "ListJobRuns": (marshalling.unmarshal_ListJobRunsResponse, types.ListJobRunsResponse),
    "ListDataSources": (
        cockpit_marshalling.unmarshal_ListDataSourcesResponse,
        cockpit_types.ListDataSourcesResponse,
    ),
}
_ITEMS = {
    "ListJobDefinitions": (
        "job_definitions",
        marshalling.unmarshal_JobDefinition,
        types.JobDefinition,
    ),
    "ListJobRuns": ("job_runs", marshalling.unmarshal_JobRun, types.JobRun),
    "StartJobDefinition": ("job_runs", marshalling.unmarshal_JobRun, types.JobRun),
    "ListDataSources": (
        "data_sources",
        cockpit_marshalling.unmarshal_DataSource,
        cockpit_types.DataSource,
    ),
}


def check_payload(action: str, payload: Any) -> None:
    """Check a response of ``action`` against the SDK's unmarshal_* functions."""
    if action not in _UNMARSHAL:
        return
    unmarshal, cls = _UNMARSHAL[action]
    check_response(unmarshal, cls, payload)
    if action in _ITEMS:
        key, item_unmarshal, item_cls = _ITEMS[action]
        for item in payload[key]:
            check_response(item_unmarshal, item_cls, item)


def check_query(action: str, query: dict[str, list[str]]) -> None:
    """Reject a query parameter that is not a field of the SDK's request dataclass."""
    if action not in QUERIES:
        return
    names = {f.name for f in dataclasses.fields(QUERIES[action])} - {"region"}
    for key in query:
        if key not in names:
            raise invalid(key, "unknown", f"unknown query parameter {key!r}")
