"""Where the model looked: occlusion sensitivity, computed with the bundle's LiteRT model (no TensorFlow, no
gradients).

Each region of the model input is masked in turn (set to what an empty input holds there) and the model asked
again; the map says how much the score of the explained label fell. Regions are patches of about 1/8 of each
side of the input, moved by half a patch, so an input costs about 15 × 15 masked copies whatever its size (at
most 19 a side), answered in batches. Each value of the input gets the mean fall of the patches covering it
(so the map has the input's size), negative falls (the masked copy scored higher) count as 0, and the map is
scaled so that its largest value is 1.

What "empty" means (the mask value):
    - spectrograms: floor_db, the level of silence (-top_db dB). A bundle that removes each mel band's mean
      (subtract_band_mean) has each masked copy's band means removed again, as if that part of the recording
      had been silent.
    - images: 0 for a bundle of light strokes on a dark background (background "dark", e.g. MNIST), 255 for
      dark strokes on a light one, otherwise the image's own mean colour (per channel).

Only the plain view of the input is explained: a bundle that averages test-time views (moved or mirrored
copies, see app.views) answers with their average, but the map shows the drops of the unmoved input alone.
The scores are the model's own probabilities.

Example (with the shipped models/mnist):
    >>> import numpy as np
    >>> from app.paths import PROJECT_ROOT
    >>> from app.predict import Predictor
    >>> predictor = Predictor.load(PROJECT_ROOT / "models" / "mnist")
    >>> digit = np.zeros((28, 28), np.uint8)
    >>> digit[4:24, 13:16] = 255  # a one
    >>> explanation = predictor.explain(digit)
    >>> explanation.map.shape, explanation.map.dtype, float(explanation.map.max()), explanation.masked_inputs
    ((28, 28), dtype('float32'), 1.0, 169)
    >>> explanation.label == predictor(digit)[0]["label"]
    True
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from app.audio import fit_window, load_waveform, log_mel_spectrogram
from app.config import AudioConfig, ImageConfig

if TYPE_CHECKING:
    from app.predict import Predictor

PATCH_FRACTION = 1 / 8  # a masked patch is about this share of each side of the input
BATCH_SIZE = 16  # masked inputs per model call: ~0.5 MB of activations a copy for a 97 × 40 spectrogram
MAX_BATCH_VALUES = 2_000_000  # and at most this many input values per call, for large images
LEGEND = "Brighter: masking this part lowered the score of {label} most"

Forward = Callable[[np.ndarray], np.ndarray]  # (batch, height, width, channels) float32 → (batch, n_classes)


@dataclass(frozen=True)
class Explanation:
    """Where the model looked for one input.

    Attributes:
        map: (height, width) float32, 0..1: how much masking the region around each value of the input lowered
            the score of `label`, relative to the largest fall. (time, n_mels) for a spectrogram.
        label: the class explained (by default the top label of the prediction).
        score: the model's probability for `label` on the unmasked input (plain view), 0..1.
        largest_drop: the largest fall of that probability over all masked copies, 0..1 (0 when no mask
            lowered it; `map` is then all 0).
        features: the input the model saw: (time, n_mels) float32 dB, or (height, width, channels) uint8.
        kind: "audio" or "image".
        patch: (height, width) of a masked patch, in input values (frames and mel bands for audio).
        stride: (down, across) step between patches.
        masked_inputs: how many masked copies the model answered for.
    """

    map: np.ndarray
    label: str
    score: float
    largest_drop: float
    features: np.ndarray
    kind: str
    patch: tuple[int, int]
    stride: tuple[int, int]
    masked_inputs: int

    @property
    def legend(self) -> str:
        """One line on how to read the map: "Brighter: masking this part lowered the score of <label> most"."""
        return LEGEND.format(label=self.label)

    def overlay_png(self) -> bytes:
        """The picture of the input with the map blended in and the legend under it, as PNG bytes (see
        app.pictures.overlay_png)."""
        from app.pictures import overlay_png

        return overlay_png(self.features, self.map, spectrogram=self.kind == "audio", caption=self.legend)


@dataclass(frozen=True)
class Occlusion:
    """What `occlusion_map` measured: the normalised map and the numbers behind it."""

    map: np.ndarray  # (height, width) float32, 0..1
    score: float  # probability of the class on the unmasked input
    largest_drop: float  # largest fall of that probability, ≥ 0
    patch: tuple[int, int]
    stride: tuple[int, int]
    masked_inputs: int


def patch_starts(size: int, fraction: float = PATCH_FRACTION) -> tuple[int, int, list[int]]:
    """Patch length, stride and start positions along one side of `size` values: a patch of about `fraction`
    of the side (at least 1), moved by half a patch (rounded up), the last one ending at the edge.

    Example:
        >>> patch_starts(28)  # MNIST's 28 px: 4-px patches every 2 px
        (4, 2, [0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24])
        >>> patch_starts(5)[2]
        [0, 1, 2, 3, 4]
    """
    patch = min(size, max(1, round(size * fraction)))
    stride = max(1, math.ceil(patch / 2))
    starts = list(range(0, size - patch + 1, stride))
    if starts[-1] != size - patch:
        starts.append(size - patch)
    return patch, stride, starts


def occlusion_map(
    forward: Forward,
    model_input: np.ndarray,
    class_index: int,
    empty_value: float | np.ndarray,
    patch_fraction: float = PATCH_FRACTION,
    finish: Callable[[np.ndarray], np.ndarray] | None = None,
    batch_size: int = BATCH_SIZE,
) -> Occlusion:
    """Occlusion sensitivity of one input for one class.

    Args:
        forward: the model: (batch, height, width, channels) float32 → (batch, n_classes) probabilities.
        model_input: (height, width, channels) values as the model takes them.
        class_index: the output whose fall is measured.
        empty_value: what a masked patch holds: a number, or one per channel (channels,).
        patch_fraction: patch side as a share of the input's side.
        finish: applied to each batch, the unmasked input included, after masking (e.g. removing band means).
        batch_size: inputs per model call; every call gets this many (the last one padded), so an interpreter
            resized once keeps its size.

    Returns:
        An Occlusion whose map is (height, width): each value the mean fall of the patches covering it, negative
        falls as 0, divided by the largest (all 0 when nothing fell).
    """
    base = np.asarray(model_input, np.float32)
    height, width = base.shape[:2]
    patch_height, stride_down, rows = patch_starts(height, patch_fraction)
    patch_width, stride_across, columns = patch_starts(width, patch_fraction)
    patches = [(top, left) for top in rows for left in columns]
    empty = np.broadcast_to(np.asarray(empty_value, np.float32), base.shape[2:])
    batch_size = max(1, min(batch_size, MAX_BATCH_VALUES // max(1, base.size), len(patches) + 1))

    scores = []
    for batch in _masked_batches(base, [None, *patches], (patch_height, patch_width), empty, batch_size):
        if finish is not None:
            batch = finish(batch)
        scores.append(np.asarray(forward(batch), np.float64)[:, class_index])
    answered = np.concatenate(scores)[: len(patches) + 1]
    score, drops = float(answered[0]), np.maximum(answered[0] - answered[1:], 0.0)

    total, count = np.zeros((height, width)), np.zeros((height, width))
    for (top, left), drop in zip(patches, drops, strict=True):
        total[top : top + patch_height, left : left + patch_width] += drop
        count[top : top + patch_height, left : left + patch_width] += 1
    mean_drop = total / count
    peak = float(mean_drop.max())
    sensitivity = (mean_drop / peak if peak > 0 else np.zeros_like(mean_drop)).astype(np.float32)
    return Occlusion(
        sensitivity, score, float(drops.max()), (patch_height, patch_width), (stride_down, stride_across), len(patches)
    )


def _masked_batches(
    base: np.ndarray, patches: list[tuple[int, int] | None], size: tuple[int, int], empty: np.ndarray, batch_size: int
) -> Iterator[np.ndarray]:
    """Batches (batch_size, *base.shape) of copies of `base`, each with one patch (top, left) set to `empty`
    (None: left whole); the last batch is padded with whole copies."""
    for start in range(0, len(patches), batch_size):
        chosen = patches[start : start + batch_size]
        batch = np.repeat(base[None], batch_size, axis=0)
        for row, patch in enumerate(chosen):
            if patch is not None:
                top, left = patch
                batch[row, top : top + size[0], left : left + size[1]] = empty
        yield batch


def explain_input(
    predictor: Predictor,
    source: Any,
    forward: Forward,
    label: str | None = None,
    patch_fraction: float = PATCH_FRACTION,
) -> Explanation:
    """Where the predictor's model looked in one input (see the module's docstring for the method).

    Args:
        predictor: a loaded app.predict.Predictor.
        source: what Predictor takes: a path, bytes, an audio waveform or an image array.
        forward: the model on the plain view, (batch, *input_shape) float32 → (batch, n_classes).
        label: the class to explain; default the predictor's top label for this input.
        patch_fraction: patch side as a share of the input's side.

    Raises:
        app.errors.InputError: the input cannot be read or predicted (as Predictor says).
        ValueError: `label` is not one of the bundle's classes.
    """
    features = predictor.preprocess(source)
    if label is None:
        label = predictor.class_names[int(np.argmax(predictor.predict_features(features)))]
    if label not in predictor.class_names:
        raise ValueError(f"{label!r} is not a class of {predictor.name}; expected one of {predictor.class_names}")
    model_input, empty_value, finish = _what_to_mask(predictor.config, features, source)
    occlusion = occlusion_map(
        forward, model_input, predictor.class_names.index(label), empty_value, patch_fraction, finish
    )
    return Explanation(
        map=occlusion.map,
        label=label,
        score=occlusion.score,
        largest_drop=occlusion.largest_drop,
        features=features,
        kind=predictor.kind,
        patch=occlusion.patch,
        stride=occlusion.stride,
        masked_inputs=occlusion.masked_inputs,
    )


def _what_to_mask(
    config: AudioConfig | ImageConfig, features: np.ndarray, source: Any
) -> tuple[np.ndarray, float | np.ndarray, Callable[[np.ndarray], np.ndarray] | None]:
    """The (height, width, channels) input to mask, the empty value and the step after masking, for a bundle's
    preprocessing."""
    if isinstance(config, ImageConfig):
        image = np.asarray(features, np.float32)
        if config.background in ("dark", "light"):
            return image, 0.0 if config.background == "dark" else 255.0, None
        return image, image.mean(axis=(0, 1)), None
    if not config.subtract_band_mean:
        return np.asarray(features, np.float32)[..., None], config.floor_db, None
    # Band means were removed from the features; mask the spectrogram before that, then remove them again.
    plain = log_mel_spectrogram(
        fit_window(load_waveform(source, config), config), dataclasses.replace(config, subtract_band_mean=False)
    )
    return plain[..., None], config.floor_db, _remove_band_means


def _remove_band_means(batch: np.ndarray) -> np.ndarray:
    """(batch, time, n_mels, 1) spectrograms less each mel band's mean over time."""
    return batch - batch.mean(axis=1, keepdims=True)
