"""Fitting the CNN: seeds, input statistics, the compiled model (AdamW on a cosine schedule), and `fit` with
early stopping on the best validation epoch. Imports Keras, so the training run imports this module only once
every check of its input has passed.

Example:
    >>> import numpy as np
    >>> from app.config import ImageConfig, TrainConfig
    >>> from app.training.fit import fit_model
    >>> from app.training.training_set import TrainingSet
    >>> images = np.random.default_rng(0).integers(0, 256, (12, 12, 12, 1), dtype=np.uint8)  # (n, h, w, c)
    >>> training_set = TrainingSet(images, np.arange(12) % 2, extra_summary={})
    >>> validation = images[:4], np.arange(4) % 2
    >>> recipe = TrainConfig(epochs=2, batch_size=4)
    >>> fitted = fit_model(training_set, validation, 2, ImageConfig((12, 12), 1), recipe, progress=False)
    >>> fitted.input_shape, sorted(fitted.history), len(fitted.history["loss"])
    ((12, 12, 1), ['accuracy', 'loss', 'val_accuracy', 'val_loss'], 2)
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np

from app.config import AudioConfig, ImageConfig, TrainConfig
from app.model import as_model_input, build_model
from app.training.batches import Batches
from app.training.progress import progress_display
from app.training.training_set import TrainingSet

STATISTICS_SAMPLE = 20000  # training examples the input normalisation's mean and variance come from


@dataclass
class FittedModel:
    """The trained model, its per-epoch history, and what an uncompiled copy of it is built from."""

    model: keras.Model
    history: dict[str, list[float]]  # Keras' history: loss, accuracy (and val_loss, val_accuracy) per epoch
    input_shape: tuple[int, ...]  # (height, width, channels); a spectrogram is (time, n_mels, 1)
    n_classes: int
    mean: np.ndarray  # (channels,) of the training inputs
    variance: np.ndarray  # (channels,)


def fit_model(
    training_set: TrainingSet,
    validation: tuple[np.ndarray, np.ndarray] | None,
    n_classes: int,
    preprocessing: AudioConfig | ImageConfig,
    train_config: TrainConfig,
    progress: bool,
) -> FittedModel:
    """Train a new CNN on the training set, with the recipe's batch augmentation.

    With validation (features, labels), training stops early and the model ends with the weights of the best
    validation epoch; without (None), it runs every epoch and keeps the last weights (or their moving average
    with weight_averaging). Seeded by train_config.seed: the same inputs give the same weights.
    """
    features, labels = training_set.features, training_set.labels
    keras.utils.set_random_seed(train_config.seed)
    input_shape = as_model_input(features[:1]).shape[1:]
    mean, variance = input_statistics(features, train_config.seed)
    model = compile_model(
        build_model(input_shape, n_classes, mean, variance),
        train_config,
        steps=int(np.ceil(len(features) / train_config.batch_size)) * train_config.epochs,
    )
    batches = Batches(features, labels, n_classes, train_config, preprocessing)
    history = fit(model, batches, validation, n_classes, train_config, progress)
    return FittedModel(model, history, input_shape, n_classes, mean, variance)


def input_statistics(features: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and variance, each (channels,), of the model inputs, from up to STATISTICS_SAMPLE
    training examples drawn with the given seed."""
    subset = np.random.default_rng(seed).permutation(len(features))[:STATISTICS_SAMPLE]
    sample = as_model_input(features[np.sort(subset)]).astype(np.float32)
    channel_axes = tuple(range(sample.ndim - 1))
    return sample.mean(axis=channel_axes), sample.var(axis=channel_axes) + 1e-6


def compile_model(model: keras.Model, train_config: TrainConfig, steps: int) -> keras.Model:
    """The model compiled for `steps` optimizer steps: AdamW (with an EMA of the weights when asked for) on a
    cosine schedule warming up over the first 5 %, label-smoothed cross-entropy, accuracy."""
    schedule = keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=train_config.learning_rate / 10,
        decay_steps=max(1, steps),
        warmup_target=train_config.learning_rate,
        warmup_steps=max(1, steps // 20),
    )
    model.compile(
        optimizer=keras.optimizers.AdamW(
            learning_rate=schedule,
            weight_decay=train_config.weight_decay,
            use_ema=train_config.weight_averaging,
            ema_momentum=0.995,
        ),
        loss=keras.losses.CategoricalCrossentropy(label_smoothing=train_config.label_smoothing),
        metrics=["accuracy"],
    )
    return model


def fit(
    model: keras.Model,
    batches: keras.utils.PyDataset,
    validation: tuple[np.ndarray, np.ndarray] | None,
    n_classes: int,
    train_config: TrainConfig,
    progress: bool,
) -> dict[str, list[float]]:
    """Train the compiled model on the batches; returns Keras' per-epoch history.

    With validation data (features, labels), training stops early and the model ends with the weights of
    the best validation epoch; without, it runs every epoch and keeps the last weights (or their moving
    average with --weight-averaging). Progress: see progress_display.
    """
    verbose, progress_callbacks = progress_display(progress)
    if validation is None:
        return model.fit(batches, epochs=train_config.epochs, verbose=verbose, callbacks=progress_callbacks).history
    with tempfile.TemporaryDirectory() as scratch:
        checkpoint = Path(scratch) / "best.weights.h5"
        callbacks = [
            # validate and checkpoint the averaged weights (swapped in at each epoch's end)
            *([keras.callbacks.SwapEMAWeights(swap_on_epoch=True)] if train_config.weight_averaging else []),
            keras.callbacks.ModelCheckpoint(
                checkpoint, monitor="val_accuracy", save_best_only=True, save_weights_only=True
            ),
            keras.callbacks.EarlyStopping(monitor="val_accuracy", patience=train_config.patience),
            *progress_callbacks,
        ]
        history = model.fit(
            batches,
            validation_data=(
                as_model_input(validation[0]).astype(np.float32),
                np.eye(n_classes, dtype=np.float32)[validation[1]],
            ),
            epochs=train_config.epochs,
            verbose=verbose,
            callbacks=callbacks,
        )
        model.load_weights(checkpoint)
    return history.history
