"""One training loop for every placement (app.training.distribute): one process, every local GPU, or several
machines. Keras' `fit` fails under MultiWorkerMirroredStrategy (keras-team/keras#20585); this loop is the
custom step that works, and it keeps what `fit` did here with SwapEMAWeights, ModelCheckpoint and EarlyStopping.

Each epoch, the worker's batches (app.training.batches, on its shard of the training examples) go through
`tf.data.Dataset.from_generator` (prefetched on another thread) to `strategy.distribute_datasets_from_function`.
A `tf.function` runs one step on every replica (`strategy.run`): the label-smoothed cross-entropy averaged over
the global batch (`tf.nn.compute_average_loss`), its gradients, summed over the replicas by the optimizer, and
AdamW's update (with its moving average of the weights under weight averaging). After the epoch, validation
runs on the averaged weights when there are any (as SwapEMAWeights did), keeps a copy of the best epoch's
weights and stops after `patience` epochs without a better validation (a higher accuracy, or the same accuracy
with a lower loss); the model ends with the best
epoch's weights (without validation data: the last weights, or their average). A checkpoint then records the
epoch (app.training.loop_state), so that a killed run can continue. Layers taken from another bundle
(app.training.init_from) stay fixed for the recipe's first `frozen_epochs`: a second step function updates only
the other variables (the optimizer, built on all of them, leaves the rest as they are, weight decay included).
Progress goes through Keras' callbacks (app.training.progress): the bar on a terminal, a log line per epoch
otherwise. Imports TensorFlow.
"""

from __future__ import annotations

import collections
import contextlib
import logging
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from app.config import TrainConfig
from app.model import as_model_input
from app.training.checkpoints import CheckpointFolder
from app.training.distribute import Distribution
from app.training.loop_state import EpochCheckpoints, LoopState
from app.training.progress import progress_display

logger = logging.getLogger(__name__)


