"""scikit-learn's bundled handwritten digits as an offline, MNIST-like image dataset.

`load_digits()` holds 1,797 digits of 8×8 pixels with values 0–16 (UCI "Optical Recognition of
Handwritten Digits"). Each becomes a 28×28 PNG drawn as MNIST draws its digits: light strokes on
a dark background, the digit scaled into a 20×20 box and its centre of mass at the image centre
(app.centering.center_digit).

Example:
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     write_digits(folder, limit_per_class=2)
    {'0': 2, '1': 2, '2': 2, '3': 2, '4': 2, '5': 2, '6': 2, '7': 2, '8': 2, '9': 2}
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from app.centering import center_digit


def digit_image(pixels: np.ndarray) -> np.ndarray:
    """One scikit-learn digit (8, 8) with values 0–16 as an MNIST-like uint8 image (28, 28)."""
    return center_digit(np.asarray(pixels, dtype=np.float32).reshape(8, 8))


def write_digits(out_dir: str | Path, limit_per_class: int | None = None) -> dict[str, int]:
    """Write scikit-learn's digits as `out_dir/<digit>/<index>.png` (28×28 8-bit grey PNGs).

    Args:
        out_dir: dataset root (created).
        limit_per_class: keep only the first N digits of each class (None keeps all, ~180 each).

    Returns:
        PNGs written per class, e.g. {"0": 178, ...}.
    """
    from sklearn.datasets import load_digits

    digits = load_digits()
    counts = {str(label): 0 for label in range(10)}
    for index, (pixels, label) in enumerate(zip(digits.images, digits.target, strict=True)):
        label = str(int(label))
        if limit_per_class is not None and counts[label] >= limit_per_class:
            continue
        class_dir = Path(out_dir) / label
        class_dir.mkdir(parents=True, exist_ok=True)
        Image.fromarray(digit_image(pixels), mode="L").save(class_dir / f"sklearn-{index:04d}.png")
        counts[label] += 1
    return counts
