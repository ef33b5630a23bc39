"""Helpers for writing an executor: what every backend needs, written once.

None of this is required (an executor is any object with the
:class:`~jobrelay.Executor` methods); each piece removes a copy a backend would
otherwise write:

- :class:`Scrubber` / :func:`scrub`: mask secret values in any text, in the forms a
  backend may echo them in (raw, ``repr``, JSON, Go-quoted, URL-encoded);
- :class:`ErrorTable`: map a backend's exceptions to ``TransientExecutorError`` /
  ``LaunchError`` / ``ExecutorError`` from one table;
- :func:`wait_until_terminal`, :func:`follow_logs`, :func:`paginate`: the loops of
  polling backends; :func:`probe_health`: a health check from one timed call;
- :class:`RateLimiter`: keep pollers inside a per-minute API quota;
- :func:`make_result`, :func:`duration_of`, :func:`utc_from_epoch`: results and times;
- :class:`ExecutorBase`: the context-manager boilerplate;
- :func:`lazy_import`: an SDK imported on first use, not with the executor's module;
- :func:`load_price_document`, :func:`parse_price`, :func:`billed_seconds`: a backend's
  dated price table (package data or ``prices=``), its amounts, billed durations.

The label keys live in :mod:`jobrelay.labels`.
"""

from jobrelay._base import ExecutorBase
from jobrelay._errormap import ErrorTable
from jobrelay._lazy import lazy_import
from jobrelay._polling import (
    RateLimiter,
    duration_of,
    follow_logs,
    make_result,
    paginate,
    probe_health,
    utc_from_epoch,
    wait_until_terminal,
)
from jobrelay._prices import billed_seconds, load_price_document, parse_price
from jobrelay._scrub import MASK, Scrubber, scrub, secret_forms

__all__ = [
    "MASK",
    "ErrorTable",
    "ExecutorBase",
    "RateLimiter",
    "Scrubber",
    "billed_seconds",
    "duration_of",
    "follow_logs",
    "lazy_import",
    "load_price_document",
    "make_result",
    "paginate",
    "parse_price",
    "probe_health",
    "scrub",
    "secret_forms",
    "utc_from_epoch",
    "wait_until_terminal",
]