class TrainingLoop:
    """Trains a model built (with its optimizer) under the distribution's strategy; see the module docstring."""

    def __init__(
        self,
        model: keras.Model,
        optimizer: keras.optimizers.Optimizer,
        loss: keras.losses.Loss,
        distribution: Distribution,
        batches: Any,
        steps_per_epoch: int,
        validation: tuple[Any, np.ndarray] | None,
        train_config: TrainConfig,
        frozen: Sequence[Any] = (),
    ) -> None:
        """
        Args:
            model, optimizer: built under distribution.current_strategy().scope(), the optimizer built on the
                model's trainable variables.
            loss: a Keras loss with reduction None: (batch,) losses from (batch, n_classes) targets and
                probabilities.
            batches: this worker's batches: len(), [index] → ((batch, …) float32 inputs, (batch, n_classes)
                float32 targets), on_epoch_end(), and their generator `rng` (numpy), whose state a checkpoint keeps.
            steps_per_epoch: steps every worker takes per epoch; each takes one batch per local replica.
            validation: this worker's validation (features, labels), or None to train every epoch and keep the
                last weights.
            frozen: variables of the model that stay as they are for train_config.frozen_epochs epochs (the layers
                taken from another bundle); () trains every variable from the first epoch.
        """
        self.model, self.optimizer, self.loss, self.distribution = model, optimizer, loss, distribution
        self.batches, self.steps_per_epoch, self.validation = batches, steps_per_epoch, validation
        self.train_config = train_config
        self.strategy = distribution.current_strategy()
        self.input_shape = tuple(model.input_shape[1:])
        self.n_classes = int(model.output_shape[-1])
        # the best epoch's weights (validation chooses it), beside the model: plain variables, not mirrored
        keep_best = validation is not None
        self.best_weights = [tf.Variable(weight.numpy(), trainable=False) for weight in model.weights if keep_best]
        self.dataset = self.strategy.distribute_datasets_from_function(self._input_pipeline)
        frozen_ids = {id(variable) for variable in frozen}
        self.train_step = self._make_train_step(model.trainable_variables)
        self.frozen_epochs = train_config.frozen_epochs if frozen_ids else 0
        self.head_step = self._make_train_step([v for v in model.trainable_variables if id(v) not in frozen_ids])
        self.evaluate_batch = self._make_evaluate_batch()

    def run(
        self,
        progress: bool,
        checkpoints: CheckpointFolder | None = None,
        callbacks: Sequence[keras.callbacks.Callback] = (),
    ) -> dict[str, list[float]]:
        """Train from the last checkpoint, if any, to the last epoch or early stopping; returns the history
        {"loss", "accuracy" (, "val_loss", "val_accuracy"): one value per epoch}.

        Args:
            progress: show it as app.training.progress does.
            checkpoints: the run's checkpoint folder: a checkpoint after each epoch, and with its `resume` the run
                continues after the last one. None: no checkpoints.
            callbacks: more Keras callbacks (e.g. a benchmark's timer) to call at each epoch.
        """
        saver = None
        if checkpoints is not None:
            saver = EpochCheckpoints(
                checkpoints, self.distribution, self.model.variables, self.optimizer, self.best_weights,
                self.train_config.epochs,
            )  # fmt: skip
        with self.distribution.lost_workers_explained():
            return self._run(progress, saver, callbacks)

    def _run(
        self,
        progress: bool,
        checkpoints: EpochCheckpoints | None,
        callbacks: Sequence[keras.callbacks.Callback],
    ) -> dict[str, list[float]]:
        epochs = self.train_config.epochs
        state = self._restored_state(checkpoints)
        verbose, progress_callbacks = progress_display(progress)
        epoch_callbacks = keras.callbacks.CallbackList(
            [*progress_callbacks, *callbacks], add_progbar=verbose == 1, model=self.model,
            verbose=verbose, epochs=epochs, steps=self.steps_per_epoch, initial_epoch=state.epochs_done,
        )  # fmt: skip
        epoch_callbacks.on_train_begin()
        while state.epochs_done < epochs and not state.stopped:
            epoch = state.epochs_done
            epoch_callbacks.on_epoch_begin(epoch)
            train_step = self.head_step if epoch < self.frozen_epochs else self.train_step
            logs = self._train_epoch(train_step, epoch_callbacks if epoch_callbacks.callbacks else None)
            if self.validation is not None:
                logs.update(self._validate(state, epoch))
            state.record(logs)
            state.data_order = self.batches.rng.bit_generator.state
            self.batches.on_epoch_end()
            state.epochs_done = epoch + 1
            if checkpoints:
                checkpoints.save(state)
            epoch_callbacks.on_epoch_end(epoch, logs)
        epoch_callbacks.on_train_end()
        self._keep_final_weights()
        return state.history

    def _restored_state(self, checkpoints: EpochCheckpoints | None) -> LoopState:
        """The state of the last checkpoint, the batches set to continue after it; else a fresh state."""
        state = checkpoints.restore() if checkpoints is not None else None
        if checkpoints is None or state is None:
            return LoopState()
        self._continue_data_order(state)
        logger.info(
            "resumed at epoch %d of %d from the checkpoint in %s",
            state.epochs_done + 1,
            self.train_config.epochs,
            checkpoints.place.folder,
        )
        return state

    def _train_epoch(self, train_step: Any, batch_callbacks: keras.callbacks.CallbackList | None) -> dict[str, float]:
        """One pass of `train_step` (a step function of _make_train_step): {"loss", "accuracy"} over the examples
        of every worker; batch_callbacks (the bar, the log lines of a long epoch) get this worker's running values
        after each step."""
        iterator = iter(self.dataset)
        totals = tf.zeros(3, tf.float64)  # summed loss, correct predictions, examples
        for step in range(self.steps_per_epoch):
            totals += train_step(iterator)
            if batch_callbacks is not None:
                batch_callbacks.on_train_batch_end(step, _metrics(totals.numpy()))
        return _metrics(self.distribution.sum_over_workers(totals.numpy()))

    def _validate(self, state: LoopState, epoch: int) -> dict[str, float]:
        """{"val_loss", "val_accuracy"} on the averaged weights (with weight averaging); keeps the best epoch's
        weights and counts the epochs without gain in `state`."""
        with self._averaged_weights():
            logs = {f"val_{name}": value for name, value in _metrics(self._validation_sums()).items()}
            accuracy, loss = logs["val_accuracy"], logs["val_loss"]
            state.epochs_without_gain += 1
            if _better(accuracy, loss, state.best_accuracy, state.best_loss):
                state.best_accuracy, state.best_loss, state.best_epoch = accuracy, loss, epoch
                state.epochs_without_gain = 0
                for best, weight in zip(self.best_weights, self.model.weights, strict=True):
                    best.assign(weight.value)
            elif state.epochs_without_gain >= self.train_config.patience and epoch > 0:
                state.stopped = True
        return logs

    def _validation_sums(self) -> np.ndarray:
        """(summed loss, correct predictions, examples) of the validation data of every worker."""
        if self.validation is None:
            return np.zeros(3)
        features, labels = self.validation
        size = self.train_config.batch_size
        totals = tf.zeros(3, tf.float64)
        for start in range(0, len(labels), size):
            inputs = as_model_input(np.asarray(features[start : start + size])).astype(np.float32, copy=False)
            targets = np.eye(self.n_classes, dtype=np.float32)[labels[start : start + size]]
            totals += self.evaluate_batch(inputs, targets)
        return self.distribution.sum_over_workers(totals.numpy())

    @contextlib.contextmanager
    def _averaged_weights(self) -> Iterator[None]:
        """Inside the block the model holds the moving average of its weights (with weight averaging; else as
        it is); the trained weights come back after."""
        if not self.train_config.weight_averaging:
            yield
            return
        trained = [variable.numpy() for variable in self.model.trainable_variables]
        self.optimizer.finalize_variable_values(self.model.trainable_variables)
        try:
            yield
        finally:
            for variable, value in zip(self.model.trainable_variables, trained, strict=True):
                variable.assign(value)

    def _keep_final_weights(self) -> None:
        """The best epoch's weights with validation; else the last ones, or their moving average."""
        if self.validation is not None:
            for weight, best in zip(self.model.weights, self.best_weights, strict=True):
                weight.assign(best)
        elif self.train_config.weight_averaging:
            self.optimizer.finalize_variable_values(self.model.trainable_variables)

    def _continue_data_order(self, state: LoopState) -> None:
        """Make the batches those of the epoch after the checkpointed one: by `set_epoch` where the batches are a
        function of the seed and the epoch, else by putting their generator back where that epoch left it and
        reshuffling as it did."""
        if hasattr(self.batches, "set_epoch"):
            self.batches.set_epoch(state.epochs_done)
        elif state.data_order is not None:
            self.batches.rng.bit_generator.state = state.data_order
            self.batches.on_epoch_end()

    def _input_pipeline(self, input_context: tf.distribute.InputContext) -> tf.data.Dataset:
        """This worker's batches for one epoch: steps_per_epoch × local replicas of them, prefetched."""
        batches_per_epoch = self.steps_per_epoch * self.distribution.local_replicas

        def epoch_batches() -> Iterator[tuple[np.ndarray, np.ndarray]]:
            for inputs, targets in _in_order(self.batches, batches_per_epoch):
                yield as_model_input(inputs), targets

        signature = (
            tf.TensorSpec((None, *self.input_shape), tf.float32),
            tf.TensorSpec((None, self.n_classes), tf.float32),
        )
        return tf.data.Dataset.from_generator(epoch_batches, output_signature=signature).prefetch(tf.data.AUTOTUNE)

    def _make_train_step(self, variables: Sequence[Any]) -> Any:
        """A tf.function running one step on every replica that updates `variables` (the model's trainable ones,
        or some of them)."""
        model, optimizer, loss, strategy = self.model, self.optimizer, self.loss, self.strategy
        variables = list(variables)

        def replica_step(inputs: tf.Tensor, targets: tf.Tensor) -> tf.Tensor:
            with tf.GradientTape() as tape:
                probabilities = model(inputs, training=True)
                losses = loss(targets, probabilities)
                global_batch_size = tf.shape(targets)[0] * strategy.num_replicas_in_sync
                mean_loss = tf.nn.compute_average_loss(losses, global_batch_size=global_batch_size)
            gradients = tape.gradient(mean_loss, variables)
            optimizer.apply_gradients(zip(gradients, variables, strict=True))
            return _sums(targets, probabilities, losses)

        @tf.function
        def train_step(iterator: Any) -> tf.Tensor:
            per_replica = strategy.run(replica_step, args=next(iterator))
            return tf.add_n(strategy.experimental_local_results(per_replica))

        return train_step

    def _make_evaluate_batch(self) -> Any:
        model, loss = self.model, self.loss

        @tf.function(
            input_signature=[
                tf.TensorSpec((None, *self.input_shape), tf.float32),
                tf.TensorSpec((None, self.n_classes), tf.float32),
            ]
        )
        def evaluate_batch(inputs: tf.Tensor, targets: tf.Tensor) -> tf.Tensor:
            probabilities = model(inputs, training=False)
            return _sums(targets, probabilities, loss(targets, probabilities))

        return evaluate_batch


