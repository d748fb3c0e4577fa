"""Fitting the CNN: seeds, input statistics, the model and its optimizer (AdamW on a cosine schedule) built under
the run's tf.distribute strategy, and the training loop (app.training.loop) with early stopping on the best
validation epoch, resumable from the run's checkpoints; with a source bundle (app.training.init_from), the model
starts from its trained layers, kept fixed for the recipe's first `frozen_epochs`. Imports Keras, so the training
run imports this module only once every check of its input has passed.

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
    >>> fitted.distribution  # one process, TensorFlow's default strategy
    {'strategy': 'none', 'workers': 1, 'replicas': 1}
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import keras
import numpy as np

from app.config import AudioConfig, ImageConfig, TrainConfig
from app.model import as_model_input, build_network
from app.training.batches import Batches
from app.training.checkpoints import CheckpointFolder
from app.training.distill import Teacher, soft_targets
from app.training.distribute import Distribution
from app.training.init_from import TransferSource, transfer_layers
from app.training.inputs import channel_sums
from app.training.loop import TrainingLoop
from app.training.store import ExampleRows
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
    training_examples: int  # examples fitted on per epoch, over every worker
    # Distribution.summary(): {"strategy": "none" | "mirrored" | "multi-worker", "workers": …, "replicas": …}, and
    # on several workers "examples_per_worker": [count, …] in worker order
    distribution: dict[str, Any] = field(default_factory=lambda: Distribution().summary())
    network: str = "article"  # app.model.NETWORKS


def fit_model(
    training_set: TrainingSet,
    validation: tuple[np.ndarray | ExampleRows, np.ndarray] | None,
    n_classes: int,
    preprocessing: AudioConfig | ImageConfig,
    train_config: TrainConfig,
    progress: bool,
    distribution: Distribution | None = None,
    checkpoints: CheckpointFolder | None = None,
    source: TransferSource | None = None,
    teacher: Teacher | None = None,
) -> FittedModel:
    """Train a new CNN on the training set, with the recipe's batch augmentation.

    With validation (features, labels), training stops early and the model ends with the weights of the best
    validation epoch; without (None), it runs every epoch and keeps the last weights (or their moving average
    with weight_averaging). Seeded by train_config.seed: the same inputs give the same weights.

    Args:
        distribution: where it trains (app.training.distribute; default: this process alone). On several workers,
            `training_set` is this worker's own shard (made from its share of the files), and each validates on
            its shard of the validation data; the input statistics come from every worker's shard. The returned
            model is an ordinary one, outside any strategy.
        checkpoints: the run's checkpoint folder: a checkpoint after every epoch, and with `resume` the run
            continues from the last one. None: no checkpoints.
        source: a bundle checked by app.training.init_from.check_source whose layers the model starts from
            (fixed for train_config.frozen_epochs epochs); None: every layer starts at random.
        teacher: a bundle checked by app.training.distill.check_teacher whose answers make up
            train_config.distill_weight of each training target; None: the labels alone.
    """
    distribution = distribution or Distribution()
    features, labels = training_set.features, training_set.labels
    keras.utils.set_random_seed(train_config.seed)
    input_shape = as_model_input(features[:1]).shape[1:]
    examples_per_worker = distribution.counts_over_workers(len(features))
    mean, variance = input_statistics(features, train_config.seed, distribution)
    steps_per_epoch = distribution.steps_per_epoch(min(examples_per_worker), train_config.batch_size)
    with distribution.current_strategy().scope():  # the variables mirrored on every replica
        model = build_network(train_config.network, input_shape, n_classes, mean, variance)
        transferred = transfer_layers(model, source) if source is not None else []
        optimizer = make_optimizer(train_config, steps=steps_per_epoch * train_config.epochs)
        optimizer.build(model.trainable_variables)
    taught = soft_targets(teacher, features, labels, train_config, progress) if teacher is not None else None
    batches = Batches(features, labels, n_classes, worker_recipe(train_config, distribution), preprocessing, taught)
    if validation is not None:
        validation = distribution.shard(validation[0]), distribution.shard(validation[1])
    loop = TrainingLoop(
        model, optimizer, make_loss(train_config, reduction=None), distribution, batches, steps_per_epoch,
        validation, train_config, frozen=[variable for layer in transferred for variable in layer.trainable_variables],
    )  # fmt: skip
    history = loop.run(progress, checkpoints)
    model = ordinary_model(model, distribution)
    summary = distribution.summary()
    if distribution.workers > 1:
        summary["examples_per_worker"] = examples_per_worker
    return FittedModel(
        model, history, input_shape, n_classes, mean, variance, sum(examples_per_worker), summary, train_config.network
    )


def ordinary_model(model: keras.Model, distribution: Distribution) -> keras.Model:
    """The trained model itself in one process; under a strategy, a copy of it outside the strategy (Keras'
    predict, like its fit, does not work under every strategy)."""
    if distribution.strategy is None:
        return model
    copy = keras.models.clone_model(model)
    copy.set_weights(model.get_weights())
    return copy


def worker_recipe(train_config: TrainConfig, distribution: Distribution) -> TrainConfig:
    """The recipe of this worker's batches: a replica's share of the batch size and, on workers other than the
    chief, another seed for their order and augmentation (the chief's is the run's own)."""
    return dataclasses.replace(
        train_config,
        batch_size=distribution.per_replica_batch_size(train_config.batch_size),
        seed=train_config.seed + 1000 * distribution.worker_index,
    )


def input_statistics(
    features: np.ndarray | ExampleRows, seed: int, distribution: Distribution | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and variance, each (channels,), of the model inputs, from up to STATISTICS_SAMPLE
    training examples drawn with the given seed: on several workers, an equal share of them from each worker's
    shard, their sums added over the workers, so that every worker normalises alike."""
    distribution = distribution or Distribution()
    sample = STATISTICS_SAMPLE // distribution.workers
    subset = np.random.default_rng(seed + distribution.worker_index).permutation(len(features))[:sample]
    count, total, squares = channel_sums(features, subset)  # a chunk of rows in memory at a time
    summed = distribution.sum_over_workers(np.concatenate([[count], total, squares]))
    count, (total, squares) = max(summed[0], 1.0), np.split(summed[1:], 2)
    mean = total / count
    variance = np.maximum(squares / count - mean**2, 0.0)
    return mean.astype(np.float32), (variance + 1e-6).astype(np.float32)


