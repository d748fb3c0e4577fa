"""Evaluation: accuracy, per-class accuracy and the confusion matrix of a bundle on a folder; how well its scores
are calibrated (the expected calibration error of the raw and of the temperature-scaled scores, app.calibration)
and the share of the files below its familiarity threshold (app.familiarity).

Evaluation runs the served LiteRT model on features made by the same preprocessing as training, from files read
with the same limits as `predict`; every file it cannot use (unreadable, a FIFO or other special file, too large,
silent, one flat colour …) is listed in the result with the reason and logged.

Example:
    >>> import numpy as np
    >>> from app.evaluate import metrics_from_predictions
    >>> probabilities = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]])  # (files, classes)
    >>> metrics = metrics_from_predictions(np.array([0, 1, 1]), probabilities, ["cat", "dog"])
    >>> metrics["accuracy"], metrics["per_class"], metrics["confusion_matrix"]
    (0.66667, {'cat': 1.0, 'dog': 0.5}, [[1, 0], [1, 1]])
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from app import familiarity
from app.calibration import BINS, apply_temperature, ece_by_chance, expected_calibration_error
from app.class_folders import find_dataset
from app.errors import DatasetError
from app.features import extract_features
from app.predict import Predictor

BATCH_SIZE = 256
SKIPPED_LOGGED = 10  # files named in the warning; the result lists them all

logger = logging.getLogger(__name__)


def metrics_from_predictions(
    labels: np.ndarray, probabilities: np.ndarray, class_names: Sequence[str]
) -> dict[str, Any]:
    """accuracy (0–1), count, per_class (label → accuracy or None when absent) and
    confusion_matrix (rows: true class, columns: predicted class, in class_names order)."""
    labels = np.asarray(labels, dtype=np.int64)
    predicted = np.argmax(probabilities, axis=1) if len(labels) else np.zeros(0, np.int64)
    n_classes = len(class_names)
    confusion = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(confusion, (labels, predicted), 1)
    per_class = {}
    for index, name in enumerate(class_names):
        total = int(confusion[index].sum())
        per_class[name] = round(float(confusion[index, index] / total), 5) if total else None
    return {
        "accuracy": round(float(np.mean(predicted == labels)), 5) if len(labels) else None,
        "count": int(len(labels)),
        "per_class": per_class,
        "class_names": list(class_names),
        "confusion_matrix": confusion.tolist(),
    }


def evaluate_bundle(bundle_dir: str | Path, data_dir: str | Path, progress: bool = True) -> dict[str, Any]:
    """Evaluate a bundle on every file under `data_dir/<class>/` whose class the bundle knows.

    Returns:
        metrics_from_predictions(...) plus "skipped" ([{"file", "reason"}] of every file that could not be
        used), "ignored_folders" (class folders the bundle has no label for), "training_data" (see
        training_data_under), "calibration" and "familiarity" (see trust_metrics).

    Raises:
        DatasetError: no folder matches the bundle's classes.
    """
    predictor = Predictor.load(bundle_dir)
    dataset = find_dataset(data_dir, predictor.kind, class_names=predictor.class_names)
    if not dataset.files:
        raise DatasetError(
            f"no {predictor.kind} files under {data_dir} in folders named after the bundle's classes "
            f"({', '.join(predictor.class_names)})"
        )
    extraction = extract_features(dataset.files, predictor.config, progress=progress)
    log_skipped(extraction.skipped)
    if len(extraction.kept) == 0:
        first = extraction.skipped[0] if extraction.skipped else ("", "")
        raise DatasetError(
            f"none of the {len(dataset.files)} files under {data_dir} could be read; e.g. {first[0]}: {first[1]}"
        )
    raw, inner = served_in_batches(predictor, extraction.arrays)
    labels = np.asarray(dataset.labels)[extraction.kept]
    metrics = metrics_from_predictions(labels, apply_temperature(raw, predictor.temperature), predictor.class_names)
    metrics.update(trust_metrics(predictor, raw, labels, inner))
    present = {p.name for p in Path(data_dir).iterdir() if p.is_dir() and not p.name.startswith(".")}
    metrics["ignored_folders"] = sorted(present - set(predictor.class_names) - {"_background_noise_"})
    metrics["skipped"] = [{"file": f, "reason": r} for f, r in extraction.skipped]
    metrics["training_data"] = training_data_under(predictor.metadata, data_dir)
    return metrics


def served_in_batches(predictor: Predictor, arrays: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """Predictor.served on (n, …) features, BATCH_SIZE at a time: (n, n_classes) probabilities before calibration,
    and the (n, width) inner features (None for a model without them)."""
    parts = [
        predictor.served(arrays[start : start + BATCH_SIZE], calibrated=False)
        for start in range(0, len(arrays), BATCH_SIZE)
    ]
    raw = np.concatenate([probabilities for probabilities, _ in parts])
    inner = None if parts[0][1] is None else np.concatenate([features for _, features in parts])
    return raw, inner


def trust_metrics(
    predictor: Predictor, raw: np.ndarray, labels: np.ndarray, inner: np.ndarray | None = None
) -> dict[str, Any]:
    """How far the bundle's scores can be trusted on these files.

    Args:
        predictor: the bundle's Predictor; raw: (n, n_classes) served probabilities before calibration; labels: (n,);
        inner: (n, width) inner features (Predictor.served), which a bundle whose familiarity reads them needs.

    Returns:
        "calibration": {"temperature" (None without calibration), "ece_before" (raw scores, BINS bins, 0–1),
        "ece_after" (temperature-scaled; None without calibration), "ece_by_chance" (what a perfectly calibrated
        model would show on as many files, app.calibration.ece_by_chance)}; "familiarity": {"statistic", "threshold",
        "share_below" (0–1)}, or None when the bundle has no threshold.
    """
    calibrated = "temperature" in (predictor.metadata.get("calibration") or {})
    scaled = apply_temperature(raw, predictor.temperature)
    result: dict[str, Any] = {
        "calibration": {
            "temperature": predictor.temperature if calibrated else None,
            "ece_before": expected_calibration_error(raw, labels, BINS),
            "ece_after": expected_calibration_error(scaled, labels, BINS) if calibrated else None,
            "ece_by_chance": ece_by_chance(scaled, BINS),
        },
        "familiarity": None,
    }
    threshold = predictor.familiarity_threshold
    if threshold is not None:
        scores = predictor.familiarity_scores(scaled, inner)
        below = [not familiarity.is_familiar(float(score), threshold) for score in scores]
        share = round(float(np.mean(below)), 5)
        statistic = predictor.metadata["familiarity"]["statistic"]
        result["familiarity"] = {"statistic": statistic, "threshold": threshold, "share_below": share}
    return result


def trust_lines(metrics: dict[str, Any]) -> list[str]:
    """evaluate's table lines for trust_metrics: the ECE before and after calibration, the share of unfamiliar
    files; for a bundle without calibration, a note that its scores are the raw softmax.

    Example:
        >>> trust_lines({"calibration": {"temperature": None, "ece_before": 0.0412, "ece_after": None,
        ...              "ece_by_chance": 0.021}, "familiarity": None})  # doctest: +ELLIPSIS
        ['uncalibrated: the bundle has no calibration, its scores are the raw softmax (ECE 4.12% over 15 bins; ...)']
    """
    calibration, familiar = metrics["calibration"], metrics["familiarity"]
    chance = (
        f"; {calibration['ece_by_chance']:.2%} by chance alone on as many files"
        if calibration.get("ece_by_chance") is not None
        else ""
    )
    if calibration["temperature"] is None:
        ece = calibration["ece_before"]
        lines = [
            f"uncalibrated: the bundle has no calibration, its scores are the raw softmax "
            f"(ECE {ece:.2%} over {BINS} bins{chance})"
        ]
    else:
        lines = [
            f"calibration error (ECE, {BINS} bins): {calibration['ece_before']:.2%} raw, "
            f"{calibration['ece_after']:.2%} temperature-scaled (T = {calibration['temperature']:g}{chance})"
        ]
    if familiar is not None:
        lines.append(
            f"unfamiliar: {familiar['share_below']:.2%} of the files score below the familiarity threshold "
            f"({familiar['statistic']} {familiar['threshold']:.4g})"
        )
    return lines


def log_skipped(skipped: Sequence[tuple[str, str]]) -> None:
    """One warning naming the first SKIPPED_LOGGED of the (file, reason) pairs of files left out."""
    if skipped:
        lines = [f"skipped {len(skipped)} file(s) that could not be used:"]
        lines += [f"  {file}: {reason}" for file, reason in skipped[:SKIPPED_LOGGED]]
        if len(skipped) > SKIPPED_LOGGED:
            lines.append(f"  … and {len(skipped) - SKIPPED_LOGGED} more (`evaluate --json` lists every one)")
        logger.warning("\n".join(lines))


def training_data_under(metadata: dict[str, Any], data_dir: str | Path) -> str | None:
    """The folder the bundle trained on (its data or extra training data) that `data_dir` is, holds or lies
    in: a score on `data_dir` then includes files the model learned from. None when there is no such folder
    (the score is on files the model never trained on).

    Example:
        >>> metadata = {"data": {"root": "/data/digits", "extra_training_data": {"/data/synthetic": {}}}}
        >>> training_data_under(metadata, "/data/digits/test")
        '/data/digits'
        >>> training_data_under(metadata, "/data"), training_data_under(metadata, "/elsewhere")
        ('/data/digits', None)
    """
    data = metadata.get("data") or {}
    roots = [data.get("root"), *(data.get("extra_training_data") or {})]
    target = Path(data_dir).resolve()
    for root in (Path(r) for r in roots if r):
        if target == root or root.is_relative_to(target) or target.is_relative_to(root):
            return str(root)
    return None
