"""Which batch augmentations a recipe applies, in which order: the one place that knows the recipe's
augmentation options. The batches (app.training.batches) call it and know nothing of what it does.

Spectrograms: frequency warping and time stretching when asked for, then SpecAugment (a time shift and
masks). Images: affine jitter (optionally flips), then random erasing when asked for. Both: mixup when
asked for. Every draw comes from the generator given, in that order, so a run is reproducible.

Example:
    >>> import numpy as np
    >>> from app.config import ImageConfig, TrainConfig
    >>> from app.training.augmentation_policy import augment_batch
    >>> images = np.zeros((4, 16, 16, 1), np.uint8)  # (batch, height, width, channels)
    >>> targets = np.eye(2, dtype=np.float32)[[0, 1, 0, 1]]  # (batch, n_classes) one-hot
    >>> rng = np.random.default_rng(0)
    >>> batch, mixed = augment_batch(rng, images, targets, ImageConfig((16, 16), 1), TrainConfig(mixup=0.2))
    >>> batch.shape, batch.dtype, mixed.sum(axis=1).tolist()
    ((4, 16, 16, 1), dtype('float32'), [1.0, 1.0, 1.0, 1.0])
    >>> plain, same = augment_batch(rng, images, targets, ImageConfig((16, 16), 1), TrainConfig(augment=False))
    >>> bool(np.array_equal(plain, images)), same is targets
    (True, True)
"""

from __future__ import annotations

import numpy as np

from app.config import AudioConfig, ImageConfig, TrainConfig
from app.training.augment import erase_patches, jitter_images, mix_up, spec_augment, stretch_time, warp_frequencies


def augment_batch(
    rng: np.random.Generator,
    batch: np.ndarray,
    targets: np.ndarray,
    preprocessing: AudioConfig | ImageConfig,
    train_config: TrainConfig,
) -> tuple[np.ndarray, np.ndarray]:
    """The training view of one batch: (batch, …) float32 inputs and (batch, n_classes) targets.

    Args:
        rng: the generator every random draw comes from.
        batch: (batch, time, n_mels) spectrograms or (batch, height, width, channels) images, as extracted.
        targets: (batch, n_classes) one-hot float32 targets; mixup blends them with the inputs.
        preprocessing: AudioConfig or ImageConfig, which says the kind of data (and, for audio, the mel bands).
        train_config: the recipe; `augment` False passes the batch through (as float32).
    """
    if train_config.augment:
        if isinstance(preprocessing, AudioConfig):
            batch = _augment_spectrograms(rng, batch, preprocessing, train_config)
        else:
            batch = _augment_images(rng, batch, train_config)
    batch = batch.astype(np.float32, copy=False)
    if train_config.augment and train_config.mixup > 0:
        batch, targets = mix_up(rng, batch, targets, train_config.mixup)
    return batch, targets


def _augment_spectrograms(
    rng: np.random.Generator, batch: np.ndarray, preprocessing: AudioConfig, train_config: TrainConfig
) -> np.ndarray:
    if train_config.frequency_warp > 0:
        batch = warp_frequencies(rng, batch, preprocessing, train_config.frequency_warp)
    if train_config.time_stretch > 0:
        batch = stretch_time(rng, batch, preprocessing.floor_db, train_config.time_stretch)
    return spec_augment(rng, batch, preprocessing.floor_db)


def _augment_images(rng: np.random.Generator, batch: np.ndarray, train_config: TrainConfig) -> np.ndarray:
    batch = jitter_images(
        rng,
        batch,
        horizontal_flip=train_config.horizontal_flip,
        rotation_degrees=train_config.rotation_degrees,
        zoom=train_config.zoom,
        translation=train_config.translation,
    )
    if train_config.random_erasing > 0:
        batch = erase_patches(rng, batch, train_config.random_erasing)
    return batch
