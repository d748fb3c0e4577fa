"""Where training runs: one process on its own, every local GPU (tf.distribute.MirroredStrategy), or one process
per machine (tf.distribute.MultiWorkerMirroredStrategy, configured by the standard TF_CONFIG variable).

TensorFlow's engine does the work: variables are mirrored on every replica and gradients summed by its
all-reduce. This module only reads where this process stands (its worker index, 0 being the chief that writes
the bundle), starts the strategy, shares out the training files (each worker reads, varies and trains on its own
share; every worker reads the few held-out files) and sums a few numbers over the workers (the epoch's metrics,
the input statistics). Workers are the cluster's `chief` task, if any, then its `worker` tasks, in TF_CONFIG's
order.

Example:
    >>> from app.training.distribute import cluster_position
    >>> tf_config = '''{"cluster": {"worker": ["10.0.0.1:12345", "10.0.0.2:12345"]},
    ...                 "task": {"type": "worker", "index": 1}}'''
    >>> cluster_position(tf_config)  # (this worker's index, workers)
    (1, 2)
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from app.errors import DatasetError, InputError, OnePipeError

DISTRIBUTE_CHOICES = ("none", "mirrored", "multi-worker")
TF_CONFIG_VARIABLE = "TF_CONFIG"
TF_CONFIG_EXAMPLE = (
    'TF_CONFIG=\'{"cluster": {"worker": ["host1:12345", "host2:12345"]}, "task": {"type": "worker", "index": 0}}\''
)


@dataclass(frozen=True)
class Distribution:
    """How this training process takes part: the kind (one of DISTRIBUTE_CHOICES), its place among the workers
    and the tf.distribute strategy (None for "none": TensorFlow's default strategy, one device)."""

    kind: str = "none"
    worker_index: int = 0  # 0 is the chief: it validates like the others and alone writes the bundle
    workers: int = 1
    strategy: Any = None  # tf.distribute.Strategy, or None

    @property
    def is_chief(self) -> bool:
        return self.worker_index == 0

    def current_strategy(self) -> Any:
        """The strategy to build and train under: this one's, or TensorFlow's default (one device)."""
        if self.strategy is not None:
            return self.strategy
        import tensorflow as tf

        return tf.distribute.get_strategy()

    @property
    def replicas(self) -> int:
        """Model copies that train in step, over all workers (each local GPU, or the CPU, is one)."""
        return 1 if self.strategy is None else int(self.strategy.num_replicas_in_sync)

    @property
    def local_replicas(self) -> int:
        """Model copies in this process."""
        return self.replicas // self.workers

    def per_replica_batch_size(self, batch_size: int) -> int:
        """The examples each replica takes per step when a step takes `batch_size` in all.

        Raises:
            InputError: batch_size does not split evenly over the replicas.
        """
        if batch_size % self.replicas:
            raise InputError(
                f"--batch-size {batch_size} does not split evenly over the {self.replicas} replicas of --distribute "
                f"{self.kind}; give a multiple of {self.replicas}"
            )
        return batch_size // self.replicas

    def steps_per_epoch(self, fewest_examples: int, batch_size: int) -> int:
        """Steps per epoch, `batch_size` examples per step in all, when the worker with the fewest training
        examples holds `fewest_examples` (its own shard; in one process, every example). On one replica every
        batch, the last one partial; on several, whole steps of that shard only, as every worker must take the same
        number of steps (the examples left over, fewer than a step's, change every epoch).

        Raises:
            DatasetError: too few examples for one step on every worker.
        """
        if self.replicas == 1:
            return max(1, -(-fewest_examples // batch_size))
        steps = fewest_examples // (self.per_replica_batch_size(batch_size) * self.local_replicas)
        if steps == 0:
            raise DatasetError(
                f"{fewest_examples} training examples on a worker are fewer than one step of {batch_size} over "
                f"{self.replicas} replicas; give a smaller --batch-size"
            )
        return steps

    def shard(self, rows: Any) -> Any:
        """This worker's share of (n, …) rows (an array, or rows read on demand such as a store): every
        `workers`-th row from its index. A NumPy array gives a view; anything else a ShardRows."""
        if self.workers == 1:
            return rows
        if isinstance(rows, np.ndarray):
            return rows[self.worker_index :: self.workers]
        return ShardRows(rows, np.arange(self.worker_index, len(rows), self.workers))

    def shard_files(self, indices: Sequence[int]) -> list[int]:
        """This worker's share of a list of file indices, the files it alone reads and trains on: every
        `workers`-th from its index (all of them in one process)."""
        return list(indices)[self.worker_index :: self.workers]

    def counts_over_workers(self, count: int) -> list[int]:
        """Every worker's `count` (each passes its own), in worker order; every worker gets the same list."""
        if self.workers == 1:
            return [count]
        share = np.zeros(self.workers)
        share[self.worker_index] = count
        return [round(value) for value in self.sum_over_workers(share)]

    def summary(self) -> dict[str, Any]:
        """{"strategy": kind, "workers": count, "replicas": count}, as metadata.json records it."""
        return {"strategy": self.kind, "workers": self.workers, "replicas": self.replicas}

    def wait_for_workers(self) -> None:
        """Return once every worker has called this too (nothing to wait for with one worker)."""
        with self.lost_workers_explained():
            self.sum_over_workers(np.zeros(1))

    @contextlib.contextmanager
    def lost_workers_explained(self) -> Iterator[None]:
        """Inside the block, a collective that fails because another worker stopped (TensorFlow notices it within
        seconds) raises a OnePipeError that says what to do."""
        if self.workers == 1:
            yield
            return
        import tensorflow as tf

        try:
            yield
        except (tf.errors.UnavailableError, tf.errors.AbortedError, tf.errors.CancelledError) as error:
            raise OnePipeError(
                f"training stopped: another worker stopped or cannot be reached ({type(error).__name__}); start "
                "every worker again with the same command and --resume to continue from the last epoch they all "
                "completed"
            ) from None

    def sum_over_workers(self, values: np.ndarray) -> np.ndarray:
        """The element-wise sum of a small (n,) float vector over every worker (each passes its own); every
        worker gets the same result. All workers must call it at the same point, as any collective."""
        if self.workers == 1:
            return np.asarray(values, dtype=np.float64)
        return _all_reduce_sum(self.strategy, np.asarray(values, dtype=np.float64) / self.local_replicas)


class ShardRows:
    """Some rows of (n, …) rows that are read on demand: `len`, `shape`, `dtype`, `ndim` and `[index]` (an int, a
    slice or an index array) as on a NumPy array of just those rows."""

    def __init__(self, source: Any, rows: np.ndarray) -> None:
        self.source, self.rows = source, rows

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def shape(self) -> tuple[int, ...]:
        return (len(self.rows), *self.source.shape[1:])

    @property
    def dtype(self) -> Any:
        return self.source.dtype

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def __getitem__(self, key: Any) -> np.ndarray:
        return self.source[self.rows[key]]


def start_distribution(kind: str, batch_size: int) -> Distribution:
    """The Distribution for --distribute `kind`, its strategy started (before any other TensorFlow op runs,
    as MultiWorkerMirroredStrategy requires). "none" starts nothing and imports nothing.

    Raises:
        InputError: an unknown kind, "multi-worker" without a usable TF_CONFIG, or a batch_size that does not
            split evenly over the replicas.
    """
    if kind not in DISTRIBUTE_CHOICES:
        raise InputError(f"expected --distribute {' | '.join(DISTRIBUTE_CHOICES)}; received {kind!r}")
    if kind == "none":
        return Distribution()
    worker_index, workers = 0, 1
    if kind == "multi-worker":
        worker_index, workers = cluster_position(os.environ.get(TF_CONFIG_VARIABLE))
    import tensorflow as tf

    if kind == "mirrored":
        strategy = tf.distribute.MirroredStrategy()
    else:
        strategy = tf.distribute.MultiWorkerMirroredStrategy()
    distribution = Distribution(kind, worker_index, workers, strategy)
    distribution.per_replica_batch_size(batch_size)
    return distribution


def cluster_position(tf_config: str | None) -> tuple[int, int]:
    """(this worker's index, workers) from TF_CONFIG's text: the `chief` task first, if any, then the `worker`
    tasks in order.

    Raises:
        InputError: TF_CONFIG is missing, not JSON, names no workers, or gives a task that is not one of them.
    """
    if not tf_config:
        raise InputError(
            f"--distribute multi-worker reads the cluster from {TF_CONFIG_VARIABLE}, which is not set; "
            f"set it in each worker's environment, e.g. {TF_CONFIG_EXAMPLE}"
        )
    try:
        config = json.loads(tf_config)
        cluster, task = dict(config["cluster"]), dict(config["task"])
        chiefs, workers = list(cluster.get("chief", [])), list(cluster.get("worker", []))
        task_type, task_index = str(task["type"]), int(task.get("index", 0))
    except (ValueError, KeyError, TypeError) as error:
        raise InputError(
            f"{TF_CONFIG_VARIABLE} is not a cluster description ({error}); expected e.g. {TF_CONFIG_EXAMPLE}"
        ) from None
    tasks = {"chief": chiefs, "worker": workers}
    if task_type not in tasks or not 0 <= task_index < len(tasks[task_type]) or len(chiefs) > 1:
        raise InputError(
            f"{TF_CONFIG_VARIABLE} gives this process the task {task_type} {task_index}, which its cluster "
            f"({len(chiefs)} chief, {len(workers)} worker) does not have; expected a chief or worker task of it"
        )
    return (0 if task_type == "chief" else len(chiefs) + task_index), len(chiefs) + len(workers)


def _all_reduce_sum(strategy: Any, share: np.ndarray) -> np.ndarray:
    """Sum over every replica of `share` (each local replica adds the same share): one collective."""
    import tensorflow as tf

    return _summing_function(strategy)(tf.constant(share, tf.float64)).numpy()


@functools.cache
def _summing_function(strategy: Any) -> Any:
    """A tf.function (traced once per strategy and shape) summing a tensor over the strategy's replicas."""
    import tensorflow as tf

    @tf.function
    def sum_over_replicas(value):
        per_replica = strategy.run(lambda: tf.identity(value))
        return strategy.reduce(tf.distribute.ReduceOp.SUM, per_replica, axis=None)

    return sum_over_replicas
