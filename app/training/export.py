"""What a bundle ships: an uncompiled copy of the trained model (no optimizer state), its LiteRT flatbuffer (which
also outputs the inner features app.familiarity reads; app.litert_outputs) with the largest difference in
probability between the two on the same inputs, and the files written into the bundle folder."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import numpy as np

from app.litert_outputs import served_outputs
from app.logs import quiet_native_output
from app.model import as_model_input, build_network, to_tflite, with_features_output
from app.paths import KERAS_FILE, REPORT_FILE, TFLITE_FILE
from app.report import plot_report
from app.training.fit import FittedModel
from app.training.held_out import evaluated_split
from app.training.store import ExampleRows

PARITY_EXAMPLES = 32  # inputs the Keras and LiteRT models are compared on


@dataclass
class ExportedModel:
    """The serving model, its LiteRT bytes, and their largest absolute difference in probability."""

    serving_model: keras.Model
    tflite_bytes: bytes
    parity: float


def export_model(fitted: FittedModel, parity_features: np.ndarray | ExampleRows) -> ExportedModel:
    """The fitted weights in a fresh model and as LiteRT, compared on the first PARITY_EXAMPLES of the (n, …)
    parity features."""
    serving_model = build_network(fitted.network, fitted.input_shape, fitted.n_classes, fitted.mean, fitted.variance)
    serving_model.set_weights(fitted.model.get_weights())  # uncompiled: the saved file carries no optimizer state
    tflite_bytes = to_tflite(with_features_output(serving_model))
    inputs = as_model_input(parity_features[:PARITY_EXAMPLES]).astype(np.float32)
    return ExportedModel(serving_model, tflite_bytes, litert_parity(serving_model, tflite_bytes, inputs))


def litert_parity(model: keras.Model, tflite_bytes: bytes, inputs: np.ndarray) -> float:
    """Largest absolute difference between Keras and LiteRT probabilities on the same (batch, …) inputs."""
    from ai_edge_litert.interpreter import Interpreter

    with quiet_native_output():  # LiteRT prints an XNNPACK notice when it first allocates
        interpreter = Interpreter(model_content=tflite_bytes)
        input_index = interpreter.get_input_details()[0]["index"]
        interpreter.resize_tensor_input(input_index, list(inputs.shape))
        interpreter.allocate_tensors()
    interpreter.set_tensor(input_index, inputs)
    interpreter.invoke()
    litert = interpreter.get_tensor(served_outputs(interpreter).probabilities["index"])
    return float(np.max(np.abs(litert - model.predict(inputs, verbose=0))))


def write_model_files(
    exported: ExportedModel,
    history: dict[str, list[float]],
    metrics: dict[str, dict[str, Any]],
    class_names: Sequence[str],
    folder: Path,
    calibration: dict[str, Any] | None = None,
) -> None:
    """Write model.keras, model.tflite and report.png (curves, and the confusion matrix of the split
    held_out.evaluated_split names, if any, and the reliability diagram of the `calibration` metadata section, if
    any) into the folder; the folder comes after the positional arguments for functools.partial."""
    exported.serving_model.save(folder / KERAS_FILE)
    (folder / TFLITE_FILE).write_bytes(exported.tflite_bytes)
    evaluated_on = evaluated_split(metrics)
    plot_report(
        history, metrics.get(evaluated_on) if evaluated_on else None, class_names, evaluated_on, folder / REPORT_FILE,
        calibration,
    )  # fmt: skip
