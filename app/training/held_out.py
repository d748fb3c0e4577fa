"""Scores of a trained model on the held-out splits (test, then validation), predicted as the bundle will
serve: averaged over the serving views of each input (app.views). The same probabilities give the held-out
metrics and fit the calibration (app.training.trust)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from app.config import AudioConfig, ImageConfig
from app.evaluate import metrics_from_predictions
from app.model import as_model_input
from app.views import input_views

HELD_OUT_SPLITS = ("test", "validation")  # in this order: the first one present is the one a bundle reports


def held_out_probabilities(
    model,
    arrays: dict[str, tuple[np.ndarray, np.ndarray]],
    serving: dict[str, Any],
    preprocessing: AudioConfig | ImageConfig,
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """{split: ((n, n_classes) probabilities as served, (n,) labels)} for each of HELD_OUT_SPLITS with files, in
    that order; empty when the model trained on every file.

    Args:
        model: the trained keras.Model.
        arrays: {split: ((n, …) features, (n,) labels)}, as split_arrays gives them.
        serving: the bundle's "serving" metadata (app.views.serving_views).
        preprocessing: the run's AudioConfig (spectrograms shift in from its floor_db) or ImageConfig.
    """
    floor_db = preprocessing.floor_db if isinstance(preprocessing, AudioConfig) else 0.0
    scored = {}
    for name in HELD_OUT_SPLITS:
        features, labels = arrays[name]
        if len(features):
            scored[name] = predict_as_served(model, features, serving, floor_db), np.asarray(labels)
    return scored


def held_out_metrics(
    scored: dict[str, tuple[np.ndarray, np.ndarray]], class_names: Sequence[str]
) -> dict[str, dict[str, Any]]:
    """{split: metrics_from_predictions(…)} for each split of held_out_probabilities(…), in the same order.

    Example:
        >>> scored = {"test": (np.array([[0.9, 0.1], [0.3, 0.7]]), np.array([0, 0]))}
        >>> held_out_metrics(scored, ["cat", "dog"])["test"]["accuracy"]
        0.5
    """
    return {
        name: metrics_from_predictions(labels, probabilities, class_names)
        for name, (probabilities, labels) in scored.items()
    }


def evaluated_split(metrics: dict[str, dict[str, Any]]) -> str | None:
    """The split a bundle reports (its confusion matrix, "evaluated_on"; its calibration is fitted on it): the
    first one held_out_metrics scored, or None when the model trained on every file."""
    return next(iter(metrics), None)


def held_out_inner_features(
    model,
    arrays: dict[str, tuple[np.ndarray, np.ndarray]],
    split: str | None,
    serving: dict[str, Any],
    preprocessing: AudioConfig | ImageConfig,
    kind: str,
) -> np.ndarray | None:
    """(n, width) inner features of the Keras model (app.model.with_features_output) for the files of `split`,
    averaged over the serving views as Predictor.served gives them from the bundle; None when the familiarity
    threshold cannot be of them (no split, a kind outside FEATURE_STATISTIC_KINDS, or fewer than
    FEATURE_MIN_FILES_PER_CLASS files per class on average), so that nothing is computed for nothing.

    Args:
        model: the trained keras.Model; arrays: {split: ((n, …) features, (n,) labels)}, as split_arrays gives
            them; split: the split the bundle reports (evaluated_split); serving: its "serving" metadata;
            preprocessing: the run's AudioConfig or ImageConfig; kind: "audio" or "image".
    """
    from app.model import with_features_output
    from app.training.trust import FEATURE_MIN_FILES_PER_CLASS, FEATURE_STATISTIC_KINDS

    if split is None or kind not in FEATURE_STATISTIC_KINDS:
        return None
    features, labels = arrays[split]
    if len(labels) < FEATURE_MIN_FILES_PER_CLASS * len(np.unique(labels)):
        return None
    floor_db = preprocessing.floor_db if isinstance(preprocessing, AudioConfig) else 0.0
    with_features = with_features_output(model)
    views = input_views(as_model_input(features).astype(np.float32), serving, floor_db)
    return np.mean([with_features.predict(view, verbose=0)[1] for view in views], axis=0)


def predict_as_served(model, features: np.ndarray, serving: dict[str, Any], floor_db: float) -> np.ndarray:
    """(n, n_classes) probabilities of the Keras model for (n, …) features, averaged over the serving views, as
    the Predictor serves the bundle."""
    views = input_views(as_model_input(features).astype(np.float32), serving, floor_db)
    return np.mean([model.predict(view, verbose=0) for view in views], axis=0)
