"""Training batches for Keras: shuffled every epoch, augmented as the recipe says (augmentation_policy), with
one-hot targets. Imports Keras, so only the fitting step imports this module.

The order and the augmentations draw from one generator seeded with `seed + 2`, so a run is reproducible.

Example:
    >>> import numpy as np
    >>> from app.config import AudioConfig, TrainConfig
    >>> from app.training.batches import Batches
    >>> spectrograms = np.zeros((10, 97, 40), np.float32)  # (n, time, n_mels)
    >>> batches = Batches(spectrograms, np.arange(10) % 3, 3, TrainConfig(batch_size=4), AudioConfig())
    >>> len(batches), [batch.shape for batch in batches[2]]  # 4 + 4 + 2 examples
    (3, [(2, 97, 40), (2, 3)])
"""

from __future__ import annotations

import keras
import numpy as np

from app.config import AudioConfig, ImageConfig, TrainConfig
from app.training.augmentation_policy import augment_batch


class Batches(keras.utils.PyDataset):
    """(inputs, targets) batches of `train_config.batch_size` examples: (batch, …) float32 inputs and
    (batch, n_classes) float32 targets, in a new random order each epoch."""

    def __init__(
        self,
        features: np.ndarray,
        labels: np.ndarray,
        n_classes: int,
        train_config: TrainConfig,
        preprocessing: AudioConfig | ImageConfig,
    ) -> None:
        """features: (n, …) as extracted; labels: (n,) class indices below n_classes."""
        super().__init__()
        self.features, self.labels, self.n_classes = features, labels, n_classes
        self.train_config, self.preprocessing = train_config, preprocessing
        self.rng = np.random.default_rng(train_config.seed + 2)
        self.order = self.rng.permutation(len(features))

    def __len__(self) -> int:
        return int(np.ceil(len(self.features) / self.train_config.batch_size))

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        size = self.train_config.batch_size
        rows = self.order[index * size : (index + 1) * size]
        targets = np.eye(self.n_classes, dtype=np.float32)[self.labels[rows]]
        return augment_batch(self.rng, self.features[rows], targets, self.preprocessing, self.train_config)

    def on_epoch_end(self) -> None:
        self.order = self.rng.permutation(len(self.features))
