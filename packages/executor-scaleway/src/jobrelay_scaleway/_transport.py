"""HTTP for the SDK: a deadline on every call, pooled connections, no body logging.

The generated SDK sends every request through one method, ``API._request``, which
calls ``requests.request`` with no timeout (a stalled server hangs the caller for
ever), opens a new connection per call, logs whole request and response bodies
(environment and secrets included) at DEBUG on the ``scaleway`` logger, and lets an
error answer with an empty body fail later as a JSON error. :class:`Transport`
replaces that one method on each API object jobrelay creates, and keeps the rest of
the SDK (paths, marshalling, unmarshalling) as generated.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from jobrelay.backend import ErrorTable, lazy_import

if TYPE_CHECKING:
    import requests
    import requests.adapters as requests_adapters
    import scaleway_core.api as scaleway_core_api
    from scaleway_core.api import API
    from scaleway_core.client import Client
else:
    # Imported when the first Transport is made or the first error is mapped,
    # never by importing jobrelay_scaleway.
    requests = lazy_import("requests")
    requests_adapters = lazy_import("requests.adapters")
    scaleway_core_api = lazy_import("scaleway_core.api")

__all__ = ["TABLE", "EmptyReplyError", "Transport", "error_type", "status_of"]

logger = logging.getLogger("jobrelay.scaleway.http")

CONNECT_TIMEOUT = 5.0

ApiT = TypeVar("ApiT", bound="API")


class EmptyReplyError(Exception):
    """A success status with no JSON body: never taken as an answer."""

    def __init__(self, method: str, path: str, status: int) -> None:
        super().__init__(f"{method} {path} answered HTTP {status} with an empty body")
        self.status = status


class Transport:
    """Sends the SDK's requests with a deadline through one pooled session.

    Args:
        timeout: seconds a call may wait for the server (connect and each read).
    """

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self.session = requests.Session()
        adapter = requests_adapters.HTTPAdapter(pool_connections=4, pool_maxsize=16, max_retries=0)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)

    def bind(self, api: ApiT) -> ApiT:
        """Route ``api``'s requests through this transport; return ``api``."""

        def request(
            method: str,
            path: str,
            params: Mapping[str, Any] | None = None,
            headers: Mapping[str, str] | None = None,
            body: Any = None,
        ) -> requests.Response:
            return self.request(api.client, method, path, params or {}, headers or {}, body)

        # The SDK's single transport seam, replaced on this instance only.
        api._request = request  # type: ignore[method-assign]  # noqa: SLF001
        return api

    def request(
        self,
        client: Client,
        method: str,
        path: str,
        params: Mapping[str, Any],
        headers: Mapping[str, str],
        body: Any,
    ) -> requests.Response:
        """Send one request as the SDK would, with a deadline; raise on an error answer.

        Raises:
            ScalewayException: an HTTP error answer (body kept as Scaleway wrote it).
            EmptyReplyError: a success status without a JSON body (except 204 / DELETE).
            requests.RequestException: connection trouble or the deadline passed.
        """
        method = method.upper()
        send_headers = {"accept": "application/json", "user-agent": client.user_agent}
        data: str | bytes | None = None
        if method in {"POST", "PUT", "PATCH"}:
            send_headers["Content-Type"] = "application/json; charset=utf-8"
            data = body if isinstance(body, bytes) else json.dumps({} if body is None else body)
        send_headers.update(headers)
        if client.secret_key is not None:
            send_headers["x-auth-token"] = client.secret_key
        query: list[tuple[str, str]] = []
        for key, value in params.items():
            if value is None:
                continue
            query.extend(
                (key, str(item)) for item in (value if isinstance(value, list) else [value])
            )
        started = time.monotonic()
        response = self.session.request(
            method,
            f"{client.api_url}{path}",
            params=query,
            headers=send_headers,
            data=data,
            timeout=(min(CONNECT_TIMEOUT, self.timeout), self.timeout),
            verify=not client.api_allow_insecure,
        )
        logger.debug(
            "%s %s -> HTTP %d in %.0f ms",
            method,
            path,
            response.status_code,
            (time.monotonic() - started) * 1000,
        )
        if response.status_code >= 400:
            raise scaleway_core_api.ScalewayException(response)
        if response.status_code != 204 and method != "DELETE":
            try:
                decoded = response.json()
            except ValueError:
                raise EmptyReplyError(method, path, response.status_code) from None
            if not isinstance(decoded, dict):
                raise EmptyReplyError(method, path, response.status_code)
            total = response.headers.get("x-total-count")
            if total:
                # What the SDK does with this header, kept for its unmarshalling.
                decoded["total_count"] = total
                response._content = json.dumps(decoded).encode()  # noqa: SLF001
        return response

    def close(self) -> None:
        """Close the pooled connections."""
        self.session.close()


def status_of(exc: BaseException) -> int | None:
    """Return the HTTP status an SDK or requests error carries, if any."""
    if isinstance(exc, scaleway_core_api.ScalewayException):
        return int(exc.response.status_code)
    if isinstance(exc, requests.HTTPError) and exc.response is not None:
        return int(exc.response.status_code)
    return None


def _body(exc: BaseException) -> dict[str, Any]:
    response = getattr(exc, "response", None)
    if response is None:
        return {}
    try:
        decoded = response.json()
    except ValueError:
        return {}
    return decoded if isinstance(decoded, dict) else {}


def error_type(exc: BaseException) -> str:
    """Return Scaleway's error ``type`` (``not_found``, ``quotas_exceeded``, ...) or ''."""
    value = _body(exc).get("type")
    return value if isinstance(value, str) else ""


def _transient(exc: BaseException) -> bool:
    if isinstance(exc, EmptyReplyError):
        return True
    status = status_of(exc)
    if status is not None:
        return status == 429 or status >= 500
    return isinstance(
        exc, (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError)
    )


def _describe(exc: BaseException) -> str:
    status = status_of(exc)
    if status is None:
        text = str(exc)
        return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    body = _body(exc)
    if not body:
        return f"HTTP {status} with an empty body"
    parts = [f"HTTP {status}"]
    if body.get("type"):
        parts.append(str(body["type"]))
    parts.append(str(body.get("message") or ""))
    details = body.get("details") or body.get("fields")
    if details:
        parts.append(json.dumps(details, sort_keys=True))
    return " ".join(part for part in parts if part)


TABLE = ErrorTable(
    backend="scaleway",
    # The SDK's and requests' classes, read at the first failure: not imported with
    # the package.
    catch=lambda: (scaleway_core_api.ScalewayException, requests.RequestException, EmptyReplyError),
    transient=_transient,
    describe=_describe,
)
