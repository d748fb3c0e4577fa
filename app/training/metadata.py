"""A bundle's metadata.json: what it serves (kind, classes, preprocessing, input shape, serving views, calibration
and familiarity threshold), how it trained (recipe, command, history), how well (held-out metrics, Keras–LiteRT
parity), on what data, and with which library versions. `write_bundle` adds the sha256 of each file.

Example:
    >>> from app.training.metadata import library_versions
    >>> {"python", "numpy"} <= set(library_versions())
    True
"""

from __future__ import annotations

import platform
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from app.bundle import FORMAT_VERSION
from app.class_folders import Dataset
from app.config import AudioConfig, ImageConfig, TrainConfig, to_dict
from app.training.held_out import evaluated_split
from app.training.training_set import TrainingSet

if TYPE_CHECKING:  # app.training.fit imports Keras
    from app.training.fit import FittedModel

VERSIONED_PACKAGES = (
    "onepipe",
    "tensorflow-cpu",
    "tensorflow",
    "keras",
    "ai-edge-litert",
    "numpy",
    "scipy",
    "av",
    "pillow",
)


def build_metadata(
    *,
    name: str,
    dataset: Dataset,
    preprocessing: AudioConfig | ImageConfig,
    train_config: TrainConfig,
    group_pattern: str | None,
    command: str | None,
    splits: dict[str, list[int]],
    skipped: list[tuple[str, str]],
    training_set: TrainingSet,
    fitted: FittedModel,
    serving: dict[str, Any],
    metrics: dict[str, dict[str, Any]],
    parity: float,
    seconds: float,
    trust: dict[str, dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """The metadata dict of a bundle named `name` (its folder's name).

    Args:
        splits: file indices per split; skipped: (file, reason) of the files that could not be read (on
            several workers, of those the chief read).
        metrics: held_out_metrics(…); parity: the largest Keras–LiteRT difference in probability.
        seconds: wall time of the run so far.
        trust: the "calibration" and "familiarity" sections (app.training.trust), or {}/None when not fitted.
    """
    history = fitted.history
    return {
        "format_version": FORMAT_VERSION,
        "name": name,
        "kind": dataset.kind,
        "class_names": list(dataset.class_names),
        "preprocessing": to_dict(preprocessing),
        "input_shape": list(fitted.input_shape),
        "training": {
            "config": to_dict(train_config),
            "group_pattern": group_pattern,
            "command": command,
            "epochs_run": len(history["loss"]),
            # validation chose the epoch (a run without validation data has no val_accuracy)
            "best_epoch": best_epoch(history) if "val_accuracy" in history else None,
            "history": {key: [round(float(v), 5) for v in values] for key, values in history.items()},
            "distribution": fitted.distribution,  # {"strategy": none|mirrored|multi-worker, "workers", "replicas"}
            "seconds": round(seconds, 1),
        },
        "serving": serving,
        "metrics": {
            "evaluated_on": evaluated_split(metrics),  # None: trained on every file, nothing held out
            **metrics,
            "keras_litert_max_abs_difference": parity,
        },
        "data": {
            "root": str(dataset.root.resolve()),
            "files": len(dataset.files),
            "per_class": dataset.counts(),
            "split": {split: len(indices) for split, indices in splits.items()},
            "extra_training_data": training_set.extra_summary,
            "augmented_training_examples": fitted.training_examples,  # over every worker
            "skipped": [{"file": file, "reason": reason} for file, reason in skipped],
            "other_kind_files": dataset.other_kind_files,
        },
        **(trust or {}),  # "calibration" and "familiarity", when there were enough held-out files to fit them
        "versions": library_versions(),
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def library_versions() -> dict[str, str]:
    """{"python": version, package: version} for each of VERSIONED_PACKAGES that is installed."""
    from importlib.metadata import PackageNotFoundError, version

    versions = {"python": platform.python_version()}
    for package in VERSIONED_PACKAGES:
        try:
            versions[package] = version(package)
        except PackageNotFoundError:
            continue
    return versions


def best_epoch(history: dict[str, list[float]]) -> int:
    """The 1-based epoch whose weights the bundle keeps, as the training loop chose it: the highest validation
    accuracy, ties broken by the lower validation loss, then by the earlier epoch.

    Example:
        >>> best_epoch({"val_accuracy": [1.0, 1.0, 0.9], "val_loss": [0.6, 0.2, 0.1]})
        2
    """
    accuracy, loss = history["val_accuracy"], history["val_loss"]
    return min(range(len(accuracy)), key=lambda epoch: (-accuracy[epoch], loss[epoch])) + 1
