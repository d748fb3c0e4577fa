"""Distillation: `python -m app train DATA --distill-from TEACHER` trains the article's CNN on targets that mix
each example's label with what a larger network (a bundle trained with `--network teacher`) answers for it.

A small network that underfits its data learns more from a teacher's full answer ("a cat, or maybe a dog") than
from the label alone. Before fitting, the teacher scores every training example once (`soft_targets`): the
example as stored, and for images trained with horizontal flips also its mirror, averaged; an example whose
size differs from the teacher's input is resized to it first (images only). Its probabilities are softened by
the recipe's `distill_temperature` T (p ↦ p^(1/T), renormalised), and each batch's target becomes
`(1 − w) · label + w · teacher` with w the recipe's `distill_weight` (app.training.batches). Batch augmentation
(moves, flips, SpecAugment) still applies to the inputs; the teacher's answer is the one for the unaugmented
example. The training accuracy each epoch reports is then agreement with each target's top class; the validation
accuracy is against the labels, as always.

`check_teacher` runs before anything slow and imports no Keras: the teacher must be a readable bundle of the same
kind and classes (in the same order) and the same preprocessing but for the image size; its model.keras must match
the sha256 its metadata records, and is loaded from a copy of the checked bytes with Keras' safe_mode.

Example:
    >>> from pathlib import Path
    >>> from app.training.distill import check_teacher
    >>> check_teacher(Path("no-such-bundle"), "image", None, ["cat", "dog"])  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    app.errors.InputError: --distill-from no-such-bundle: no-such-bundle is not a model bundle: it has no metadata.json
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from app.config import AudioConfig, ImageConfig, TrainConfig, preprocessing_from_metadata
from app.errors import InputError
from app.paths import KERAS_FILE
from app.step_progress import step_progress
from app.training.init_from import load_checked_model, preprocessing_differences, read_model_bundle

logger = logging.getLogger(__name__)

CHUNK = 1024  # examples the teacher scores at a time


@dataclass(frozen=True)
class Teacher:
    """A teacher bundle that passed check_teacher."""

    bundle: Path
    name: str  # the bundle's name (its metadata's, else its folder's)
    model_sha256: str  # of its model.keras, as its metadata records and the file matched
    input_shape: tuple[int, ...]  # (height, width, channels) its model takes
    accuracy: float | None  # on its own test split, else its validation split; None if it held nothing out

    def summary(self, train_config: TrainConfig) -> dict[str, Any]:
        """{"bundle", "model_sha256", "accuracy", "weight", "temperature"}, for metadata.json and the run key."""
        return {
            "bundle": self.name,
            "model_sha256": self.model_sha256,
            "accuracy": self.accuracy,
            "weight": train_config.distill_weight,
            "temperature": train_config.distill_temperature,
        }


def check_teacher(
    bundle_dir: str | Path,
    kind: str,
    preprocessing: AudioConfig | ImageConfig | None,
    class_names: Sequence[str],
) -> Teacher:
    """The teacher bundle at `bundle_dir`, checked against a run of `kind` ("audio" or "image") fed
    `preprocessing` (None: not checked) over `class_names`.

    Raises:
        InputError: the folder is not a readable bundle, its model.keras is missing or does not match its
            sha256, or its kind, classes or preprocessing (image size aside) differ from the run's.
    """
    bundle_dir = Path(bundle_dir)
    option = f"--distill-from {bundle_dir}"
    metadata = read_model_bundle(bundle_dir, "--distill-from", kind)
    if list(metadata["class_names"]) != list(class_names):
        raise InputError(
            f"{option}: its classes are {', '.join(metadata['class_names'])}; this run's are {', '.join(class_names)} "
            "(the same classes in the same order are needed)"
        )
    if preprocessing is not None:
        theirs = preprocessing_from_metadata(metadata)
        differences = [
            line for line in preprocessing_differences(theirs, preprocessing) if not line.startswith("image_size:")
        ]
        if differences:
            raise InputError(
                f"{option}: its preprocessing differs from this run's: {'; '.join(differences)}. Train the teacher "
                "with this run's preprocessing options (its image size may differ)"
            )
        shape = tuple(metadata["input_shape"])
        if kind == "audio" and shape != tuple(preprocessing.input_shape):
            raise InputError(f"{option}: its input shape is {shape} and this run feeds {preprocessing.input_shape}")
    return Teacher(
        bundle=bundle_dir,
        name=str(metadata.get("name") or bundle_dir.name),
        model_sha256=str(metadata["files"][KERAS_FILE]),
        input_shape=tuple(int(side) for side in metadata["input_shape"]),
        accuracy=_held_out_accuracy(metadata),
    )


def soft_targets(
    teacher: Teacher,
    features: Any,
    labels: np.ndarray,
    train_config: TrainConfig,
    progress: bool = True,
) -> np.ndarray:
    """The teacher's softened probabilities for each of the (n, …) training features (an array or rows on disk,
    read CHUNK at a time) with (n,) class-index labels: (n, n_classes) float32, rows summing to 1. Logs how often
    the teacher's top answer is the label. See the module docstring."""
    import tensorflow as tf

    from app.model import as_model_input

    model = load_checked_model(teacher.bundle, teacher.model_sha256, "--distill-from")
    height, width = teacher.input_shape[:2]
    parts = []
    with step_progress(len(features), "teacher", "example", enabled=progress) as bar:
        for start in range(0, len(features), CHUNK):
            inputs = as_model_input(np.asarray(features[start : start + CHUNK])).astype(np.float32)
            if inputs.shape[1:3] != (height, width):
                inputs = tf.image.resize(inputs, (height, width), antialias=True).numpy()
            probabilities = model.predict(inputs, verbose=0, batch_size=256)
            if train_config.horizontal_flip:  # images only: the mirror along the width
                probabilities = (probabilities + model.predict(inputs[:, :, ::-1], verbose=0, batch_size=256)) / 2
            parts.append(soften(probabilities, train_config.distill_temperature))
            bar.update(len(inputs))
    targets = np.concatenate(parts).astype(np.float32)
    agreement = float(np.mean(targets.argmax(axis=1) == np.asarray(labels))) if len(targets) else 0.0
    logger.info("teacher %s: its top answer is the label of %.1f %% of the training examples", teacher.name,
                100 * agreement)  # fmt: skip
    return targets


def soften(probabilities: np.ndarray, temperature: float) -> np.ndarray:
    """(n, k) probabilities at a temperature: p^(1/T) renormalised per row (T > 1 flattens, 1 keeps them).

    Example:
        >>> soften(np.array([[0.8, 0.2]]), 2.0).round(3)
        array([[0.667, 0.333]])
    """
    logits = np.log(np.clip(probabilities, 1e-12, 1.0)) / temperature
    logits -= logits.max(axis=1, keepdims=True)
    exp = np.exp(logits)
    return exp / exp.sum(axis=1, keepdims=True)


def _held_out_accuracy(metadata: dict[str, Any]) -> float | None:
    """The bundle's accuracy on its test split, else its validation split, as its metadata records; None if none."""
    metrics = metadata.get("metrics") or {}
    for split in (metrics.get("evaluated_on"), "test", "validation"):
        if not isinstance(split, str):
            continue
        accuracy = (metrics.get(split) or {}).get("accuracy")
        if isinstance(accuracy, (int, float)):
            return float(accuracy)
    return None
