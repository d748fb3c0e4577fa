"""scikit-learn's bundled handwritten digits as an offline, MNIST-like image dataset.

`load_digits()` holds 1,797 digits of 8×8 pixels with values 0–16 (UCI "Optical Recognition of
Handwritten Digits"). Each becomes a 28×28 PNG drawn as MNIST draws its digits: light strokes on
a dark background, the digit scaled into a 20×20 box and its centre of mass at the image centre.

Example:
    >>> from app.datasets.digits import write_digits
    >>> write_digits("data/digits")  # doctest: +SKIP
    {'0': 178, '1': 182, ...}
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image
from scipy import ndimage

IMAGE_SIZE = 28  # pixels, as MNIST
DIGIT_BOX = 20  # pixels; MNIST fits each digit into 20×20 before centring it in 28×28


def center_in_frame(digit: np.ndarray, image_size: int = IMAGE_SIZE, digit_box: int = DIGIT_BOX) -> np.ndarray:
    """Scale a light-on-dark digit into a `digit_box` square and centre its mass in the frame.

    Args:
        digit: (height, width) grey image, any range, ink bright, background 0.

    Returns:
        uint8 (image_size, image_size), 0–255.
    """
    values = np.asarray(digit, dtype=np.float32)
    rows, columns = np.nonzero(values > 0)
    if rows.size == 0:
        return np.zeros((image_size, image_size), dtype=np.uint8)
    values = values[rows.min() : rows.max() + 1, columns.min() : columns.max() + 1]
    values = 255.0 * values / values.max()
    height, width = values.shape
    scale = digit_box / max(height, width)
    new_size = (max(1, round(width * scale)), max(1, round(height * scale)))  # PIL takes (width, height)
    scaled = Image.fromarray(values.astype(np.float32), mode="F").resize(new_size, Image.Resampling.BICUBIC)
    scaled = np.clip(np.asarray(scaled), 0, 255)
    frame = np.zeros((image_size, image_size), dtype=np.float32)
    top, left = (image_size - scaled.shape[0]) // 2, (image_size - scaled.shape[1]) // 2
    frame[top : top + scaled.shape[0], left : left + scaled.shape[1]] = scaled
    center_row, center_column = ndimage.center_of_mass(frame)
    shift = (image_size / 2 - 0.5 - center_row, image_size / 2 - 0.5 - center_column)
    frame = ndimage.shift(frame, shift, order=1, mode="constant", cval=0.0)
    return np.clip(np.round(frame), 0, 255).astype(np.uint8)


def digit_image(pixels: np.ndarray) -> np.ndarray:
    """One scikit-learn digit (8, 8) with values 0–16 as an MNIST-like uint8 image (28, 28)."""
    return center_in_frame(np.asarray(pixels, dtype=np.float32).reshape(8, 8))


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
