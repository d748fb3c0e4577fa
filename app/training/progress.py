"""Training progress: Keras' progress bar on a terminal, one log line per epoch otherwise (a log file then gets
no carriage returns or escape codes). Imports Keras, so only the fitting step imports this module.

Example:
    >>> from app.training.progress import describe_epoch
    >>> describe_epoch(2, 40, {"loss": 0.3211, "accuracy": 0.9383, "val_loss": 0.2091}, 1.24, 48.4)
    'epoch 3/40: loss 0.3211, accuracy 0.9383, val_loss 0.2091, 1.2 s, ETA 48 s'
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Any

import keras

from app.step_progress import INTERVAL_SECONDS
from app.training import events

logger = logging.getLogger(__name__)

EPOCH_METRICS = ("loss", "accuracy", "val_loss", "val_accuracy")


def progress_display(progress: bool) -> tuple[int, list[keras.callbacks.Callback]]:
    """Keras' `verbose` and the callbacks that show progress: the bar (verbose 1) when stdout and stderr are ttys,
    else verbose 0 and an EpochLog; nothing with progress False. While app.training.events has listeners, always
    an EpochLog, which also sends each epoch as an event."""
    if events.has_listeners():  # a program reads the epochs (train --progress jsonl): lines, never the bar
        return 0, [EpochLog()]
    if not progress:
        return 0, []
    if all(stream is not None and stream.isatty() for stream in (sys.stdout, sys.stderr)):  # not into results
        return 1, []
    return 0, [EpochLog()]


class EpochLog(keras.callbacks.Callback):
    """Logs an INFO line as fitting starts (epochs, batches per epoch), then one per epoch: loss, accuracy and their
    validation values when present, the epoch's seconds and the time left if every epoch runs (early stopping may
    end sooner). Within an epoch that runs long, a line every INTERVAL_SECONDS (when the loop reports its
    batches): the share done, the running loss and accuracy, the time left in the epoch."""

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        self.started = time.monotonic()
        epochs, steps = self.params.get("epochs") or 1, self.params.get("steps") or 0
        logger.info(describe_start(epochs, steps, self.params.get("initial_epoch", 0)))

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self.epoch_started = self.last_line = time.monotonic()
        self.epoch = epoch

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        now = time.monotonic()
        if now - self.last_line >= INTERVAL_SECONDS:
            self.last_line = now
            epochs, steps = self.params.get("epochs") or self.epoch + 1, self.params.get("steps") or batch + 1
            logger.info(describe_batch(self.epoch, epochs, batch + 1, steps, logs or {}, now - self.epoch_started))

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        now = time.monotonic()
        epochs = self.params.get("epochs") or epoch + 1
        run_here = epoch + 1 - self.params.get("initial_epoch", 0)  # a resumed run started at its initial_epoch
        remaining = (now - self.started) / max(1, run_here) * (epochs - epoch - 1)
        logger.info(describe_epoch(epoch, epochs, logs or {}, now - self.epoch_started, remaining))
        events.emit_epoch(epoch, epochs, logs or {}, now - self.epoch_started, remaining)


def describe_start(epochs: int, steps: int, epochs_done: int) -> str:
    """The line as fitting starts, `epochs_done` of `epochs` epochs of `steps` batches done before (a resumed run).

    Example:
        >>> describe_start(40, 17188, 0), describe_start(40, 389, 5)
        ('fitting: 40 epochs of 17,188 batches', 'fitting: 40 epochs of 389 batches, from epoch 6')
    """
    line = f"fitting: {epochs} epochs of {steps:,} batches"
    return f"{line}, from epoch {epochs_done + 1}" if epochs_done else line


def describe_epoch(epoch: int, epochs: int, logs: dict[str, Any], seconds: float, remaining_seconds: float) -> str:
    """The line for the 0-based `epoch` of `epochs`: "epoch i/N: loss …, accuracy …, val_loss …, val_accuracy …,
    S s, ETA R s", the metrics absent from `logs` left out."""
    values = [f"{name} {float(logs[name]):.4f}" for name in EPOCH_METRICS if name in logs]
    return f"epoch {epoch + 1}/{epochs}: {', '.join([*values, f'{seconds:.1f} s', f'ETA {remaining_seconds:.0f} s'])}"


def describe_batch(epoch: int, epochs: int, done: int, steps: int, logs: dict[str, Any], seconds: float) -> str:
    """The line for `done` of `steps` batches of the 0-based `epoch`, `seconds` into it: "epoch i/N: P % (done of
    steps batches), loss …, accuracy …, ETA R s in this epoch".

    Example:
        >>> describe_batch(0, 40, 300, 1200, {"loss": 1.2345, "accuracy": 0.5}, 30.0)
        'epoch 1/40: 25 % (300 of 1,200 batches), loss 1.2345, accuracy 0.5000, ETA 90 s in this epoch'
    """
    values = [f"{name} {float(logs[name]):.4f}" for name in EPOCH_METRICS[:2] if name in logs]
    remaining = seconds / max(1, done) * max(0, steps - done)
    head = f"epoch {epoch + 1}/{epochs}: {100 * done // max(1, steps)} % ({done:,} of {steps:,} batches)"
    return ", ".join([head, *values, f"ETA {remaining:.0f} s in this epoch"])
