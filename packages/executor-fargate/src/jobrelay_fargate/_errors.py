"""Turning botocore failures into jobrelay errors.

Throttling, 5xx answers, connection failures and timeouts become
:class:`~jobrelay.errors.TransientExecutorError` (jobrelay's ``RetryPolicy`` retries
them; botocore's own retries are switched off so the two do not multiply). Everything
else is permanent: :class:`~jobrelay.errors.LaunchError` while launching,
:class:`~jobrelay.errors.ExecutorError` otherwise, carrying AWS's code and message.
"""

from __future__ import annotations

from collections.abc import Iterable

from botocore.exceptions import BotoCoreError, ClientError, HTTPClientError
from botocore.exceptions import ConnectionError as BotoConnectionError

from jobrelay import ExecutorError, LaunchError, TransientExecutorError

__all__ = ["error_code", "is_transient", "translate"]

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

# Connection refused/reset, DNS failures and connect timeouts are ConnectionError;
# read timeouts, closed connections and broken response streams are HTTPClientError.
_TRANSPORT_ERRORS = (BotoConnectionError, HTTPClientError)


def error_code(error: ClientError) -> str:
    """Return the AWS error code of ``error`` (``""`` when the answer had none)."""
    return str(error.response.get("Error", {}).get("Code", ""))


def _status(error: ClientError) -> int:
    return int(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))


def _scrub(text: str, secrets: Iterable[str]) -> str:
    # AWS and botocore echo parameter values in some messages; a secret must not leak.
    for value in sorted((s for s in secrets if s), key=len, reverse=True):
        text = text.replace(value, "***")
    return text


def is_transient(error: BaseException) -> bool:
    """Return whether ``error`` is a passing fault worth retrying."""
    if isinstance(error, ClientError):
        status = _status(error)
        return error_code(error) in TRANSIENT_CODES or status == 429 or status >= 500
    return isinstance(error, _TRANSPORT_ERRORS)


def translate(
    error: ClientError | BotoCoreError,
    *,
    action: str,
    executor: str,
    job_id: str | None = None,
    launch: bool = False,
    secrets: Iterable[str] = (),
) -> ExecutorError:
    """Map a botocore failure during ``action`` to the jobrelay error to raise.

    Args:
        error: what botocore raised.
        action: what was being done, e.g. ``"RunTask"``; starts the message.
        executor: executor name, set on the error.
        job_id: the job concerned, set on the error.
        launch: permanent failures become ``LaunchError`` instead of ``ExecutorError``.
        secrets: values scrubbed from the message.
    """
    if isinstance(error, ClientError):
        detail = error.response.get("Error", {}).get("Message", "") or str(error)
        code = error_code(error) or f"HTTP {_status(error)}"
        message = f"fargate {action} failed: {code}: {detail}"
        request_id = error.response.get("ResponseMetadata", {}).get("RequestId")
        if request_id:
            message += f" (request id {request_id})"
    else:
        message = f"fargate {action} failed: {type(error).__name__}: {error}"
    message = _scrub(message, secrets)
    cls: type[ExecutorError]
    if is_transient(error):
        cls = TransientExecutorError
    elif launch:
        cls = LaunchError
    else:
        cls = ExecutorError
    return cls(message, executor=executor, job_id=job_id)
