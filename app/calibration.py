"""Calibration: scores a person can read as probabilities. One temperature T rescales a bundle's served
probabilities as softmax(log(p) / T) (temperature scaling, Guo et al. 2017): T > 1 softens an overconfident model,
T < 1 sharpens an underconfident one, and the top class never changes. T is fitted on held-out files by
minimising their negative log-likelihood; the expected calibration error (ECE) says how far the confidence is
from the accuracy, before and after.

The probabilities calibrated are the ones the Predictor serves, i.e. already averaged over the bundle's test-time
views (app.views).

Example (a classifier that says 99 % and is right 70 % of the time):
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> labels = rng.integers(0, 2, 1000)
    >>> predicted = np.where(rng.random(1000) < 0.7, labels, 1 - labels)
    >>> probabilities = np.where(np.eye(2)[predicted] == 1, 0.99, 0.01)
    >>> temperature = fit_temperature(probabilities, labels)
    >>> temperature > 1, round(expected_calibration_error(probabilities, labels), 2)
    (True, 0.3)
    >>> expected_calibration_error(apply_temperature(probabilities, temperature), labels) < 0.02
    True
"""

from __future__ import annotations

from typing import Any

import numpy as np

BINS = 15  # equal-width confidence bins of the expected calibration error
TEMPERATURE_BOUNDS = (0.05, 20.0)  # the search interval of fit_temperature
CHANCE_DRAWS = 200  # simulated label sets behind ece_by_chance
SMALLEST_PROBABILITY = 1e-12  # probabilities are clipped here before their log (LiteRT's softmax can give 0)


def _as_rows(probabilities: np.ndarray) -> np.ndarray:
    rows = np.asarray(probabilities, dtype=np.float64)
    if rows.ndim != 2 or rows.shape[1] == 0:
        raise ValueError(f"expected probabilities of shape (n_inputs, n_classes); received shape {rows.shape}")
    return rows


def _log_probabilities(probabilities: np.ndarray) -> np.ndarray:
    return np.log(np.clip(probabilities, SMALLEST_PROBABILITY, 1.0))


def _softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return shifted / shifted.sum(axis=-1, keepdims=True)


def _bin_of(confidence: np.ndarray, bins: int) -> np.ndarray:
    """The bin index of each confidence: bin i holds (i/bins, (i+1)/bins], bin 0 also holds 0."""
    return np.clip(np.ceil(confidence * bins).astype(np.int64) - 1, 0, bins - 1)


def apply_temperature(probabilities: np.ndarray, temperature: float) -> np.ndarray:
    """softmax(log(p) / T) of (n_classes,) or (n_inputs, n_classes) probabilities, in the input's float type.

    T == 1 returns the probabilities unchanged (the same array); the largest class of each row stays the largest.

    Raises:
        ValueError: T is not a positive finite number.
    """
    if not (np.isfinite(temperature) and temperature > 0):
        raise ValueError(f"expected a positive temperature; received {temperature}")
    if temperature == 1.0:
        return probabilities
    values = np.asarray(probabilities)
    scaled = _softmax(_log_probabilities(values.astype(np.float64)) / temperature)
    return scaled.astype(values.dtype) if np.issubdtype(values.dtype, np.floating) else scaled


def negative_log_likelihood(probabilities: np.ndarray, labels: np.ndarray, temperature: float = 1.0) -> float:
    """Mean -log p(true class) of (n, n_classes) probabilities after temperature scaling, in nats."""
    logits = _log_probabilities(_as_rows(probabilities)) / temperature
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_normaliser = np.log(np.exp(shifted).sum(axis=1))
    labels = np.asarray(labels, dtype=np.int64)
    return float(np.mean(log_normaliser - shifted[np.arange(len(labels)), labels]))


