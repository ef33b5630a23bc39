"""The progress display of ``jobrelay batch``.

On a terminal: one line (total, done, running, queued, failed, elapsed, ETA, spend),
redrawn in place with a carriage return and clear-to-end-of-line, cut to the terminal's width
so it never wraps; any other message first clears it, then it is drawn again below.
Elsewhere (a pipe, a file, CI logs): a line per finished job, nothing redrawn.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from decimal import Decimal
from typing import IO, Any

from jobrelay._models import Cost, JobResult, JobState

__all__ = ["ProgressDisplay", "clock_text", "cost_text"]

CLEAR = "\r\x1b[K"
_TICK = 1.0


def clock_text(seconds: float) -> str:
    """``75`` -> ``1:15``; ``3725`` -> ``1:02:05``."""
    whole = max(int(seconds + 0.5), 0)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def cost_text(costs: list[Cost]) -> str:
    """Sum costs per currency (never across currencies): ``0.0123 USD``."""
    totals: dict[str, Decimal] = {}
    for cost in costs:
        totals[cost.currency] = totals.get(cost.currency, Decimal(0)) + cost.amount
    return " + ".join(f"{amount:.4f} {currency}" for currency, amount in sorted(totals.items()))


class ProgressDisplay:
    """Shows a batch's progress on ``stream``; thread-safe.

    Args:
        stream: where to draw (stderr).
        total: jobs in the batch.
        live: redraw one line in place (a terminal) rather than a line per job.
        enabled: False draws nothing but messages (``--quiet``).
    """

    def __init__(
        self,
        stream: IO[str],
        total: int,
        *,
        live: bool,
        enabled: bool = True,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._stream = stream
        self._total = total
        self._live = live and enabled
        self._enabled = enabled
        self._clock = clock
        self._start = clock()
        self._lock = threading.Lock()
        self._counts: Any = None
        self._done = 0
        self._on_screen = False
        self._shown = ""
        self._stop = threading.Event()
        self._ticker: threading.Thread | None = None

    @property
    def live(self) -> bool:
        """Whether the display redraws a line in place."""
        return self._live

    def elapsed(self) -> float:
        """Seconds since the display was made."""
        return self._clock() - self._start

    def start(self) -> None:
        """Draw the line, and redraw it every second (elapsed and ETA move)."""
        if not self._live:
            return
        self._draw()
        self._ticker = threading.Thread(target=self._tick, name="jobrelay-progress", daemon=True)
        self._ticker.start()

    def _tick(self) -> None:
        while not self._stop.wait(_TICK):
            self._draw()

    def update(self, progress: Any) -> None:
        """Take the Runner's latest :class:`~jobrelay.Progress` counts."""
        with self._lock:
            self._counts = progress
        if self._live:
            self._draw()

    def line(self) -> str:
        """The progress line, without control characters."""
        counts = self._counts
        total = max(getattr(counts, "total", 0) or 0, self._total)
        finished = max(counts.finished if counts is not None else 0, self._done)
        running = counts.running if counts is not None else 0
        # Jobs not submitted yet count as queued: the Runner only counts what it holds.
        queued = max(total - finished - running, 0)
        succeeded = counts.succeeded if counts is not None else 0
        failed = max(finished - succeeded, 0)
        elapsed = self._clock() - self._start
        eta = "-"
        if finished and finished < total:
            eta = clock_text(elapsed / finished * (total - finished))
        elif finished >= total:
            eta = "0:00"
        text = (
            f"{total} jobs: {finished} done, {running} running, {queued} queued, "
            f"{failed} failed | elapsed {clock_text(elapsed)}, ETA {eta}"
        )
        spent = getattr(counts, "spent", None)
        if isinstance(spent, Cost):
            text += f" | spent {cost_text([spent])}"
        return text

    def _width(self) -> int:
        try:
            return max(os.get_terminal_size(self._stream.fileno()).columns - 1, 20)
        except (OSError, ValueError, AttributeError):
            return 119

    def _draw(self) -> None:
        with self._lock:
            text = self.line()[: self._width()]
            if self._stop.is_set() or (self._on_screen and text == self._shown):
                return
            self._stream.write(CLEAR + text)
            self._stream.flush()
            self._on_screen = True
            self._shown = text

    def message(self, text: str) -> None:
        """Write a whole line (an error, a notice) above the progress line."""
        with self._lock:
            prefix = CLEAR if self._on_screen else ""
            self._on_screen = False
            self._stream.write(prefix + text.rstrip("\n") + "\n")
            self._stream.flush()
        if self._live:
            self._draw()

    def finished(self, result: JobResult, summary: str) -> None:
        """A job ended: outside a terminal, one line for it."""
        with self._lock:
            self._done += 1
            done = self._done
        if self._enabled and not self._live:
            self.message(f"[{done}/{self._total}] {summary}")
        elif self._live and result.state is not JobState.SUCCEEDED:
            self.message(summary)
        elif self._live:
            self._draw()

    def close(self) -> None:
        """Stop redrawing; leave the final line on screen, ended by a newline."""
        with self._lock:
            self._stop.set()
        if self._ticker is not None:
            self._ticker.join()
        with self._lock:
            if self._live:
                self._stream.write(CLEAR + self.line()[: self._width()] + "\n")
                self._stream.flush()
            self._on_screen = False
