"""Test-time views: the moved (and mirrored) copies of an input whose answers a trained bundle averages.

Training records which views to average in the bundle's `serving` metadata (`serving_views`); serving reads it
back (`serving_from_metadata`) and builds them from a batch of model inputs (`input_views`). Every view stays
within the training augmentation. `shift_with_fill` moves an array without wrapping around, for the views and
for training's shifted waveforms and spectrograms.

Example:
    >>> import numpy as np
    >>> from app.config import ImageConfig
    >>> serving_pixel_shifts(ImageConfig(image_size=(32, 32)))[:2]
    [[2, 0], [-2, 0]]
    >>> images = np.zeros((1, 32, 32, 3), np.float32)
    >>> len(input_views(images, {"pixel_shifts": [[2, 0]], "average_mirrored": True}))
    4
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from app.bundle_schema import SERVING
from app.config import AudioConfig, ImageConfig, TrainConfig
from app.paths import METADATA_FILE


def serving_views(preprocessing: AudioConfig | ImageConfig, train_config: TrainConfig) -> dict[str, Any]:
    """The bundle's `serving` metadata: which views of an input are averaged, all within the training
    augmentation. An audio clip shifted in time (training shifts spectrograms by up to a tenth of the
    window); an image moved a few pixels (no further than its training moves), and both its mirrors when trained
    on mirrors."""
    augmented = train_config.augment
    if isinstance(preprocessing, AudioConfig):
        shifts = serving_time_shifts(preprocessing) if augmented else []
        return {"average_mirrored": False, "time_shift_frames": shifts, "pixel_shifts": []}
    return {
        "average_mirrored": augmented and train_config.horizontal_flip,
        "time_shift_frames": [],
        "pixel_shifts": serving_pixel_shifts(preprocessing, train_config.translation) if augmented else [],
    }


def serving_from_metadata(metadata: dict[str, Any], kind: str, source: str | Path = METADATA_FILE) -> dict[str, Any]:
    """A bundle's `serving` metadata with every key present, and only the views of its kind: for an "audio"
    bundle, "time_shift_frames" (whole frames); for an "image" bundle, "pixel_shifts" ([dy, dx] whole pixels) and
    "average_mirrored". A bundle without `serving` (older ones) averages no views.

    The section is checked against app.bundle_schema.SERVING (types and counts; app.bundle.read_metadata also
    checks each move against the input's size).

    Raises:
        app.errors.BundleError: a value of the wrong type or out of bounds, named with `source` (metadata.json).

    Example:
        >>> serving_from_metadata({"serving": {"time_shift_frames": [5, -5], "pixel_shifts": [[1, 0]]}}, "audio")
        {'average_mirrored': False, 'time_shift_frames': [5, -5], 'pixel_shifts': []}
    """
    serving = metadata.get("serving", {})
    SERVING.check(serving, "serving", source)
    image = kind == "image"
    return {
        "average_mirrored": image and serving.get("average_mirrored", False),
        "time_shift_frames": [] if image else list(serving.get("time_shift_frames", [])),
        "pixel_shifts": [list(shift) for shift in serving.get("pixel_shifts", [])] if image else [],
    }


# A trained audio bundle also hears its input this much earlier and later, and averages the answers.
SERVING_TIME_SHIFTS_MS = (-100, -50, 50, 100)


def serving_time_shifts(config: AudioConfig) -> list[int]:
    """SERVING_TIME_SHIFTS_MS in spectrogram frames of `config`."""
    return [int(round(ms / 1000 * config.sample_rate / config.hop_length)) for ms in SERVING_TIME_SHIFTS_MS]


def shift_with_fill(array: np.ndarray, shift: int, fill: float, axis: int = 0) -> np.ndarray:
    """A copy of `array` moved `shift` places along `axis` (later if positive, earlier if negative); nothing
    wraps around: the places left empty are set to `fill` (silence: 0 for a waveform, floor_db for a
    spectrogram).

    Example:
        >>> shift_with_fill(np.array([1.0, 2.0, 3.0, 4.0]), -1, 0.0)
        array([2., 3., 4., 0.])
    """
    shifted = np.roll(array, shift, axis=axis)
    emptied = [slice(None)] * shifted.ndim
    if shift > 0:
        emptied[axis] = slice(None, shift)
        shifted[tuple(emptied)] = fill
    elif shift < 0:
        emptied[axis] = slice(shift, None)
        shifted[tuple(emptied)] = fill
    return shifted


def shift_frames(spectrograms: np.ndarray, shift: int, floor_db: float) -> np.ndarray:
    """A copy of (batch, time, n_mels[, 1]) spectrograms moved `shift` frames later (earlier if negative);
    the frames left empty are set to floor_db (silence)."""
    return shift_with_fill(spectrograms, shift, floor_db, axis=1)


def serving_pixel_shifts(config: ImageConfig, translation: float = 0.125) -> list[list[int]]:
    """[dy, dx] moves whose answers a trained image bundle averages with the unmoved image's: 1/16 of the
    smaller side up, down, left, right and diagonally (the 3 × 3 grid around the image), but no more whole
    pixels than training moved its images (`translation` × the side); none when that is less than one."""
    side = min(config.image_size)
    step = min(max(1, round(side / 16)), int(translation * side))
    if step < 1:
        return []
    return [[step, 0], [-step, 0], [0, step], [0, -step], [step, step], [step, -step], [-step, step], [-step, -step]]


def translate_images(images: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """(batch, height, width, channels) images moved dy pixels down and dx right; edge pixels repeat into
    the gap, as in the training jitter."""
    height, width = images.shape[1], images.shape[2]
    padded = np.pad(images, ((0, 0), (abs(dy), abs(dy)), (abs(dx), abs(dx)), (0, 0)), mode="edge")
    top, left = abs(dy) - dy, abs(dx) - dx
    return padded[:, top : top + height, left : left + width]


def input_views(batch: np.ndarray, serving: dict[str, Any], floor_db: float = 0.0) -> list[np.ndarray]:
    """The (batch, *input_shape) inputs whose answers a bundle averages, as its metadata's "serving" says:
    the batch; audio moved by each of "time_shift_frames" (gaps at floor_db); images moved by each [dy, dx]
    of "pixel_shifts"; and with "average_mirrored", the mirror image of each of those."""
    views = [batch]
    views += [shift_frames(batch, shift, floor_db) for shift in serving.get("time_shift_frames", []) if shift]
    views += [translate_images(batch, dy, dx) for dy, dx in serving.get("pixel_shifts", [])]
    if serving.get("average_mirrored"):
        views += [view[:, :, ::-1] for view in views]
    return views
