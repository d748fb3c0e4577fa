"""Familiarity: whether an input looks like what a bundle was trained on.

A statistic scores each input, higher meaning more like the training data. A threshold is fitted on the bundle's
own held-out inputs so that about `share_below` of them (5 %) fall below it; an input scoring below the
threshold is reported as unfamiliar ("This does not look like anything this model was trained on").

Two statistics, named in the bundle's metadata:
- STATISTIC, the highest calibrated probability (of the probabilities the Predictor serves, averaged over its
  test-time views, then temperature scaled), so that a flag reads "the model is less than X % sure". No other
  statistic of the probabilities (STATISTICS) changes whether a target is met: `mnist` flags 90.9 % of CIFAR-10
  photos (entropy 91.0 %, margin 89.7 %) and 5.1 % of unseen digits, but `cifar10` only 7 % of MNIST digits and
  `spoken-digits` 23 % of spoken words that are not digits (all 5–8 % and 17–30 %), as measured by
  `benchmarks/familiarity.py`: those models are as sure of such inputs as of their own classes.
- FEATURE_STATISTIC, minus the squared Mahalanobis distance to the nearest class centre (feature_scores) in the
  means and standard deviations of the model's first-layer channels, which its LiteRT model also outputs
  (app.model.with_features_output). They say what an input is made of rather than which class it is: `cifar10`
  flags every MNIST digit and 5 % of unseen photos, `mnist` every CIFAR-10 photo. They also follow the level and
  the room of a recording, so sounds keep the top probability (app.training.trust.FEATURE_STATISTIC_KINDS).

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
from typing import Any

import numpy as np

STATISTIC = "max_score"  # the statistic's name, stored with the threshold in a bundle's metadata.json
FEATURE_STATISTIC = "first_layer_mahalanobis"  # of the first convolution's channel statistics (feature_scores)
SHRINKAGE = 0.1  # share of the shared covariance replaced by its mean variance times the identity


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


# --- the model's inner features: distance to the nearest class centre --------------------------------------


def fit_class_gaussians(features: np.ndarray, labels: np.ndarray, n_classes: int) -> dict[str, list]:
    """Class centres and a shared whitening of a model's inner features (Lee et al. 2018, "A simple unified
    framework for detecting out-of-distribution samples"), for feature_scores.

    Args:
        features: (n, d) the model's inner features (app.model.with_features_output), for inputs of the bundle's
            classes.
        labels: (n,) their classes, 0 .. n_classes − 1; every class needs at least one input.
        n_classes: the bundle's number of classes.

    Returns:
        {"class_means": (n_classes, d) nested lists, "whitening": (d, d) nested lists W with W Σ Wᵀ = I for the
        within-class covariance Σ, shrunk by SHRINKAGE towards its mean variance so that it inverts}.

    Raises:
        ValueError: not (n, d) features with as many labels, a class with no input, or values that are not finite.
    """
    rows = np.asarray(features, dtype=np.float64)
    classes = np.asarray(labels, dtype=np.int64)
    if rows.ndim != 2 or len(rows) != len(classes) or rows.shape[1] == 0:
        raise ValueError(f"expected (n, d) features and n labels; received {rows.shape} and {classes.shape}")
    if not np.all(np.isfinite(rows)):
        raise ValueError("expected finite features; received NaN or infinity")
    missing = sorted(set(range(n_classes)) - set(classes.tolist()))
    if missing:
        raise ValueError(f"expected inputs of every class to fit the class centres; classes {missing} have none")
    means = np.stack([rows[classes == c].mean(axis=0) for c in range(n_classes)])
    centred = rows - means[classes]
    covariance = centred.T @ centred / len(rows)
    scale = max(float(np.trace(covariance)) / covariance.shape[0], 1e-12)
    covariance = (1 - SHRINKAGE) * covariance + SHRINKAGE * scale * np.eye(covariance.shape[0])
    eigenvalues, eigenvectors = np.linalg.eigh(covariance)
    whitening = (eigenvectors / np.sqrt(eigenvalues)).T  # rows: the covariance's axes, scaled to unit variance
    return {
        "class_means": np.round(means, 6).tolist(),
        "whitening": np.round(whitening, 6).tolist(),
    }


def feature_scores(features: np.ndarray, gaussians: dict[str, Any]) -> np.ndarray:
    """Minus the squared Mahalanobis distance of each input's inner features to the nearest class centre.

    Args:
        features: (n, d) the model's inner features (a single (d,) row is one input).
        gaussians: fit_class_gaussians' "class_means" (n_classes, d) and "whitening" (d, d), as nested lists or
            arrays.

    Returns:
        (n,) float64 scores ≤ 0, higher (nearer 0) = more like the training data.

    Raises:
        ValueError: features whose width differs from the centres'.
    """
    rows = np.asarray(features, dtype=np.float64)
    if rows.ndim == 1:
        rows = rows[None]
    means = np.asarray(gaussians["class_means"], dtype=np.float64)
    whitening = np.asarray(gaussians["whitening"], dtype=np.float64)
    if rows.ndim != 2 or rows.shape[1] != means.shape[1]:
        raise ValueError(f"expected features of width {means.shape[1]}; received shape {rows.shape}")
    whitened = rows @ whitening.T  # (n, d)
    centres = means @ whitening.T  # (n_classes, d)
    distances = ((whitened[:, None, :] - centres[None, :, :]) ** 2).sum(axis=2)  # (n, n_classes)
    return -distances.min(axis=1)
