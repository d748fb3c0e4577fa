"""Input a model can tell nothing from: silent audio and one-colour images. `predict` refuses it, and training and
evaluation skip it with the same message, through check_content.

Example:
    >>> import numpy as np
    >>> check_content(np.full(8000, 0.25, np.float32), "audio")  # a constant offset: no sound
    Traceback (most recent call last):
    ...
    app.errors.InputError: the audio is silent (no sound above the noise floor); check the microphone
    >>> check_content(np.array([[[0], [255]]], np.uint8), "image")  # two pixels, two shades: something to see
"""

from __future__ import annotations

import numpy as np

from app.errors import InputError

SILENCE_PEAK = 1e-4  # a recording whose loudest sample is below this is treated as no sound at all


def check_content(example: np.ndarray, kind: str) -> None:
    """InputError for a decoded (samples,) waveform whose every sample lies within SILENCE_PEAK of its mean (silence,
    or a constant offset), or an (h, w, c) image of one flat colour.

    Args:
        example: the waveform (kind "audio") as decoded, before windowing, or the image (kind "image") as the model
            sees it.
        kind: "audio" or "image".
    """
    if kind == "audio":
        if float(np.max(np.abs(example - example.mean()))) < SILENCE_PEAK:
            raise InputError("the audio is silent (no sound above the noise floor); check the microphone")
    elif example.min() == example.max():
        raise InputError("the image is one flat colour; expected a picture with something in it")
