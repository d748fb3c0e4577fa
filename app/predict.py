"""Serving: a bundle's LiteRT model behind `preprocess → forward → postprocess`. No TensorFlow import.

A bundle with a "calibration" section has its scores temperature-scaled (app.calibration; the top label never
changes); one with a "familiarity" threshold also says whether an input looks like its training data
(`assess`, app.familiarity), from its probabilities or, when the threshold is of the model's inner features, from
the activations its LiteRT model also outputs (app.litert_outputs). Bundles without them serve the raw softmax,
and `familiar` is None.

Example (with the shipped models/spoken-digits; a path or the bytes of a recording work as the array does):
    >>> import numpy as np
    >>> from app.paths import PROJECT_ROOT
    >>> predictor = Predictor.load(PROJECT_ROOT / "models" / "spoken-digits")
    >>> predictor.config.sample_rate, predictor.class_names[:3]
    (8000, ['0', '1', '2'])
    >>> hum = np.sin(2 * np.pi * 220 * np.arange(8000) / 8000).astype(np.float32)  # 1 s at the bundle's rate
    >>> answers = predictor(hum, top_k=2)  # [{'label': …, 'score': …}, {…}], highest score first
    >>> [sorted(answer) for answer in answers], answers[0]["score"] >= answers[1]["score"]
    ([['label', 'score'], ['label', 'score']], True)
    >>> assessed = predictor.assess(hum, top_k=2)  # the same answers, and whether the input looks familiar
    >>> assessed.predictions == answers, assessed.familiar in (True, False, None)
    (True, True)
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from app import familiarity
from app.audio import fit_window, load_waveform, log_mel_spectrogram
from app.bundle import read_metadata, verify_file
from app.bundle_schema import check_model_fits
from app.calibration import apply_temperature
from app.config import AudioConfig, ImageConfig, preprocessing_from_metadata
from app.content import check_content
from app.errors import BundleError
from app.images import load_image
from app.litert_outputs import served_outputs
from app.logs import quiet_native_output
from app.paths import SAMPLES_FOLDER, TFLITE_FILE
from app.views import input_views, serving_from_metadata

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Prediction:
    """One input's answers and how far to trust them.

    predictions: [{"label", "score"}, …], highest (calibrated) score first, as Predictor.__call__ gives them.
    familiar: whether the input looks like the bundle's training data (its familiarity score is at or above the
        bundle's threshold); None when the bundle has no threshold.
    familiarity_score: app.familiarity's score of the input (higher = more familiar).
    """

    predictions: list[dict[str, Any]]
    familiar: bool | None
    familiarity_score: float


FAMILIARITY_STATISTICS = (familiarity.STATISTIC, familiarity.FEATURE_STATISTIC)


def familiarity_threshold(metadata: dict[str, Any], name: str = "the bundle") -> float | None:
    """The bundle's familiarity threshold, or None when it has none, or one of a statistic this OnePipe does not
    compute (FAMILIARITY_STATISTICS; logged)."""
    section = metadata.get("familiarity")
    if not section or "threshold" not in section:
        return None
    if section.get("statistic") not in FAMILIARITY_STATISTICS:
        logger.info(
            "%s: its familiarity threshold is of the statistic %r, not one of %s: inputs are not flagged",
            name, section.get("statistic"), ", ".join(FAMILIARITY_STATISTICS),
        )  # fmt: skip
        return None
    return float(section["threshold"])


class Predictor:
    """A loaded bundle: call it with a path, bytes or an array to get sorted label scores."""

    def __init__(self, bundle_dir: Path, metadata: dict[str, Any], model_content: bytes):
        from ai_edge_litert.interpreter import Interpreter

        self.bundle_dir = Path(bundle_dir)
        self.name = self.bundle_dir.name
        self.metadata = metadata
        self.kind: str = metadata["kind"]
        self.class_names: list[str] = list(metadata["class_names"])
        self.config: AudioConfig | ImageConfig = preprocessing_from_metadata(metadata)
        with quiet_native_output():  # LiteRT prints an XNNPACK notice when it first allocates; allocate here
            self._interpreter = Interpreter(model_content=model_content, num_threads=1)
            # The model's header is read, its tensors not yet allocated: they must be what the metadata says.
            outputs = served_outputs(self._interpreter)
            check_model_fits(
                metadata, self._interpreter.get_input_details(), [outputs.probabilities], bundle_dir, outputs.features
            )
            self._interpreter.allocate_tensors()
        self._input = self._interpreter.get_input_details()[0]
        self._output = outputs.probabilities
        self._features_output = outputs.features  # None: a model that outputs probabilities only
        self._batch_size = 0
        # Answers averaged over views of the input, as the bundle's training chose (see input_views).
        self.serving: dict[str, Any] = serving_from_metadata(metadata, self.kind)
        self._floor_db = self.config.floor_db if isinstance(self.config, AudioConfig) else 0.0
        # softmax(log p / T) of the served probabilities; 1.0 (none) for bundles made without calibration
        self.temperature = float((metadata.get("calibration") or {}).get("temperature", 1.0))
        self.familiarity_threshold = familiarity_threshold(metadata, self.name)
        section = metadata.get("familiarity") or {}
        # the class centres and whitening of the inner features when the threshold is of them, as arrays once
        # here rather than from the metadata's lists at every prediction; else None
        self._gaussians = (
            {key: np.asarray(section[key], dtype=np.float64) for key in ("class_means", "whitening")}
            if section.get("statistic") == familiarity.FEATURE_STATISTIC
            else None
        )

    @classmethod
    def load(cls, bundle_dir: str | Path) -> Predictor:
        """Read a bundle, check its metadata.json against the schema (app.bundle_schema), verify its model's
        sha256, and prepare the LiteRT interpreter once the model's tensors match the metadata.

        Raises:
            BundleError: missing or altered files, a metadata field of the wrong type, out of bounds or not
                matching the model (the message names the file, the field, the value and what is allowed).
        """
        bundle_dir = Path(bundle_dir)
        metadata = read_metadata(bundle_dir)
        model_path = verify_file(bundle_dir, metadata, TFLITE_FILE)
        try:
            return cls(bundle_dir, metadata, model_path.read_bytes())
        except ValueError as error:
            raise BundleError(f"{model_path} is not a valid LiteRT model ({error})") from None

    @property
    def samples_dir(self) -> Path:
        """Example inputs shipped with the bundle: samples/<class>/<file>."""
        return self.bundle_dir / SAMPLES_FOLDER

    def preprocess(self, source: Any) -> np.ndarray:
        """Features as the model sees them: (time, n_mels) float32 dB for audio, (h, w, c) uint8 for images.

        Raises:
            InputError: unreadable, empty, silent or wrong-type input, with what was expected.
        """
        if isinstance(self.config, AudioConfig):
            waveform = load_waveform(source, self.config)
            check_content(waveform, "audio")  # silence or a constant offset: training skips such clips too
            return log_mel_spectrogram(fit_window(waveform, self.config), self.config)
        image = load_image(source, self.config)
        check_content(image, "image")  # one flat colour
        return image

    def predict_features(self, features: np.ndarray, calibrated: bool = True) -> np.ndarray:
        """Probabilities (n_classes,) for one example, or (batch, n_classes) for a batch of features, averaged over
        the serving views, then temperature-scaled unless `calibrated` is False (the raw softmax)."""
        return self.served(features, calibrated)[0]

    def served(self, features: np.ndarray, calibrated: bool = True) -> tuple[np.ndarray, np.ndarray | None]:
        """predict_features' probabilities, and the model's inner features averaged over the same views:
        (n_classes,) and (width,) for one example, (batch, …) for a batch; the features are None for a model that
        outputs probabilities only."""
        batch = np.asarray(features, dtype=np.float32)
        single = batch.ndim == len(self._input["shape"]) - 1 - (1 if self.kind == "audio" else 0)
        if single:
            batch = batch[None]
        if self.kind == "audio" and batch.ndim == 3:
            batch = batch[..., None]
        views = input_views(batch, self.serving, self._floor_db)
        raw, raw_inner = self._forward(np.concatenate(views))
        probabilities = raw.reshape(len(views), len(batch), -1).mean(axis=0)  # the views' average
        inner = None if raw_inner is None else raw_inner.reshape(len(views), len(batch), -1).mean(axis=0)
        if calibrated:
            probabilities = apply_temperature(probabilities, self.temperature)
        return (probabilities[0], None if inner is None else inner[0]) if single else (probabilities, inner)

    def familiarity_scores(self, probabilities: np.ndarray, inner: np.ndarray | None) -> np.ndarray:
        """The familiarity score of each input under the bundle's statistic: of its calibrated probabilities, or of
        its inner features when the bundle's threshold is of them. (n,) from (n, n_classes) and (n, width); one
        (n_classes,) row gives (1,).

        Raises:
            ValueError: the bundle's statistic reads inner features and `inner` is None.
        """
        if self._gaussians is None:
            return familiarity.familiarity_scores(probabilities)
        if inner is None:
            raise ValueError(f"{self.name} scores familiarity on the model's inner features; none were given")
        return familiarity.feature_scores(inner, self._gaussians)

    def is_familiar(self, probabilities: np.ndarray, inner: np.ndarray | None = None) -> bool | None:
        """Whether one input's (n_classes,) calibrated probabilities, with its (width,) inner features where the
        bundle's statistic reads them (served), look like the training data; None when the bundle has no
        familiarity threshold."""
        if self.familiarity_threshold is None:
            return None
        score = float(self.familiarity_scores(probabilities, inner)[0])
        return familiarity.is_familiar(score, self.familiarity_threshold)

    def _forward(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """One LiteRT call on a (batch, *input_shape) float32 array: (batch, n_classes) probabilities and the
        (batch, width) inner features (None for a model without them)."""
        if batch.shape[0] != self._batch_size:
            self._interpreter.resize_tensor_input(self._input["index"], list(batch.shape))
            self._interpreter.allocate_tensors()
            self._batch_size = batch.shape[0]
        self._interpreter.set_tensor(self._input["index"], batch)
        self._interpreter.invoke()
        probabilities = self._interpreter.get_tensor(self._output["index"]).copy()
        if self._features_output is None:
            return probabilities, None
        return probabilities, self._interpreter.get_tensor(self._features_output["index"]).copy()

    def postprocess(self, probabilities: np.ndarray, top_k: int = 5) -> list[dict[str, Any]]:
        """[{"label", "score"}, …] for the top_k classes, highest score first."""
        order = np.argsort(-probabilities, kind="stable")[: max(1, top_k)]
        return [{"label": self.class_names[i], "score": float(probabilities[i])} for i in order]

    def __call__(self, source: Any, top_k: int = 5) -> list[dict[str, Any]]:
        """Predict one input: a path, bytes, or an array (audio waveform at the bundle's rate, or an image)."""
        return self.postprocess(self.predict_features(self.preprocess(source)), top_k)

    def assess(self, source: Any, top_k: int = 5) -> Prediction:
        """Predict one input as __call__ does, and say whether it looks like the training data (see Prediction)."""
        probabilities, inner = self.served(self.preprocess(source))
        score = float(self.familiarity_scores(probabilities, inner)[0])
        threshold = self.familiarity_threshold
        familiar = None if threshold is None else familiarity.is_familiar(score, threshold)
        return Prediction(self.postprocess(probabilities, top_k), familiar, score)

    def explain(self, source: Any, label: str | None = None):
        """Where the model looked: an app.explain.Explanation whose `map` (the input's (time, n_mels) or (height,
        width), 0..1) says how much masking each region lowered the score of `label` (default: the top label).
        Occlusion with this LiteRT model, on the plain view of the input (no test-time views); see app.explain.

        Raises:
            InputError: as for a prediction. ValueError: `label` is not one of the bundle's classes.
        """
        from app.explain import explain_input

        return explain_input(self, source, lambda batch: self._forward(batch)[0], label)
