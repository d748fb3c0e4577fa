"""The examples a model fits on: the training split, the extra training-only folders (e.g. synthetic speech)
and, for audio with augmentation, waveform variants of the training clips.

None of them is copied into one array: the training split and the extra folders stay in their scratch stores
(app.training.inputs) and the variants in their cached store (app.training.variants), joined end to end
(app.training.store.JoinedExamples) and read a batch at a time while fitting.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from app.class_folders import Dataset, find_dataset
from app.config import AudioConfig, ImageConfig, TrainConfig
from app.errors import DatasetError
from app.training.inputs import extract_to_store
from app.training.messages import first_names
from app.training.store import ExampleRows, JoinedExamples
from app.training.variants import variant_examples


@dataclass(frozen=True)
class TrainingSet:
    """Features and labels to fit on, and where the extra ones came from."""

    # (n, time, n_mels) float32 spectrograms or (n, height, width, channels) uint8 images: an array, or rows read
    # from disk on demand (app.training.store) that index like one
    features: np.ndarray | ExampleRows
    labels: np.ndarray  # (n,) class indices
    extra_summary: dict[str, dict[str, int]]  # {resolved extra folder: {class name: files}}


def build_training_set(
    dataset: Dataset,
    train_indices: list[int],
    train_arrays: tuple[np.ndarray | ExampleRows, np.ndarray],
    preprocessing: AudioConfig | ImageConfig,
    train_config: TrainConfig,
    extra_train_dirs: Sequence[str | Path],
    extra_folder_classes: dict[str, str],
    cache_dir: Path | None,
    progress: bool,
    file_keys: Sequence[str | None] | None = None,
    share: Callable[[Sequence[int]], list[int]] = list,
) -> TrainingSet:
    """The training split's (features, labels), then each extra training folder's (folders named otherwise
    read as the class `extra_folder_classes` gives), then the waveform variants.

    Args:
        file_keys: the content key of each of dataset.files, None for the unreadable ones
            (app.training.inputs.StoredExtraction.readable_keys()), which name the variants' store; None reads the
            training clips again to learn them.
        share: this worker's share of a list of file indices (app.training.distribute.Distribution.shard_files),
            applied to each extra folder's files; `train_indices` is already its share of the training split.

    Raises:
        DatasetError: an extra folder has no class folder of the dataset's classes with files of its kind.
    """
    features, labels = [train_arrays[0]], [train_arrays[1]]
    extra_summary = {}
    for extra_dir in extra_train_dirs:
        extra = find_dataset(extra_dir, dataset.kind, list(dataset.class_names), extra_folder_classes)
        if not extra.files:
            raise DatasetError(
                f"no class folder of {extra_dir} matches a class of {dataset.root} "
                f"({first_names(dataset.class_names)}) "
                f"with {dataset.kind} files"
            )
        mine = share(range(len(extra.files)))
        extraction = extract_to_store(
            [extra.files[index] for index in mine], preprocessing, cache_dir=cache_dir, progress=progress
        )
        features.append(extraction.arrays)
        labels.append(np.asarray(extra.labels, dtype=np.int64)[mine][extraction.kept])
        extra_summary[str(Path(extra_dir).resolve())] = extra.counts()
    if isinstance(preprocessing, AudioConfig) and train_config.augment and train_config.augment_copies > 0:
        variants, variant_labels = variant_examples(
            dataset, train_indices, preprocessing, train_config, cache_dir, progress, file_keys
        )
        features.append(variants)
        labels.append(variant_labels)
    joined = features[0] if len(features) == 1 else JoinedExamples(features)
    return TrainingSet(joined, np.concatenate(labels).astype(np.int64, copy=False), extra_summary)
