"""One place that turns a backend's exceptions into jobrelay's errors.

In the style of httpx's ``map_httpcore_exceptions``: a backend supplies only its
table (which exceptions it raises, which of them are passing faults, how to word
them); the translation, the secret masking and the exception chaining live here.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator

import attrs

from jobrelay._scrub import Scrubber
from jobrelay.errors import ExecutorError, LaunchError, TransientExecutorError

__all__ = ["ErrorTable"]


_Caught = tuple[type[BaseException], ...]


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


@attrs.frozen
class ErrorTable:
    """How one backend's exceptions become jobrelay errors.

    Args:
        backend: short word that starts every message (``"cloudrun"``).
        catch: the exception types this backend's client raises; anything else
            passes through untouched (a bug is not a backend failure). Or a callable
            returning them, called only when something is raised: the SDK that
            defines them is then not imported with the backend (see ``lazy_import``).
        transient: ``exc -> bool``, true for passing faults worth retrying
            (throttling, 5xx, connection trouble, timeouts).
        describe: ``exc -> str``, the backend's own words for the failure.

    Example::

        TABLE = ErrorTable(
            backend="cloudrun",
            catch=lambda: (api_exceptions.GoogleAPICallError, requests.RequestException),
            transient=lambda exc: getattr(exc, "code", None) in {429, 503, 504},
        )

        with TABLE.mapped("CreateJob", executor=self.name, job=job, launching=True):
            client.create_job(request)
    """

    backend: str
    catch: _Caught | Callable[[], _Caught]
    transient: Callable[[BaseException], bool]
    describe: Callable[[BaseException], str] = _describe

    def caught(self) -> _Caught:
        """The exception types translated (``catch``, called if it is a callable)."""
        return self.catch if isinstance(self.catch, tuple) else self.catch()

    def translate(
        self,
        exc: BaseException,
        action: str,
        *,
        executor: str,
        job_id: str | None = None,
        launching: bool = False,
        secrets: Iterable[str] = (),
    ) -> ExecutorError:
        """Return the jobrelay error for ``exc`` raised while doing ``action``.

        Transient faults become :class:`TransientExecutorError`; anything else a
        :class:`LaunchError` while launching, else an :class:`ExecutorError`. Every
        form of every value in ``secrets`` is masked in the message.
        """
        message = Scrubber(secrets)(f"{self.backend} {action} failed: {self.describe(exc)}")
        cls: type[ExecutorError]
        if self.transient(exc):
            cls = TransientExecutorError
        elif launching:
            cls = LaunchError
        else:
            cls = ExecutorError
        return cls(message, executor=executor, job_id=job_id)

    @contextlib.contextmanager
    def mapped(
        self,
        action: str,
        *,
        executor: str,
        job_id: str | None = None,
        launching: bool = False,
        secrets: Iterable[str] = (),
    ) -> Iterator[None]:
        """Translate what the block raises (of ``catch``) into a jobrelay error.

        The original exception is chained as ``__cause__`` unless a secret had to be
        masked: then it is dropped, since it still holds the secret.
        """
        secrets = tuple(value for value in secrets if value)
        try:
            yield
        except self.caught() as exc:  # evaluated only when the block raises
            error = self.translate(
                exc,
                action,
                executor=executor,
                job_id=job_id,
                launching=launching,
                secrets=secrets,
            )
            if secrets and Scrubber(secrets)(self.describe(exc)) != self.describe(exc):
                raise error from None
            raise error from exc
