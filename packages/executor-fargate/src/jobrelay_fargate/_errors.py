"""Fargate's error table: which botocore failures are passing faults, and their words.

Throttling, 5xx answers, connection failures and timeouts are transient (retried by
jobrelay's ``RetryPolicy``; botocore's own retries are switched off so the two do not
multiply). Everything else is permanent. The translation itself is core's
:class:`~jobrelay.backend.ErrorTable`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from jobrelay.backend import ErrorTable, lazy_import

if TYPE_CHECKING:
    import botocore.exceptions as botocore_exceptions
    from botocore.exceptions import ClientError
else:
    # botocore is imported when a failure is first examined, not with this package.
    botocore_exceptions = lazy_import("botocore.exceptions")

__all__ = ["TABLE", "TRANSIENT_CODES", "error_code", "is_transient"]

TRANSIENT_CODES = frozenset(
    {
        "InternalError",
        "InternalFailure",
        "InternalServerError",
        "InternalServerException",
        "PriorRequestNotComplete",
        "RequestLimitExceeded",
        "RequestThrottled",
        "RequestThrottledException",
        "RequestTimeout",
        "RequestTimeoutException",
        "ServerException",
        "ServiceUnavailable",
        "ServiceUnavailableException",
        "SlowDown",
        "ThrottledException",
        "Throttling",
        "ThrottlingException",
        "TooManyRequestsException",
    }
)


def error_code(error: ClientError) -> str:
    """Return the AWS error code of ``error`` (``""`` when the answer had none)."""
    return str(error.response.get("Error", {}).get("Code", ""))


def _status(error: ClientError) -> int:
    return int(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))


def is_transient(error: BaseException) -> bool:
    """Return whether ``error`` is a passing fault worth retrying."""
    if isinstance(error, botocore_exceptions.ClientError):
        status = _status(error)
        return error_code(error) in TRANSIENT_CODES or status == 429 or status >= 500
    # Connection refused/reset, DNS failures and connect timeouts are ConnectionError;
    # read timeouts, closed connections and broken response streams are HTTPClientError.
    return isinstance(
        error, (botocore_exceptions.ConnectionError, botocore_exceptions.HTTPClientError)
    )


def describe(error: BaseException) -> str:
    """Return AWS's code, message and request id, or the transport failure."""
    if isinstance(error, botocore_exceptions.ClientError):
        detail = error.response.get("Error", {}).get("Message", "") or str(error)
        text = f"{error_code(error) or f'HTTP {_status(error)}'}: {detail}"
        request_id = error.response.get("ResponseMetadata", {}).get("RequestId")
        return f"{text} (request id {request_id})" if request_id else text
    return f"{type(error).__name__}: {error}"


TABLE = ErrorTable(
    backend="fargate",
    # botocore's classes, read at the first failure: not imported with the package.
    catch=lambda: (botocore_exceptions.ClientError, botocore_exceptions.BotoCoreError),
    transient=is_transient,
    describe=describe,
)
