"""What the training loop carries from epoch to epoch, and its checkpoint at the end of each epoch.

`LoopState` is the loop's bookkeeping: epochs done, the history, the best validation epoch and the epochs since,
whether early stopping ended the run, and the data order's generator state. `EpochCheckpoints` writes it, with
the model's variables, the optimizer's (moments, step count, moving average of the weights) and the best epoch's
weights, through `tf.train.CheckpointManager` into the run's checkpoint folder (app.training.checkpoints): one
checkpoint per epoch, the last two kept. A checkpoint counts once TensorFlow's `checkpoint` index names it, and
that index is replaced in one step, so a process killed while writing leaves the one before. Imports
TensorFlow, so only the fitting step imports this module.

Example:
    >>> from app.training.loop_state import LoopState
    >>> state = LoopState(epochs_done=2, history={"loss": [0.9, 0.5]}, best_accuracy=0.75, best_epoch=1)
    >>> LoopState.from_json(state.to_json()) == state
    True
"""

from __future__ import annotations

import dataclasses
import json
import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import tensorflow as tf

from app.training.checkpoints import CheckpointFolder
from app.training.distribute import Distribution

logger = logging.getLogger(__name__)

CHECKPOINTS_KEPT = 2  # the last two epochs: workers killed while writing can agree on the one before


@dataclass
class LoopState:
    """The training loop's bookkeeping, as JSON in each checkpoint."""

    epochs_done: int = 0
    history: dict[str, list[float]] = field(default_factory=dict)  # loss, accuracy (val_loss, val_accuracy)
    best_accuracy: float | None = None  # the best validation accuracy so far
    best_loss: float | None = None  # the validation loss of that epoch (breaks ties of accuracy)
    best_epoch: int | None = None  # its 0-based epoch
    epochs_without_gain: int = 0  # since best_epoch (early stopping's count)
    stopped: bool = False  # early stopping ended the run
    # numpy bit generator state of the batches, taken before the reshuffle that ended the last epoch
    data_order: dict[str, Any] | None = None

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self))

    @classmethod
    def from_json(cls, text: str) -> LoopState:
        return cls(**json.loads(text))

    def record(self, logs: dict[str, float]) -> None:
        """Append one epoch's metrics to the history."""
        for name, value in logs.items():
            self.history.setdefault(name, []).append(float(value))


class EpochCheckpoints:
    """Save and restore the loop's state with the variables it changes (see the module docstring)."""

    def __init__(
        self,
        place: CheckpointFolder,
        distribution: Distribution,
        model_variables: list[Any],
        optimizer: Any,
        best_weights: list[tf.Variable],
        max_epochs: int,
    ) -> None:
        """model_variables: the model's (weights and dropout seed state); best_weights: the loop's copy of the
        best epoch's weights; max_epochs: the recipe's epochs (no checkpoint number goes beyond)."""
        self.place, self.distribution, self.max_epochs = place, distribution, max_epochs
        self.state_text = tf.Variable("", dtype=tf.string, trainable=False)
        variables = tf.Module()
        variables.model = list(model_variables)
        variables.best = list(best_weights)
        self.checkpoint = tf.train.Checkpoint(variables=variables, optimizer=optimizer, state=self.state_text)
        self.manager = tf.train.CheckpointManager(self.checkpoint, str(place.folder), max_to_keep=CHECKPOINTS_KEPT)

    def restore(self) -> LoopState | None:
        """The state of the latest epoch whose checkpoint every worker has, its variables restored; None when
        there is none (or the run is not resuming), the variables then untouched."""
        available = {_epoch_of(path) for path in self.manager.checkpoints} if self.place.resume else set()
        epoch = self._agreed_epoch(available)
        if epoch == 0:
            if self.place.resume:
                logger.info(
                    "no checkpoint of a completed epoch in %s (on every worker): starting at epoch 1", self.place.folder
                )
            return None
        path = next(path for path in self.manager.checkpoints if _epoch_of(path) == epoch)
        self.checkpoint.restore(path).assert_existing_objects_matched()
        return LoopState.from_json(self.state_text.numpy().decode())

    def save(self, state: LoopState) -> None:
        """Write the checkpoint of the epoch just completed (numbered state.epochs_done)."""
        self.place.mark()
        self.state_text.assign(state.to_json())
        self.manager.save(checkpoint_number=state.epochs_done)

    def _agreed_epoch(self, available: set[int]) -> int:
        """The largest epoch number in `available` on every worker (0: none), agreed through one collective
        when there are several workers (a worker killed while writing may lack the last one)."""
        has = np.zeros(self.max_epochs + 1)
        has[[epoch for epoch in available if 0 < epoch <= self.max_epochs]] = 1
        has[0] = 1
        everywhere = np.flatnonzero(self.distribution.sum_over_workers(has) >= self.distribution.workers - 0.5)
        return int(everywhere.max())


def _epoch_of(path: str) -> int:
    """The epoch number of a checkpoint path `…/ckpt-N`."""
    return int(str(path).rsplit("-", 1)[-1])
