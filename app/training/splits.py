"""Which files train, validate and test, and the feature arrays of each split.

Example:
    >>> import numpy as np
    >>> from app.features import Extraction
    >>> from app.training.splits import split_arrays
    >>> extraction = Extraction(np.arange(4.0)[:, None], kept=np.array([0, 1, 3]), skipped=[("c.wav", "broken")])
    >>> arrays = split_arrays(extraction, {"train": [0, 1], "validation": [2, 3]}, np.array([0, 1, 0, 1]))
    >>> arrays["train"][0].ravel().tolist(), arrays["validation"][1].tolist()  # file 2 could not be read
    ([0.0, 1.0], [1])
"""

from __future__ import annotations

from collections.abc import Mapping, Sized

import numpy as np

from app.class_folders import Dataset, speaker_key, split_dataset
from app.config import TrainConfig
from app.errors import DatasetError
from app.features import Extraction
from app.training.messages import first_names


def split_files(
    dataset: Dataset, train_config: TrainConfig, group_pattern: str | None
) -> tuple[dict[str, list[int]], bool]:
    """File indices of the train, validation and test splits, and whether validation chooses the epoch.

    With --validation-percent 0 and no validation speakers named or listed, nothing validates: training
    runs every epoch on every file and keeps the last (averaged) weights, once a recipe has been chosen
    on a held-out split.

    Raises:
        DatasetError: a named speaker has no files, or the training (or a needed validation) split is empty;
            the message says what to change.
    """
    splits = split_dataset(
        dataset,
        train_config.validation_percent,
        train_config.test_percent,
        group_pattern,
        train_config.split_salt,
        train_config.validation_groups,
        train_config.test_groups,
    )
    named = set(train_config.validation_groups) | set(train_config.test_groups)
    found = {speaker_key(path, group_pattern) for path in dataset.files} if named else set()
    if not named <= found:
        raise DatasetError(
            f"no files of the speaker(s) {', '.join(sorted(named - found))} under {dataset.root}; "
            + (
                f"speakers found by --group-pattern: {first_names(sorted(found))}"
                if group_pattern
                else f"speakers found (the part of each name before _nohash_; --group-pattern names them in other "
                f"schemes, e.g. '^[^_]+_([^_]+)_' for <digit>_<speaker>_<n>.wav): {first_names(sorted(found))}"
            )
        )
    validating = (
        bool(splits["validation"]) or train_config.validation_percent > 0 or bool(train_config.validation_groups)
    )
    if not splits["train"] or (validating and not splits["validation"]):
        remedy = (
            "named speakers replace the hashed split: name validation speakers too (--validation-groups NAME), "
            "or pass --validation-percent 0 to train all epochs without validation"
            if train_config.test_groups and not train_config.validation_groups
            else "add files, or more speakers, or lower --validation-percent; 0 trains on every file"
        )
        raise DatasetError(
            f"{dataset.root} splits into {len(splits['train'])} training and {len(splits['validation'])} validation "
            f"files; need both ({remedy})"
        )
    return splits, validating


def split_arrays(
    extraction: Extraction, splits: dict[str, list[int]], labels: np.ndarray
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Each split's features (n, …) and labels (n,), from the files that could be read."""
    row_of = {file_index: row for row, file_index in enumerate(extraction.kept)}
    arrays = {}
    for name, indices in splits.items():
        rows = [row_of[i] for i in indices if i in row_of]
        arrays[name] = extraction.arrays[rows], labels[extraction.kept[rows]]
    return arrays


def check_readable(arrays: Mapping[str, tuple[Sized, np.ndarray]], validating: bool, dataset: Dataset) -> None:
    """DatasetError when no readable file is left in the training split, or in the validation split that
    chooses the epoch (each split's examples: an array or a store view, and labels). Files skipped as unreadable,
    special, too large or without content (see app.features) count as left out."""
    if len(arrays["train"][0]) == 0 or (validating and len(arrays["validation"][0]) == 0):
        raise DatasetError(f"no readable files left in the training or validation split of {dataset.root}")
