"""Familiarity: whether an input looks like what a bundle was trained on, from its served probabilities alone.

A statistic of the probabilities the Predictor serves (averaged over its test-time views, then temperature
scaled) scores each input, higher meaning more like the training data. A threshold is fitted on the bundle's
own held-out inputs so that about `share_below` of them (5 %) fall below it; an input scoring below the
threshold is reported as unfamiliar ("This does not look like anything this model was trained on").

The statistic (STATISTIC) is the highest calibrated probability, the top score a person sees, so that a flag
reads "the model is less than X % sure". Why: with thresholds that flag 5 % of held-out inputs, no other
statistic of the probabilities (STATISTICS) changes whether a target is met: `mnist` flags 90.9 % of CIFAR-10
photos (entropy 91.0 %, margin 89.7 %) and 5.1 % of unseen digits, `spoken-digits` 23 % of spoken words that
are not digits (entropy 30 %, margin 17 %: all short of 70 %) and `cifar10` 7 % of MNIST digits (all 5–8 %),
as measured by `benchmarks/familiarity.py`.

Example (a 3-class model; the threshold fitted on twenty held-out inputs it is sure of):
    >>> import numpy as np
    >>> top = np.linspace(0.80, 0.99, 20)[:, None]
    >>> held_out = np.hstack([top, (1 - top) * 0.75, (1 - top) * 0.25])  # (20, 3): 80–99 % on one class
    >>> threshold = fit_threshold(familiarity_scores(held_out), share_below=0.05)
    >>> round(threshold, 4)
    0.8095
    >>> new_inputs = np.array([[0.05, 0.9, 0.05], [0.4, 0.35, 0.25]])  # a clear answer; probability spread out
    >>> [is_familiar(score, threshold) for score in familiarity_scores(new_inputs)]
    [True, False]
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

STATISTIC = "max_score"  # the statistic's name, stored with the threshold in a bundle's metadata.json


def max_score(probabilities: np.ndarray) -> np.ndarray:
    """The highest class probability of each (n_inputs, n_classes) row: 1/n_classes (flat) to 1 (one class)."""
    return probabilities.max(axis=1)


def negative_entropy(probabilities: np.ndarray) -> np.ndarray:
    """Σ p log p of each row, in nats: −log(n_classes) (flat) to 0 (one class)."""
    return np.sum(probabilities * np.log(np.clip(probabilities, 1e-12, 1.0)), axis=1)


def margin(probabilities: np.ndarray) -> np.ndarray:
    """The highest probability minus the second highest of each row: 0 (a tie) to 1 (one class)."""
    if probabilities.shape[1] == 1:
        return probabilities[:, 0]
    top_two = np.sort(probabilities, axis=1)[:, -2:]
    return top_two[:, 1] - top_two[:, 0]


# The candidate statistics, each higher for an input more like the training data; STATISTIC is the one served.
STATISTICS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "max_score": max_score,
    "negative_entropy": negative_entropy,
    "margin": margin,
}


def familiarity_scores(probabilities: np.ndarray, statistic: str = STATISTIC) -> np.ndarray:
    """The familiarity score of each input (STATISTIC unless another of STATISTICS is named).

    Args:
        probabilities: (n_inputs, n_classes) served probabilities, each row summing to 1 (a single
            (n_classes,) row is taken as one input).
        statistic: a name of STATISTICS.

    Returns:
        (n_inputs,) float64 scores, higher = more like the training data.

    Raises:
        ValueError: not a 1-D or 2-D array with at least one class, or an unknown statistic.
    """
    rows = np.asarray(probabilities, dtype=np.float64)
    if rows.ndim == 1:
        rows = rows[None]
    if rows.ndim != 2 or rows.shape[1] == 0:
        raise ValueError(f"expected probabilities of shape (n_inputs, n_classes); received shape {rows.shape}")
    if statistic not in STATISTICS:
        raise ValueError(f"expected a familiarity statistic of {sorted(STATISTICS)}; received {statistic!r}")
    return STATISTICS[statistic](rows)


def fit_threshold(scores: np.ndarray, share_below: float = 0.05) -> float:
    """The score below which about `share_below` of in-distribution inputs fall.

    Args:
        scores: (n_inputs,) familiarity scores of held-out inputs of the classes the bundle knows.
        share_below: the share of those inputs that should be flagged as unfamiliar, in [0, 1).

    Returns:
        The `share_below` quantile of the scores (linear interpolation), as a float.

    Raises:
        ValueError: no scores, a score that is not finite, or `share_below` outside [0, 1).
    """
    values = np.asarray(scores, dtype=np.float64).ravel()
    if values.size == 0:
        raise ValueError("expected at least one held-out score to fit a familiarity threshold; received none")
    if not np.all(np.isfinite(values)):
        raise ValueError("expected finite familiarity scores; received NaN or infinity")
    if not 0.0 <= share_below < 1.0:
        raise ValueError(f"expected share_below in [0, 1); received {share_below}")
    return float(np.quantile(values, share_below))


def is_familiar(score: float, threshold: float) -> bool:
    """Whether an input's score is at or above the bundle's threshold (below it: unlike the training data)."""
    return bool(score >= threshold)
