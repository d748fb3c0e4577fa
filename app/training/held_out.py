"""Scores of a trained model on the held-out splits (test, then validation), predicted as the bundle will
serve: averaged over the serving views of each input (app.views)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from app.config import AudioConfig, ImageConfig
from app.evaluate import metrics_from_predictions
from app.model import as_model_input
from app.views import input_views

HELD_OUT_SPLITS = ("test", "validation")  # in this order: the first one present is the one a bundle reports


def held_out_metrics(
    model,
    arrays: dict[str, tuple[np.ndarray, np.ndarray]],
    serving: dict[str, Any],
    preprocessing: AudioConfig | ImageConfig,
    class_names: Sequence[str],
) -> dict[str, dict[str, Any]]:
    """{split: metrics_from_predictions(…)} for each of HELD_OUT_SPLITS with files, in that order; empty when
    the model trained on every file.

    Args:
        model: the trained keras.Model.
        arrays: {split: ((n, …) features, (n,) labels)}, as split_arrays gives them.
        serving: the bundle's "serving" metadata (app.views.serving_views).
        preprocessing: the run's AudioConfig (spectrograms shift in from its floor_db) or ImageConfig.
        class_names: the dataset's classes, in label order.
    """
    floor_db = preprocessing.floor_db if isinstance(preprocessing, AudioConfig) else 0.0
    metrics = {}
    for name in HELD_OUT_SPLITS:
        features, labels = arrays[name]
        if len(features):
            probabilities = predict_as_served(model, features, serving, floor_db)
            metrics[name] = metrics_from_predictions(labels, probabilities, class_names)
    return metrics


def evaluated_split(metrics: dict[str, dict[str, Any]]) -> str | None:
    """The split a bundle reports (its confusion matrix, "evaluated_on"): the first one held_out_metrics scored,
    or None when the model trained on every file."""
    return next(iter(metrics), None)


def predict_as_served(model, features: np.ndarray, serving: dict[str, Any], floor_db: float) -> np.ndarray:
    """(n, n_classes) probabilities of the Keras model for (n, …) features, averaged over the serving views, as
    the Predictor serves the bundle."""
    views = input_views(as_model_input(features).astype(np.float32), serving, floor_db)
    return np.mean([model.predict(view, verbose=0) for view in views], axis=0)
