"""Training batches for Keras or a custom loop: shuffled every epoch, augmented as the recipe says
(augmentation_policy), with one-hot targets, or targets mixed with a teacher's answers (app.training.distill).
Imports Keras (a batch source is a `keras.utils.PyDataset`), so only the fitting step imports this module.

The examples may be an array or rows on disk (app.training.store): a batch reads only its own rows. The data
order comes from one generator, `rng` (seeded with `seed + 2`), which draws each epoch's permutation and a key
for the epoch's augmentations; batch i of an epoch augments with `default_rng([seed, AUGMENT_STREAM, key, i])`.
So a batch is a function of the epoch and its index alone: a run is reproducible, batches can be made in any
order or on several threads, and a run that restores `rng`'s state (or calls `set_epoch`) sees the batches it
would have seen.

Example:
    >>> import numpy as np
    >>> from app.config import AudioConfig, TrainConfig
    >>> from app.training.batches import Batches
    >>> spectrograms = np.zeros((10, 97, 40), np.float32)  # (n, time, n_mels)
    >>> batches = Batches(spectrograms, np.arange(10) % 3, 3, TrainConfig(batch_size=4), AudioConfig())
    >>> len(batches), [batch.shape for batch in batches[2]]  # 4 + 4 + 2 examples
    (3, [(2, 97, 40), (2, 3)])
    >>> first = batches[0][0]
    >>> batches.on_epoch_end()  # epoch 1: another order, other augmentations
    >>> batches.epoch, batches.set_epoch(0), bool(np.array_equal(batches[0][0], first))
    (1, None, True)
"""

from __future__ import annotations

import keras
import numpy as np

from app.config import AudioConfig, ImageConfig, TrainConfig
from app.training.augmentation_policy import augment_batch
from app.training.store import ExampleRows

AUGMENT_STREAM = 3  # the augmentation generators' second seed word


class Batches(keras.utils.PyDataset):
    """(inputs, targets) batches of `train_config.batch_size` examples: (batch, …) float32 inputs and
    (batch, n_classes) float32 targets, in a new random order each epoch.

    The interface a training loop uses: `len(batches)` batches per epoch; `batches[index]` for 0 ≤ index <
    len(batches), a pure function of the epoch and the index; `on_epoch_end()` moves to the next epoch (drawing
    its order from `rng`); `set_epoch(epoch)` jumps to any epoch (0-based); `epoch` counts the epochs.
    """

    def __init__(
        self,
        features: np.ndarray | ExampleRows,
        labels: np.ndarray,
        n_classes: int,
        train_config: TrainConfig,
        preprocessing: AudioConfig | ImageConfig,
        teacher_targets: np.ndarray | None = None,
    ) -> None:
        """features: (n, …) as extracted, in memory or on disk; labels: (n,) class indices below n_classes;
        teacher_targets: None, or (n, n_classes) probabilities that make up train_config.distill_weight of each
        target."""
        super().__init__()
        self.features, self.labels, self.n_classes = features, np.asarray(labels), n_classes
        self.teacher_targets = teacher_targets
        self.train_config, self.preprocessing = train_config, preprocessing
        self.set_epoch(0)

    def set_epoch(self, epoch: int) -> None:
        """Make the batches those of `epoch` (0-based), as on_epoch_end() `epoch` times from the start makes them."""
        self.rng = np.random.default_rng(self.train_config.seed + 2)
        self.epoch = -1
        for _ in range(epoch + 1):
            self.on_epoch_end()

    def __len__(self) -> int:
        return int(np.ceil(len(self.labels) / self.train_config.batch_size))

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        if not 0 <= index < len(self):
            raise IndexError(f"batch {index} of {len(self)}")
        size = self.train_config.batch_size
        rows = self.order[index * size : (index + 1) * size]
        targets = np.eye(self.n_classes, dtype=np.float32)[self.labels[rows]]
        if self.teacher_targets is not None:
            weight = self.train_config.distill_weight
            targets = (1 - weight) * targets + weight * self.teacher_targets[rows]
        rng = np.random.default_rng([self.train_config.seed, AUGMENT_STREAM, self.epoch_key, index])
        return augment_batch(rng, self.features[rows], targets, self.preprocessing, self.train_config)

    def on_epoch_end(self) -> None:
        """Move to the next epoch: its order and the key of its augmentations, both drawn from `rng`."""
        self.order = self.rng.permutation(len(self.labels))
        self.epoch_key = int(self.rng.integers(2**63))
        self.epoch += 1
