"""Machine-readable progress of a training run: one JSON object per event, for a program that watches the run.

`python -m app train --progress jsonl` writes every event as one line on stdout (the dashboard's Train tab
starts that command in a process of its own and reads them). The events, in the order a run sends them:

- `{"event": "phase", "phase": P, …}`, P one of PHASES: `scanning` (finding the files), `features` (reading
  them; `files`), `loading` (starting TensorFlow), `fitting` (`epochs`: the most that will run), `evaluating`
  (scoring the held-out files), `exporting` (the LiteRT model), `saving` (writing the bundle);
- `{"event": "epoch", "epoch": i, "epochs": N, "loss": …, "accuracy": …, "val_loss": …, "val_accuracy": …,
  "seconds": S, "eta_seconds": R}` after each epoch (i from 1; the validation values only when files are held
  out; R assumes every epoch runs, early stopping may end sooner).

The summary line `train` always prints (`{"bundle": path, …}`, no "event" key) ends a run that succeeded; a
failed run ends without it, its message on stderr as always. Nothing is sent while nobody listens, so the
training code calls `emit` freely.

Example:
    >>> import io
    >>> from app.training.events import emit, jsonl_writer, listening
    >>> stream = io.StringIO()
    >>> with listening(jsonl_writer(stream)):
    ...     emit("phase", phase="fitting", epochs=40)
    >>> emit("phase", phase="saving")  # nobody listens: nothing happens
    >>> stream.getvalue()
    '{"event": "phase", "phase": "fitting", "epochs": 40}\\n'
"""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TextIO

PHASES = ("scanning", "features", "loading", "fitting", "evaluating", "exporting", "saving")
EPOCH_METRICS = ("loss", "accuracy", "val_loss", "val_accuracy")

Listener = Callable[[dict[str, Any]], None]
_listeners: list[Listener] = []
_lock = threading.Lock()


def emit(event: str, **fields: Any) -> None:
    """Send `{"event": event, **fields}` to every listener (none: nothing happens)."""
    with _lock:
        listeners = list(_listeners)
    if not listeners:
        return
    record = {"event": event, **fields}
    for listener in listeners:
        listener(record)


def emit_epoch(epoch: int, epochs: int, logs: dict[str, Any], seconds: float, remaining_seconds: float) -> None:
    """The "epoch" event for the 0-based `epoch` of `epochs`, with the metrics of EPOCH_METRICS found in `logs`
    (Keras' per-epoch values), the epoch's seconds and the seconds left if every epoch runs."""
    metrics = {name: _number(logs[name]) for name in EPOCH_METRICS if name in logs}
    emit(
        "epoch",
        epoch=epoch + 1,
        epochs=epochs,
        **metrics,
        seconds=round(seconds, 3),
        eta_seconds=round(max(0.0, remaining_seconds), 1),
    )


def has_listeners() -> bool:
    """True while some listener receives the events."""
    with _lock:
        return bool(_listeners)


@contextmanager
def listening(listener: Listener) -> Iterator[None]:
    """Deliver every event to `listener` inside the block."""
    with _lock:
        _listeners.append(listener)
    try:
        yield
    finally:
        with _lock:
            _listeners.remove(listener)


def jsonl_writer(stream: TextIO) -> Listener:
    """A listener that writes each event as one JSON line to `stream` and flushes it at once, so that a reader
    on the other end of a pipe sees every epoch as it ends."""

    def write(record: dict[str, Any]) -> None:
        stream.write(json.dumps(record, default=str) + "\n")
        stream.flush()

    return write


def parse_event(line: str) -> dict[str, Any] | None:
    """The event of one line of `--progress jsonl` output, or None for anything else (a blank line, text a
    library printed).

    Example:
        >>> parse_event('{"event": "epoch", "epoch": 2, "epochs": 5, "loss": 0.5}')["loss"]
        0.5
        >>> parse_event("Epoch 1/5"), parse_event("[1, 2]")
        (None, None)
    """
    try:
        record = json.loads(line)
    except ValueError:
        return None
    return record if isinstance(record, dict) and isinstance(record.get("event"), str) else None


def _number(value: Any) -> float | None:
    """A metric rounded to 5 decimals; None when it is not finite (JSON has no NaN)."""
    number = float(value)
    return round(number, 5) if math.isfinite(number) else None