def _in_order(batches: Any, count: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """batches[0], …, batches[count - 1]: made one after the other, or, when the batches declare `workers` > 1
    (a keras.utils.PyDataset whose batches do not depend on the order they are made in), that many at a time on
    threads, at most two per thread ahead of the one consumed."""
    workers = int(getattr(batches, "workers", 1) or 1)
    if workers <= 1:
        yield from (batches[index] for index in range(count))
        return
    with ThreadPoolExecutor(workers) as pool:
        pending: collections.deque[Future] = collections.deque()
        for index in range(count):
            pending.append(pool.submit(batches.__getitem__, index))
            if len(pending) > 2 * workers:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


def _sums(targets: tf.Tensor, probabilities: tf.Tensor, losses: tf.Tensor) -> tf.Tensor:
    """(3,) float64: summed loss, correct predictions (the target's largest class is the predicted one, as
    Keras' accuracy counts it), examples."""
    correct = tf.equal(tf.argmax(targets, axis=-1), tf.argmax(probabilities, axis=-1))
    examples = tf.cast(tf.shape(targets)[0], tf.float32)
    return tf.cast(tf.stack([tf.reduce_sum(losses), tf.reduce_sum(tf.cast(correct, tf.float32)), examples]), tf.float64)


def _metrics(sums: np.ndarray) -> dict[str, float]:
    """{"loss": mean loss, "accuracy": share correct} from (summed loss, correct, examples)."""
    loss_sum, correct, count = (float(value) for value in sums)
    count = max(count, 1.0)
    return {"loss": loss_sum / count, "accuracy": correct / count}


def _better(accuracy: float, loss: float, best_accuracy: float | None, best_loss: float | None) -> bool:
    """Whether an epoch's validation beats the best so far: a higher accuracy, or the same accuracy with a lower
    loss (a small validation set is often right on every example from the first epochs on, and accuracy alone
    would then keep the first, least trained, weights).

    Example:
        >>> _better(1.0, 0.2, 1.0, 0.6), _better(1.0, 0.7, 1.0, 0.6), _better(0.9, 0.1, 1.0, 0.6)
        (True, False, False)
    """
    if best_accuracy is None or best_loss is None:
        return True
    return accuracy > best_accuracy or (accuracy == best_accuracy and loss < best_loss)
