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
from app.familiarity import STATISTIC, familiarity_scores, fit_threshold

MIN_FILES = 30  # fewer held-out files than this say too little about confidence: nothing is fitted
SHARE_BELOW = 0.05  # the share of held-out inputs the familiarity threshold flags

logger = logging.getLogger(__name__)


def fit_trust(probabilities: np.ndarray, labels: np.ndarray, fitted_on: str) -> dict[str, dict[str, Any]]:
    """The metadata sections {"calibration": …, "familiarity": …} fitted on labelled files the model did not
    train on.

    Args:
        probabilities: (n, n_classes) probabilities as the bundle serves them, before calibration.
        labels: (n,) true classes.
        fitted_on: what the files were, in words ("test", "validation", "held-out split of mnist" …).

    Returns:
        "calibration": method ("temperature"), temperature, fitted_on, files, ece_before and ece_after (15 bins,
        0–1), ece_by_chance (what a perfectly calibrated model would show on as many files; app.calibration) and
        "reliability" ({"before", "after"}: app.calibration.reliability_bins) for report.png;
        "familiarity": statistic, threshold, share_below_on_fitted (the share of these files below it), fitted_on,
        files.
    """
    labels = np.asarray(labels, dtype=np.int64)
    temperature = fit_temperature(probabilities, labels)
    calibrated = apply_temperature(np.asarray(probabilities, dtype=np.float64), temperature)
    scores = familiarity_scores(calibrated)
    threshold = fit_threshold(scores, SHARE_BELOW)
    files = int(len(labels))
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
        "familiarity": {
            "statistic": STATISTIC,
            "threshold": float(threshold),
            "share_below_on_fitted": round(float(np.mean(scores < threshold)), 5),
            "fitted_on": fitted_on,
            "files": files,
        },
    }


def trust_on_held_out(scored: dict[str, tuple[np.ndarray, np.ndarray]], split: str | None) -> dict[str, Any]:
    """fit_trust on the held-out split a bundle reports, or {} (logged at INFO, with the reason) when there is
    none or it has fewer than MIN_FILES files.

    Args:
        scored: {split: ((n, n_classes) served probabilities, (n,) labels)}, as held_out_probabilities gives them.
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
    return fit_trust(probabilities, labels, split)