def make_optimizer(train_config: TrainConfig, steps: int) -> keras.optimizers.AdamW:
    """AdamW for `steps` optimizer steps (with an EMA of the weights when asked for) on a cosine schedule warming up
    over the first 5 %."""
    schedule = keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=train_config.learning_rate / 10,
        decay_steps=max(1, steps),
        warmup_target=train_config.learning_rate,
        warmup_steps=max(1, steps // 20),
    )
    return keras.optimizers.AdamW(
        learning_rate=schedule,
        weight_decay=train_config.weight_decay,
        use_ema=train_config.weight_averaging,
        ema_momentum=0.995,
    )


def make_loss(train_config: TrainConfig, reduction: str | None = "sum_over_batch_size") -> keras.losses.Loss:
    """Label-smoothed categorical cross-entropy; reduction None gives one loss per example."""
    return keras.losses.CategoricalCrossentropy(label_smoothing=train_config.label_smoothing, reduction=reduction)


def compile_model(model: keras.Model, train_config: TrainConfig, steps: int) -> keras.Model:
    """The model compiled for Keras' `fit` over `steps` optimizer steps (make_optimizer, make_loss, accuracy), as
    the benchmarks compare it with the training loop."""
    model.compile(optimizer=make_optimizer(train_config, steps), loss=make_loss(train_config), metrics=["accuracy"])
    return model
