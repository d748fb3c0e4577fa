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

logger = logging.getLogger(__name__)

EPOCH_METRICS = ("loss", "accuracy", "val_loss", "val_accuracy")


def progress_display(progress: bool) -> tuple[int, list[keras.callbacks.Callback]]:
    """Keras' `verbose` and the callbacks that show progress: the bar (verbose 1) when stdout and stderr are ttys,
    else verbose 0 and an EpochLog; nothing with progress False."""
    if not progress:
        return 0, []
    if all(stream is not None and stream.isatty() for stream in (sys.stdout, sys.stderr)):  # not into results
        return 1, []
    return 0, [EpochLog()]


class EpochLog(keras.callbacks.Callback):
    """Logs one INFO line per epoch: loss, accuracy and their validation values when present, the epoch's
    seconds and the time left if every epoch runs (early stopping may end sooner)."""

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        self.started = time.monotonic()

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self.epoch_started = time.monotonic()

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        now = time.monotonic()
        epochs = self.params.get("epochs") or epoch + 1
        remaining = (now - self.started) / (epoch + 1) * (epochs - epoch - 1)
        logger.info(describe_epoch(epoch, epochs, logs or {}, now - self.epoch_started, remaining))


def describe_epoch(epoch: int, epochs: int, logs: dict[str, Any], seconds: float, remaining_seconds: float) -> str:
    """The line for the 0-based `epoch` of `epochs`: "epoch i/N: loss …, accuracy …, val_loss …, val_accuracy …,
    S s, ETA R s", the metrics absent from `logs` left out."""
    values = [f"{name} {float(logs[name]):.4f}" for name in EPOCH_METRICS if name in logs]
    return f"epoch {epoch + 1}/{epochs}: {', '.join([*values, f'{seconds:.1f} s', f'ETA {remaining_seconds:.0f} s'])}"
