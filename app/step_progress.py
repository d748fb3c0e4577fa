"""Progress of long steps (reading and decoding files, extracting features, making waveform variants,
synthesising data): a tqdm bar on a terminal; otherwise (a log file, a pipe) an INFO log line each time
another tenth is done or INTERVAL_SECONDS have passed since the last line, whichever comes first, with the rate
and the time left, and no carriage returns or escape codes. A step shorter than QUIET_SECONDS shows nothing
either way.

Example:
    >>> from app.step_progress import describe_progress, step_progress
    >>> describe_progress("variants", "clip", done=300, total=1200, seconds=10.0)
    'variants: 25 % (300 of 1,200 clips), 30.0 clips/s, ETA 30 s'
    >>> with step_progress(1200, "variants", "clip", enabled=False) as bar:  # --quiet: nothing shown
    ...     bar.update(1200)
"""

from __future__ import annotations

import contextlib
import logging
import sys
import time

from tqdm.auto import tqdm

logger = logging.getLogger(__name__)

INTERVAL_SECONDS = 20.0  # longest wait between two log lines of a running step
QUIET_SECONDS = 2.0  # a step that ends sooner shows no progress


def step_progress(total: int, description: str, unit: str, enabled: bool = True):
    """A context manager with `update(count)`: a tqdm bar over `total` units on a terminal (stderr), log lines
    otherwise (LoggedProgress), nothing when not enabled."""
    if enabled and not (sys.stderr is not None and sys.stderr.isatty()):
        return LoggedProgress(total, description, unit)
    return tqdm(total=total, desc=description, unit=unit, disable=not enabled, delay=QUIET_SECONDS)


class LoggedProgress(contextlib.AbstractContextManager):
    """A stand-in for a tqdm bar that logs a line (describe_progress) when another tenth of `total` is done or
    INTERVAL_SECONDS have passed since the last line, once the step has run QUIET_SECONDS."""

    def __init__(self, total: int, description: str, unit: str) -> None:
        self.total, self.description, self.unit = total, description, unit
        self.done, self.tenths = 0, 0
        self.started = self.last_line = time.monotonic()

    def update(self, count: int = 1) -> None:
        """Count `count` more units done; log a line if one is due."""
        self.done += count
        now = time.monotonic()
        tenths = self.done * 10 // max(1, self.total)
        due = tenths > self.tenths or now - self.last_line >= INTERVAL_SECONDS
        self.tenths = max(self.tenths, tenths)
        if due and now - self.started >= QUIET_SECONDS:
            self.last_line = now
            logger.info(describe_progress(self.description, self.unit, self.done, self.total, now - self.started))

    def __exit__(self, *exception: object) -> None:
        return None


def describe_progress(description: str, unit: str, done: int, total: int, seconds: float) -> str:
    """ "description: P % (done of total units), R units/s, ETA S s" for `done` of `total` units in `seconds`."""
    rate = done / seconds if seconds > 0 else 0.0
    remaining = (total - done) / rate if rate > 0 else float("nan")
    percent = 100 * done // max(1, total)
    eta = f"ETA {remaining:.0f} s" if remaining == remaining else "ETA unknown"
    return f"{description}: {percent} % ({done:,} of {total:,} {unit}s), {rate:,.1f} {unit}s/s, {eta}"
