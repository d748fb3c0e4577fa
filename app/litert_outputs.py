"""Which output of a bundle's LiteRT model is which: its probabilities, and, in models exported since the
familiarity statistic of inner features (app.familiarity), the statistics of its first convolution's channels
(app.model.with_features_output).

The serving signature names them in the Keras model's order ("output_0" the probabilities, "output_1" the
features); the interpreter's own output list follows no such order. A model with one output (older bundles) has
probabilities only.

Example (a bundle shipped with the project):
    >>> from ai_edge_litert.interpreter import Interpreter
    >>> from app.paths import PROJECT_ROOT
    >>> interpreter = Interpreter(model_path=str(PROJECT_ROOT / "models" / "mnist" / "model.tflite"))
    >>> outputs = served_outputs(interpreter)
    >>> [int(size) for size in outputs.probabilities["shape_signature"]], outputs.features is not None
    ([-1, 10], True)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

SIGNATURE = "serving_default"
PROBABILITIES, FEATURES = "output_0", "output_1"


@dataclass(frozen=True)
class ServedOutputs:
    """The interpreter's output details of the probabilities and of the inner features (None when absent)."""

    probabilities: dict[str, Any]
    features: dict[str, Any] | None


def served_outputs(interpreter: Any) -> ServedOutputs:
    """The probabilities and features outputs of a LiteRT interpreter (ai_edge_litert.interpreter.Interpreter).

    Raises:
        ValueError: a model with several outputs whose serving signature does not name them output_0 and
            output_1, or with more than two.
    """
    details = interpreter.get_output_details()
    if len(details) == 1:
        return ServedOutputs(details[0], None)
    signatures = interpreter.get_signature_list()
    named = signatures.get(SIGNATURE, {}).get("outputs", [])
    if len(details) != 2 or sorted(named) != [PROBABILITIES, FEATURES]:
        raise ValueError(
            f"{len(details)} outputs named {named or 'nothing'}; expected one (probabilities) or two in the "
            f"{SIGNATURE} signature, {PROBABILITIES} (probabilities) and {FEATURES} (inner features)"
        )
    by_name = interpreter.get_signature_runner(SIGNATURE).get_output_details()
    by_index = {detail["index"]: detail for detail in details}
    return ServedOutputs(by_index[by_name[PROBABILITIES]["index"]], by_index[by_name[FEATURES]["index"]])
