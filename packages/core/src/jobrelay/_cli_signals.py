"""SIGINT and SIGTERM for the command line: cancel, clean up, one line, 130 or 143.

The first signal raises :class:`Interrupted` in the main thread (after writing its one
line straight to the file descriptor, so it never interleaves with a half-written
line); the command then cancels its jobs and waits for their cleanup. Any further
signal during that cleanup is only counted: a second Ctrl-C must not leave a
half-cancelled container behind.
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Callable
from types import FrameType, TracebackType

__all__ = ["Interrupted", "SignalGuard"]

_NAMES: dict[int, str] = {signal.SIGINT: "SIGINT", signal.SIGTERM: "SIGTERM"}


class Interrupted(KeyboardInterrupt):
    """A signal asked the command to stop; ``exit_code`` is 128 + the signal number.

    A ``KeyboardInterrupt``, so a ``Runner`` context manager it passes through cancels
    its jobs too.
    """

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum
        self.exit_code = 128 + signum


class SignalGuard:
    """Context manager installing the handlers; ``message`` says what stopping means."""

    def __init__(self, message: Callable[[str], str] | None = None, *, fd: int = 2) -> None:
        self.message = message or (lambda name: f"jobrelay: {name}: stopping\n")
        self.received: int | None = None
        self.extra = 0
        self._fd = fd
        self._saved: dict[int, object] = {}

    def _handle(self, signum: int, frame: FrameType | None) -> None:  # noqa: ARG002
        if self.received is not None:
            self.extra += 1  # already cleaning up: finish that first
            return
        self.received = signum
        # stderr closed: stopping cleanly matters more than saying so.
        with contextlib.suppress(OSError):
            os.write(self._fd, self.message(_NAMES.get(signum, str(signum))).encode())
        raise Interrupted(signum)

    def __enter__(self) -> SignalGuard:
        for signum in _NAMES:
            self._saved[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        for signum, previous in self._saved.items():
            # After a stop, a late second signal must not kill the process on its way out.
            restored = signal.SIG_IGN if self.received is not None else previous
            signal.signal(signum, restored)  # type: ignore[arg-type]
