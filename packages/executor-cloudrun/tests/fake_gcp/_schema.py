"""Checking JSON bodies against Google's discovery documents.

The ``run.v2`` and ``logging.v2`` discovery documents ship inside
google-api-python-client. :class:`Schemas` walks a body against a named schema and
returns every problem: unknown fields, wrong types, bad enum values, malformed
int64/duration/timestamp strings, and, for requests, fields the documents mark
output-only ("Output only" in the description, or ``readOnly``).
"""

from __future__ import annotations

import functools
import json
import re
from datetime import datetime
from importlib import resources
from typing import Any

__all__ = ["Schemas", "load"]

_DOCS = resources.files("googleapiclient") / "discovery_cache" / "documents"
_DURATION = re.compile(r"-?[0-9]+(\.[0-9]{1,9})?s")
_INT64 = re.compile(r"-?[0-9]+")
_INT32 = (-(2**31), 2**31 - 1)


def _is_output_only(prop: dict[str, Any]) -> bool:
    return bool(prop.get("readOnly")) or "Output only" in str(prop.get("description", ""))


class Schemas:
    """The schemas of one discovery document."""

    def __init__(self, document: dict[str, Any]) -> None:
        self.name = str(document["name"])
        self.schemas: dict[str, dict[str, Any]] = document["schemas"]

    def check(self, body: Any, schema: str, *, request: bool, int_enums: bool = False) -> list[str]:
        """Return the problems of ``body`` against ``schema`` (empty: valid).

        Args:
            body: the decoded JSON.
            schema: the schema id, e.g. ``"GoogleCloudRunV2Job"``.
            request: a request body: output-only fields are refused.
            int_enums: enums may be integers (the client asked ``enum-encoding=int``).
        """
        problems: list[str] = []
        self._value(body, {"$ref": schema}, schema, problems, request=request, ints=int_enums)
        return problems

    def enum_strings(self, body: Any, schema: str) -> Any:
        """Return ``body`` with integer enums replaced by their names (what is stored)."""
        return self._names(body, {"$ref": schema})

    def _names(self, value: Any, spec: dict[str, Any]) -> Any:
        if "$ref" in spec:
            spec = self.schemas[spec["$ref"]]
        if "enum" in spec:
            if isinstance(value, int) and not isinstance(value, bool):
                return spec["enum"][value]
            return value
        if isinstance(value, dict):
            properties: dict[str, Any] = spec.get("properties", {})
            extra = spec.get("additionalProperties")
            out: dict[str, Any] = {}
            for key, item in value.items():
                sub = properties.get(key, extra)
                out[key] = self._names(item, sub) if isinstance(sub, dict) else item
            return out
        if isinstance(value, list) and isinstance(spec.get("items"), dict):
            return [self._names(item, spec["items"]) for item in value]
        return value

    def _value(
        self,
        value: Any,
        spec: dict[str, Any],
        path: str,
        problems: list[str],
        *,
        request: bool,
        ints: bool,
    ) -> None:
        if "$ref" in spec:
            self._object(value, self.schemas[spec["$ref"]], path, problems, request, ints)
            return
        kind = spec.get("type")
        if kind == "any":
            return
        if "enum" in spec:
            self._enum(value, spec["enum"], path, problems, ints=ints)
            return
        if kind == "object":
            self._object(value, spec, path, problems, request, ints)
        elif kind == "array":
            if not isinstance(value, list):
                problems.append(f"{path}: expected an array, got {type(value).__name__}")
                return
            for index, item in enumerate(value):
                self._value(
                    item, spec["items"], f"{path}[{index}]", problems, request=request, ints=ints
                )
        else:
            self._scalar(value, kind, spec.get("format"), path, problems)

    def _scalar(
        self, value: Any, kind: object, fmt: str | None, path: str, problems: list[str]
    ) -> None:
        if kind == "string":
            self._string(value, fmt, path, problems)
        elif kind == "integer":
            if isinstance(value, bool) or not isinstance(value, int):
                problems.append(f"{path}: expected an int32 number, got {value!r}")
            elif not _INT32[0] <= value <= _INT32[1]:
                problems.append(f"{path}: {value} is out of int32 range")
        elif kind == "number":
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                problems.append(f"{path}: expected a number, got {value!r}")
        elif kind == "boolean":
            if not isinstance(value, bool):
                problems.append(f"{path}: expected a boolean, got {value!r}")
        else:  # pragma: no cover - the documents use only the kinds above
            problems.append(f"{path}: unknown schema type {kind!r}")

    def _object(
        self,
        value: Any,
        spec: dict[str, Any],
        path: str,
        problems: list[str],
        request: bool,
        ints: bool,
    ) -> None:
        if not isinstance(value, dict):
            problems.append(f"{path}: expected an object, got {type(value).__name__}")
            return
        properties: dict[str, Any] = spec.get("properties", {})
        extra = spec.get("additionalProperties")
        for key, item in value.items():
            where = f"{path}.{key}"
            if key in properties:
                prop = properties[key]
                if request and _is_output_only(prop):
                    problems.append(f"{where}: is output only and may not be set in a request")
                    continue
                self._value(item, prop, where, problems, request=request, ints=ints)
            elif extra is not None:
                self._value(item, extra, where, problems, request=request, ints=ints)
            elif key == "@type" and not properties:
                continue
            else:
                problems.append(f"{where}: unknown field")

    @staticmethod
    def _enum(
        value: Any, allowed: list[str], path: str, problems: list[str], *, ints: bool
    ) -> None:
        if isinstance(value, str):
            if value not in allowed:
                problems.append(f"{path}: {value!r} is not one of {allowed}")
        elif ints and isinstance(value, int) and not isinstance(value, bool):
            if not 0 <= value < len(allowed):
                problems.append(f"{path}: enum number {value} is out of range")
        else:
            problems.append(f"{path}: expected an enum string, got {value!r}")

    @staticmethod
    def _string(value: Any, fmt: str | None, path: str, problems: list[str]) -> None:
        if not isinstance(value, str):
            problems.append(f"{path}: expected a string, got {value!r}")
            return
        if fmt in {"int64", "uint64"} and not _INT64.fullmatch(value):
            problems.append(f"{path}: {value!r} is not an int64 string")
        elif fmt == "google-duration" and not _DURATION.fullmatch(value):
            problems.append(f"{path}: {value!r} is not a duration like '600s'")
        elif fmt == "google-datetime":
            try:
                parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
            except ValueError:
                problems.append(f"{path}: {value!r} is not an RFC 3339 timestamp")
                return
            if parsed.tzinfo is None:
                problems.append(f"{path}: {value!r} has no time zone")


@functools.cache
def load(api: str) -> Schemas:
    """Return the schemas of ``api`` (``"run.v2"`` or ``"logging.v2"``)."""
    document = json.loads((_DOCS / f"{api}.json").read_text(encoding="utf-8"))
    return Schemas(document)
