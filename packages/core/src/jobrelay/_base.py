"""An optional base class for executors: the boilerplate, never a requirement."""

from __future__ import annotations

from types import TracebackType
from typing import TypeVar

__all__ = ["Closing", "ExecutorBase"]

_Self = TypeVar("_Self", bound="Closing")


class Closing:
    """``with obj:`` calls ``obj.close()`` at the end (executors, the Router)."""

    def close(self) -> None:
        """Release what the object holds (nothing here)."""

    def __enter__(self: _Self) -> _Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


class ExecutorBase(Closing):
    """Context-manager boilerplate for an executor; subclassing it is optional.

    Like httpx's ``BaseTransport``: the :class:`~jobrelay.Executor` protocol stays the
    contract, this only saves writing ``__enter__``/``__exit__``. Override
    :meth:`close` to release clients.

    Example::

        class MyExecutor(ExecutorBase):
            name = "mine"

            def close(self) -> None:
                self._client.close()
    """

    def close(self) -> None:
        """Release clients and connections (nothing to release here)."""
