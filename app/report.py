"""The training report image: loss and accuracy curves beside the confusion matrix, and, for a calibrated bundle,
the reliability diagram of its held-out files before and after calibration (app.calibration).

Example:
    >>> import tempfile
    >>> from pathlib import Path
    >>> from app.report import plot_report
    >>> history = {"loss": [1.0, 0.6], "accuracy": [0.5, 0.8], "val_loss": [0.9, 0.7], "val_accuracy": [0.6, 0.7]}
    >>> evaluation = {"confusion_matrix": [[4, 1], [2, 3]], "accuracy": 0.7, "count": 10}
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     plot_report(history, evaluation, ["cat", "dog"], "test", Path(folder) / "report.png")
    ...     (Path(folder) / "report.png").stat().st_size > 0
    True
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any

TITLE_WIDTH = 48  # characters per line of the reliability diagram's title


def plot_report(
    history: dict[str, list[float]],
    evaluation: dict[str, Any] | None,
    class_names: Sequence[str],
    split: str | None,
    path: Path,
    calibration: dict[str, Any] | None = None,
) -> None:
    """Write report.png: curves per epoch (train and validation) and the row-normalised confusion matrix.

    evaluation None (a bundle trained on every file) leaves the matrix panel with a note instead. A `calibration`
    metadata section with "reliability" (app.training.trust.fit_trust) adds a reliability diagram panel.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    size = max(4.0, 0.45 * len(class_names) + 2)
    reliable = bool(calibration and calibration.get("reliability"))
    figure, axes = plt.subplots(
        1,
        4 if reliable else 3,
        figsize=(8 + size + (size * 0.8 if reliable else 0), size * 0.8),
        gridspec_kw={"width_ratios": [1, 1, 1.3, 1] if reliable else [1, 1, 1.3]},
    )
    loss_axis, accuracy_axis, matrix_axis = axes[:3]
    if reliable and calibration is not None:
        plot_reliability(axes[3], calibration)
    epochs = range(1, len(history["loss"]) + 1)
    for axis, key, title in ((loss_axis, "loss", "Loss"), (accuracy_axis, "accuracy", "Accuracy")):
        axis.plot(epochs, history[key], label="training")
        if f"val_{key}" in history:
            axis.plot(epochs, history[f"val_{key}"], label="validation")
        axis.set_title(title)
        axis.set_xlabel("epoch")
        axis.grid(alpha=0.3)
        axis.legend()
    if evaluation is None:
        matrix_axis.axis("off")
        matrix_axis.text(0.5, 0.5, "Trained on every file:\nno held-out files to score", ha="center", va="center")
        return _save(figure, path)
    confusion = np.asarray(evaluation["confusion_matrix"], dtype=float)
    normalised = confusion / np.maximum(confusion.sum(axis=1, keepdims=True), 1)
    matrix_axis.imshow(normalised, cmap="Blues", vmin=0, vmax=1)
    matrix_axis.set_xticks(range(len(class_names)), class_names, rotation=60, ha="right", fontsize=8)
    matrix_axis.set_yticks(range(len(class_names)), class_names, fontsize=8)
    matrix_axis.set_xlabel("predicted")
    matrix_axis.set_ylabel("true")
    accuracy = evaluation["accuracy"]
    matrix_axis.set_title(f"Confusion on {split} ({evaluation['count']} files, accuracy {accuracy:.1%})")
    _save(figure, path)


def plot_reliability(axis, calibration: dict[str, Any]) -> None:
    """A reliability diagram on a Matplotlib axis: per confidence bin, the accuracy against the mean confidence,
    before and after calibration (points sized by their files), and the diagonal a calibrated model follows."""
    axis.plot([0, 1], [0, 1], color="grey", linestyle=":", linewidth=1, label="calibrated")
    for key, colour, name in (("before", "tab:red", "raw"), ("after", "tab:blue", "temperature-scaled")):
        bins = calibration["reliability"][key]
        points = [
            (confidence, accuracy, count)
            for confidence, accuracy, count in zip(bins["confidence"], bins["accuracy"], bins["count"], strict=True)
            if count
        ]
        if not points:
            continue
        confidence, accuracy, count = zip(*points, strict=True)
        ece = calibration.get(f"ece_{key}")
        label = f"{name} (ECE {ece:.1%})" if isinstance(ece, int | float) else name
        axis.plot(confidence, accuracy, color=colour, marker="o", markersize=3, linewidth=0.8, alpha=0.7, label=label)
        axis.scatter(confidence, accuracy, s=[8 + 60 * c / max(count) for c in count], color=colour, alpha=0.4)
    axis.set_xlim(0, 1)
    axis.set_ylim(0, 1)
    axis.set_xlabel("confidence (highest score)")
    axis.set_ylabel("accuracy")
    temperature = calibration.get("temperature")
    files = calibration.get("files")
    title = f"Reliability on {calibration.get('fitted_on', 'held-out files')} ({files} files, T = {temperature})"
    axis.set_title("\n".join(textwrap.wrap(title, TITLE_WIDTH)), fontsize=10)
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8, loc="lower right")


def _save(figure, path: Path) -> None:
    import matplotlib.pyplot as plt

    figure.tight_layout()
    figure.savefig(path, dpi=80)
    plt.close(figure)
