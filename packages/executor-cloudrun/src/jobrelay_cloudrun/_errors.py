"""One table from Google client failures to jobrelay errors.

The run_v2 and logging clients retry nothing here (jobrelay's ``RetryPolicy`` does):
429, 500, 502, 503, 504, connection failures and timeouts are
:class:`~jobrelay.errors.TransientExecutorError`; 400, 403, 404 and the rest are
permanent, :class:`~jobrelay.errors.LaunchError` while launching, carrying Google's
message (scrubbed of the job's secrets).
"""

from __future__ import annotations

import re

import requests
from google.api_core.exceptions import GoogleAPICallError, NotFound
from google.auth.exceptions import GoogleAuthError, TransportError

from jobrelay.backend import ErrorTable

__all__ = ["TABLE", "TRANSIENT_CODES", "is_not_found", "is_transient"]

TRANSIENT_CODES = frozenset({408, 429, 500, 502, 503, 504})


def is_transient(exc: BaseException) -> bool:
    """Return whether ``exc`` is a passing fault worth retrying."""
    if isinstance(exc, GoogleAPICallError):
        return exc.code in TRANSIENT_CODES
    return isinstance(exc, (requests.ConnectionError, requests.Timeout, TransportError))


def is_not_found(exc: BaseException) -> bool:
    """Return whether ``exc`` says the resource does not exist."""
    return isinstance(exc, NotFound)


# The REST clients start messages with the request line: "POST http://...: <Google's words>".
_REQUEST_LINE = re.compile(r"^[A-Z]+ https?://\S+: ")


def _describe(exc: BaseException) -> str:
    if isinstance(exc, GoogleAPICallError):
        return f"HTTP {exc.code} {type(exc).__name__}: {_REQUEST_LINE.sub('', str(exc.message))}"
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


TABLE = ErrorTable(
    backend="cloudrun",
    catch=(GoogleAPICallError, requests.RequestException, GoogleAuthError),
    transient=is_transient,
    describe=_describe,
)
