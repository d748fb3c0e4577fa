"""The training report image: loss and accuracy curves beside the confusion matrix.

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

from collections.abc import Sequence
from pathlib import Path
from typing import Any


def plot_report(
    history: dict[str, list[float]],
    evaluation: dict[str, Any] | None,
    class_names: Sequence[str],
    split: str | None,
    path: Path,
) -> None:
    """Write report.png: curves per epoch (train and validation) and the row-normalised confusion matrix.

    evaluation None (a bundle trained on every file) leaves the matrix panel with a note instead.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    size = max(4.0, 0.45 * len(class_names) + 2)
    figure, (loss_axis, accuracy_axis, matrix_axis) = plt.subplots(
        1, 3, figsize=(8 + size, size * 0.8), gridspec_kw={"width_ratios": [1, 1, 1.3]}
    )
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


def _save(figure, path: Path) -> None:
    import matplotlib.pyplot as plt

    figure.tight_layout()
    figure.savefig(path, dpi=80)
    plt.close(figure)
