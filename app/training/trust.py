"""How far to trust a bundle's answers, fitted at the end of training on the held-out split it reports: the
temperature that calibrates its scores (app.calibration), then, on the calibrated scores, the familiarity threshold
below which an input is said to be unlike the training data (app.familiarity). They become the "calibration" and
"familiarity" sections of metadata.json, which the Predictor applies.

A run without held-out files, or with fewer than MIN_FILES (the Train tab's small data sets), stores neither and
says why in one log line; `python -m app calibrate` can add them later from other labelled files.

Example (held-out scores of a model that says 95 % and is right 80 % of the time):
    >>> import numpy as np
    >>> labels = np.arange(40) % 2
    >>> predicted = np.where(np.arange(40) % 5 == 0, 1 - labels, labels)
    >>> probabilities = np.where(np.eye(2)[predicted] == 1, 0.95, 0.05)
    >>> sections = fit_trust(probabilities, labels, "test")
    >>> sections["calibration"]["temperature"] > 1, sections["familiarity"]["statistic"]
    (True, 'max_score')
    >>> trust_on_held_out({"test": (probabilities[:10], labels[:10])}, "test")  # too few files to fit on
    {}
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from app.calibration import (
    apply_temperature,
    ece_by_chance,
    expected_calibration_error,
    fit_temperature,
    reliability_bins,
)
from app.familiarity import (
    FEATURE_STATISTIC,
    STATISTIC,
    familiarity_scores,
    feature_scores,
    fit_class_gaussians,
    fit_threshold,
)

MIN_FILES = 30  # fewer held-out files than this say too little about confidence: nothing is fitted
# Inner features need more: class centres and a 64 × 64 covariance, and a threshold on cross-fitted distances.
FEATURE_MIN_FILES_PER_CLASS = 40
FOLDS = 5  # the feature statistic's threshold is set on scores cross-fitted over this many folds
# The kinds whose familiarity may be the feature statistic. Not sounds: the first convolution's statistics follow
# the level and the room, so a digit spoken 15 dB softer through a browser microphone (benchmarks/accuracy.py's
# recordings) scored below the threshold fitted on clean clips every time, against 5 % of the clean clips.
FEATURE_STATISTIC_KINDS = ("image",)
SHARE_BELOW = 0.05  # the share of held-out inputs the familiarity threshold flags

logger = logging.getLogger(__name__)


def fit_trust(
    probabilities: np.ndarray, labels: np.ndarray, fitted_on: str, inner: np.ndarray | None = None
) -> dict[str, dict[str, Any]]:
    """The metadata sections {"calibration": …, "familiarity": …} fitted on labelled files the model did not
    train on.

    Args:
        probabilities: (n, n_classes) probabilities as the bundle serves them, before calibration.
        labels: (n,) true classes.
        fitted_on: what the files were, in words ("test", "validation", "held-out split of mnist" …).
        inner: (n, width) the model's inner features (Predictor.served), or None. With them and at least
            FEATURE_MIN_FILES_PER_CLASS files of every class, familiarity is the feature statistic
            (feature_familiarity); else the largest calibrated probability.

    Returns:
        "calibration": method ("temperature"), temperature, fitted_on, files, ece_before and ece_after (15 bins,
        0–1), ece_by_chance (what a perfectly calibrated model would show on as many files; app.calibration) and
        "reliability" ({"before", "after"}: app.calibration.reliability_bins) for report.png;
        "familiarity": statistic, threshold, share_below_on_fitted (the share of the files it was fitted on below
        it), fitted_on, files; for the feature statistic also class_means, whitening and cross_fitted_folds.
    """
    labels = np.asarray(labels, dtype=np.int64)
    temperature = fit_temperature(probabilities, labels)
    calibrated = apply_temperature(np.asarray(probabilities, dtype=np.float64), temperature)
    files = int(len(labels))
    n_classes = np.asarray(probabilities).shape[1]
    counts = np.bincount(labels, minlength=n_classes)
    if inner is not None and counts.min() >= FEATURE_MIN_FILES_PER_CLASS:
        familiarity = feature_familiarity(inner, labels, n_classes, fitted_on)
    else:
        scores = familiarity_scores(calibrated)
        threshold = fit_threshold(scores, SHARE_BELOW)
        familiarity = {
            "statistic": STATISTIC,
            "threshold": float(threshold),
            "share_below_on_fitted": round(float(np.mean(scores < threshold)), 5),
            "fitted_on": fitted_on,
            "files": files,
        }
    return {
        "calibration": {
            "method": "temperature",
            "temperature": temperature,
            "fitted_on": fitted_on,
            "files": files,
            "ece_before": expected_calibration_error(probabilities, labels),
            "ece_after": expected_calibration_error(calibrated, labels),
            "ece_by_chance": ece_by_chance(calibrated),
            "reliability": {
                "before": reliability_bins(probabilities, labels),
                "after": reliability_bins(calibrated, labels),
            },
        },
        "familiarity": familiarity,
    }


def feature_familiarity(inner: np.ndarray, labels: np.ndarray, n_classes: int, fitted_on: str) -> dict[str, Any]:
    """The "familiarity" section of the feature statistic: class centres and whitening fitted on all the files
    (app.familiarity.fit_class_gaussians), and the threshold on cross-fitted scores: each of FOLDS folds (every
    FOLDS-th file of each class) scored against centres fitted on the other folds, so that the threshold is set on
    distances of files the centres did not see, as new inputs will be.

    Args:
        inner: (n, width) inner features; labels: (n,) classes, every class at least FOLDS times; n_classes: the
            bundle's; fitted_on: what the files were, in words.
    """
    position = np.zeros(len(labels), dtype=np.int64)  # each file's rank among the files of its class
    for label in range(n_classes):
        members = np.flatnonzero(labels == label)
        position[members] = np.arange(len(members))
    fold = position % FOLDS
    scores = np.empty(len(labels))
    for held in range(FOLDS):
        others = fold != held
        scores[~others] = feature_scores(inner[~others], fit_class_gaussians(inner[others], labels[others], n_classes))
    threshold = fit_threshold(scores, SHARE_BELOW)
    return {
        "statistic": FEATURE_STATISTIC,
        "threshold": float(threshold),
        "share_below_on_fitted": round(float(np.mean(scores < threshold)), 5),
        "fitted_on": fitted_on,
        "files": int(len(labels)),
        "cross_fitted_folds": FOLDS,
        **fit_class_gaussians(inner, labels, n_classes),
    }


def trust_on_held_out(
    scored: dict[str, tuple[np.ndarray, np.ndarray]], split: str | None, inner: np.ndarray | None = None
) -> dict[str, Any]:
    """fit_trust on the held-out split a bundle reports, or {} (logged at INFO, with the reason) when there is
    none or it has fewer than MIN_FILES files.

    Args:
        scored: {split: ((n, n_classes) served probabilities, (n,) labels)}, as held_out_probabilities gives them.
        inner: (n, width) inner features of that split's files (held_out.held_out_inner_features), or None.
        split: the split the bundle reports (held_out.evaluated_split), None when it trained on every file.
    """
    if split is None:
        logger.info(
            "no calibration or familiarity threshold: every file trained, none is held out to fit them on "
            "(python -m app calibrate can add them from other labelled files)"
        )
        return {}
    probabilities, labels = scored[split]
    if len(labels) < MIN_FILES:
        logger.info(
            "no calibration or familiarity threshold: the %s split has %d file(s), fewer than the %d they are "
            "fitted on",
            split, len(labels), MIN_FILES,
        )  # fmt: skip
        return {}
    return fit_trust(probabilities, labels, split, inner)