def fit_temperature(probabilities: np.ndarray, labels: np.ndarray) -> float:
    """The temperature in TEMPERATURE_BOUNDS that minimises the negative log-likelihood of the labels.

    Args:
        probabilities: (n, n_classes) served probabilities of held-out inputs.
        labels: (n,) their true classes.

    Returns:
        T, rounded to 4 decimals; 1.0 (scores unchanged) when the model gets every input right: such a set is fitted
        best by an ever smaller T, which would make every later answer look certain, so it says nothing about how
        sure the model should be.

    Raises:
        ValueError: no inputs, or labels that do not match the rows.
    """
    from scipy.optimize import minimize_scalar

    rows, labels = _as_rows(probabilities), np.asarray(labels, dtype=np.int64)
    if len(rows) == 0 or labels.shape != (len(rows),):
        raise ValueError(
            f"expected (n, n_classes) probabilities and (n,) labels, n ≥ 1; received {rows.shape}, {labels.shape}"
        )
    if np.all(np.argmax(rows, axis=1) == labels):
        return 1.0
    result = minimize_scalar(
        lambda temperature: negative_log_likelihood(rows, labels, temperature),
        bounds=TEMPERATURE_BOUNDS,
        method="bounded",
        options={"xatol": 1e-4},
    )
    return round(float(result.x), 4)


def reliability_bins(probabilities: np.ndarray, labels: np.ndarray, bins: int = BINS) -> dict[str, Any]:
    """What a reliability diagram draws: per equal-width confidence bin ((i/bins, (i+1)/bins], the first one
    including 0), the files in it, their mean confidence (highest probability) and their accuracy.

    Returns:
        {"edges": bins + 1 floats, "count": bins ints, "confidence": bins floats or None for an empty bin,
        "accuracy": likewise}, rounded to 5 decimals.
    """
    rows, labels = _as_rows(probabilities), np.asarray(labels, dtype=np.int64)
    confidence = rows.max(axis=1)
    correct = rows.argmax(axis=1) == labels
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = _bin_of(confidence, bins)
    counts = np.bincount(which, minlength=bins)
    confidence_sums = np.bincount(which, weights=confidence, minlength=bins)
    correct_sums = np.bincount(which, weights=correct.astype(np.float64), minlength=bins)

    def means(sums: np.ndarray) -> list[float | None]:
        return [round(float(s / c), 5) if c else None for s, c in zip(sums, counts, strict=True)]

    return {
        "edges": [round(float(edge), 5) for edge in edges],
        "count": [int(count) for count in counts],
        "confidence": means(confidence_sums),
        "accuracy": means(correct_sums),
    }


def expected_calibration_error(probabilities: np.ndarray, labels: np.ndarray, bins: int = BINS) -> float:
    """ECE: over equal-width confidence bins, |accuracy − mean confidence| weighted by the bin's share of files
    (0 = the confidence is the accuracy; 0.1 = ten points off on average). 0.0 for no files.

    Example:
        >>> import numpy as np
        >>> expected_calibration_error(np.array([[0.8, 0.2], [0.8, 0.2]]), np.array([0, 1]))  # says 80 %, right 50 %
        0.3
    """
    rows, labels = _as_rows(probabilities), np.asarray(labels, dtype=np.int64)
    if len(rows) == 0:
        return 0.0
    confidence = rows.max(axis=1)
    correct = (rows.argmax(axis=1) == labels).astype(np.float64)
    which = _bin_of(confidence, bins)
    correct_sums = np.bincount(which, weights=correct, minlength=bins)
    confidence_sums = np.bincount(which, weights=confidence, minlength=bins)
    return round(float(np.abs(correct_sums - confidence_sums).sum() / len(rows)), 5)


def ece_by_chance(probabilities: np.ndarray, bins: int = BINS, draws: int = CHANCE_DRAWS, seed: int = 0) -> float:
    """The ECE a perfectly calibrated model would still show on these scores and this many files: the mean ECE over
    `draws` label sets drawn from the (n, n_classes) probabilities themselves. A few hundred files leave a few
    points of ECE to chance alone (about 3.7 % for 470 spoken-word clips), so an ECE is read against this figure.

    Example:
        >>> import numpy as np
        >>> sure_and_right = np.tile([0.7, 0.3], (500, 1))
        >>> 0.01 < ece_by_chance(sure_and_right) < 0.04  # the share right wobbles around 70 % by chance
        True
    """
    rows = _as_rows(probabilities)
    if len(rows) == 0:
        return 0.0
    rows = rows / rows.sum(axis=1, keepdims=True)
    rng = np.random.default_rng(seed)
    cumulative = np.cumsum(rows, axis=1)
    errors = []
    for _ in range(draws):
        labels = (rng.random((len(rows), 1)) > cumulative).sum(axis=1).clip(max=rows.shape[1] - 1)
        errors.append(expected_calibration_error(rows, labels, bins))
    return round(float(np.mean(errors)), 5)
