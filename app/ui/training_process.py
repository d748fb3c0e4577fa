"""A training run in a process of its own: `python -m app train … --progress jsonl`, watched from the dashboard.

The dashboard kernel never imports TensorFlow, and a crash in training cannot take the page down: the run is
the command line's, started in a new process group, its stdout read line by line in a thread (app.training.events
turns each line into an event, the last line is the summary), its stderr written to a log file whose last
`error: …` line says why a failed run failed. Cancel stops the whole group: SIGTERM, then SIGKILL after
STOP_GRACE_SECONDS. A bundle is written to a hidden folder and renamed into place (app.bundle), so a stopped run
leaves no model behind, only that hidden folder at most, which `remove_unfinished` deletes. When the kernel exits,
a run still going is stopped (atexit); if the kernel is killed outright, the run ends at its next line on the
closed pipe, and the workspace cleanup (app.ui.workspace) stops it otherwise.

Example (a run on a class-folder dataset, with callbacks that receive each event and the end):
    >>> run = TrainingRun(train_command(Path("data"), Path("models/mine"), "audio", ["--epochs", "5"]),
    ...                   Path("run.log"), on_event=print, on_end=print)  # doctest: +SKIP
    >>> run.start(); run.cancel()  # doctest: +SKIP
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app import paths
from app.training.events import parse_event

STOP_GRACE_SECONDS = 2.0  # after SIGTERM, before SIGKILL
ERROR_PREFIX = "error: "

log = logging.getLogger(__name__)


@dataclass
class RunEnd:
    """How a run ended: its exit code, the summary line on success, a one-line message otherwise."""

    returncode: int
    summary: dict[str, Any] | None
    message: str
    cancelled: bool
    seconds: float


def train_command(data_dir: Path, out_dir: Path, kind: str, options: list[str]) -> list[str]:
    """The command line of a run: this Python's `-m app train DATA --out OUT --kind KIND --progress jsonl` and
    the recipe's options."""
    return [
        sys.executable, "-m", "app", "train", str(data_dir), "--out", str(out_dir),
        "--kind", kind, "--progress", "jsonl", *options,
    ]  # fmt: skip


def run_environment(cache_dir: Path) -> dict[str, str]:
    """The environment of a run: this one, with the package importable from any folder, the feature cache in the
    visitor's workspace and TensorFlow's start-up lines held back."""
    environment = dict(os.environ)
    python_path = [str(paths.PROJECT_ROOT), *filter(None, environment.get("PYTHONPATH", "").split(os.pathsep))]
    environment.update(
        PYTHONPATH=os.pathsep.join(python_path),
        ONEPIPE_CACHE_DIR=str(cache_dir),
        PYTHONUNBUFFERED="1",
        TF_CPP_MIN_LOG_LEVEL=environment.get("TF_CPP_MIN_LOG_LEVEL", "2"),
    )
    return environment


class TrainingRun:
    """One run of `command`: start() it, receive its events and its end through the callbacks (called from a
    reader thread), cancel() it at any time.

    Args:
        command: the argument list (see train_command).
        log_path: where its stderr goes.
        on_event: called with each event dict (app.training.events) as its line arrives.
        on_end: called once with the RunEnd.
        environment: its environment (default: run_environment with a cache beside the log).
        cwd: its working folder (default: the log's folder).
    """

    def __init__(
        self,
        command: list[str],
        log_path: Path,
        on_event: Callable[[dict[str, Any]], None],
        on_end: Callable[[RunEnd], None],
        environment: dict[str, str] | None = None,
        cwd: Path | None = None,
    ):
        self.command, self.log_path = command, Path(log_path)
        self.on_event, self.on_end = on_event, on_end
        self.environment = environment or run_environment(self.log_path.parent / "cache")
        self.cwd = cwd or self.log_path.parent
        self.process: subprocess.Popen | None = None
        self.cancelled = False
        self.started = 0.0
        self.reader: threading.Thread | None = None

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self) -> None:
        """Start the process (in a new process group) and the thread that reads it."""
        self.started = time.monotonic()
        with open(self.log_path, "wb") as log_file:
            self.process = subprocess.Popen(
                self.command,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=log_file,
                cwd=self.cwd,
                env=self.environment,
                start_new_session=True,  # its own process group: Cancel stops it and anything it started
            )
        atexit.register(self._stop_at_exit)
        self.reader = threading.Thread(target=self._read, name="onepipe-training-reader", daemon=True)
        self.reader.start()

    def cancel(self) -> None:
        """Stop the run: SIGTERM to its process group, SIGKILL if it still runs STOP_GRACE_SECONDS later. Returns
        once it has ended; on_end then reports it as cancelled."""
        if not self.running:
            return
        self.cancelled = True
        self._signal(signal.SIGTERM)
        assert self.process is not None
        try:
            self.process.wait(timeout=STOP_GRACE_SECONDS)
        except subprocess.TimeoutExpired:
            self._signal(signal.SIGKILL)
            self.process.wait()

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until the run has ended and on_end was called; False if `timeout` seconds passed first."""
        if self.reader is None:
            return True
        self.reader.join(timeout)
        return not self.reader.is_alive()

    def _signal(self, signal_number: int) -> None:
        assert self.process is not None
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal_number)

    def _stop_at_exit(self) -> None:
        if self.running:
            self._signal(signal.SIGKILL)

    def _read(self) -> None:
        assert self.process is not None and self.process.stdout is not None
        summary = None
        for raw in self.process.stdout:
            line = raw.decode("utf-8", errors="replace").strip()
            event = parse_event(line)
            if event is not None:
                self._deliver(event)
            elif line.startswith("{") and '"bundle"' in line:
                summary = _summary(line)
        returncode = self.process.wait()
        atexit.unregister(self._stop_at_exit)
        succeeded = returncode == 0 and summary is not None and not self.cancelled
        end = RunEnd(
            returncode,
            summary if succeeded else None,
            "" if succeeded else self._failure_message(returncode),
            self.cancelled,
            time.monotonic() - self.started,
        )
        try:
            self.on_end(end)
        except Exception:  # a broken callback must not hide the end of the run in the log
            log.exception("the end of a training run could not be shown")

    def _deliver(self, event: dict[str, Any]) -> None:
        try:
            self.on_event(event)
        except Exception:
            log.exception("a training event could not be shown: %r", event)

    def _failure_message(self, returncode: int) -> str:
        """Why the run failed, in one line: its last `error: …` line on stderr, else a general sentence."""
        if self.cancelled:
            return "Training was cancelled; no model was saved."
        try:
            lines = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            lines = []
        errors = [line[len(ERROR_PREFIX) :] for line in lines if line.startswith(ERROR_PREFIX)]
        if errors:
            return errors[-1]
        if returncode < 0:
            return f"Training stopped unexpectedly (signal {-returncode}); perhaps it ran out of memory."
        return f"Training failed unexpectedly (exit code {returncode}); the dashboard still works, try again."


def _summary(line: str) -> dict[str, Any] | None:
    import json

    try:
        value = json.loads(line)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def remove_unfinished(bundle_dir: Path) -> None:
    """Delete the hidden folders a stopped write of `bundle_dir` may have left beside it (`.<name>.…`)."""
    parent = bundle_dir.parent
    if not parent.is_dir():
        return
    for leftover in parent.glob(f".{bundle_dir.name}.*"):
        if leftover.is_dir() and not leftover.is_symlink():
            shutil.rmtree(leftover, ignore_errors=True)
