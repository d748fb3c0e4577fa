"""MNIST-style centring of a light-on-dark drawing: crop it to its strokes, scale them into a box of 20/28 of the
frame keeping their aspect ratio, and move them so that their centre of mass sits at the frame's centre (the
recipe LeCun, Cortes and Burges describe for MNIST).

Two users, two finishes, both kept exactly as the shipped bundles and datasets were made with them:

- `center_strokes` (serving and training with `--center-content`): a photo or upload of a digit. It first
  stretches the contrast and drops faint paper texture, scales with Lanczos and places the strokes on whole
  pixels. The shipped mnist bundle was trained on images framed this way.
- `center_digit` (`data digits`, the dashboard's mnist samples): a clean digit array. It scales with bicubic
  interpolation and moves the result by a fraction of a pixel, as MNIST did, so the files it writes match MNIST's.

Example:
    >>> import numpy as np
    >>> from PIL import Image
    >>> bar = np.zeros((40, 40), np.uint8)
    >>> bar[2:30, 30:34] = 255  # a "1" near the right edge
    >>> framed = center_strokes(Image.fromarray(bar), (28, 28))
    >>> framed.size, [int(round(c)) for c in np.argwhere(np.asarray(framed) > 0).mean(axis=0)]
    ((28, 28), [14, 14])
    >>> center_digit(bar).shape
    (28, 28)
"""

from __future__ import annotations

import numpy as np
from PIL import Image

MNIST_FRAME = 28  # pixels
MNIST_BOX = 20  # pixels; MNIST fits each digit into 20×20 before centring it in 28×28


def crop_to_content(values: np.ndarray, content: np.ndarray) -> np.ndarray:
    """The smallest rectangle of a (height, width) array that holds every pixel where `content` (a boolean
    array of the same shape, not all False) is True."""
    rows, columns = np.nonzero(content)
    return values[rows.min() : rows.max() + 1, columns.min() : columns.max() + 1]


def fitted_size(height: int, width: int, box: int) -> tuple[int, int]:
    """(width, height), as Pillow takes sizes, of a height × width drawing scaled so that its longer side is
    `box` pixels; each side at least 1."""
    scale = box / max(height, width)
    return max(1, round(width * scale)), max(1, round(height * scale))


def center_strokes(image: Image.Image, image_size: tuple[int, int]) -> Image.Image:
    """A light-on-dark image framed MNIST-style at `image_size` (height, width), on whole pixels.

    The contrast is stretched (the median becomes black, the 99.9th percentile white; faint texture under a
    tenth of that is dropped), the image cropped to its strokes (pixels of at least a quarter), scaled with
    Lanczos into a square of 20/28 of the smaller side, and pasted on black with its centre of mass nearest the
    frame's centre without leaving the frame. A flat image is only resized.

    Returns:
        An image of `image`'s mode and `image_size`.
    """
    grey = np.asarray(image.convert("L"), dtype=np.float32)
    floor, ceiling = np.percentile(grey, 50), np.percentile(grey, 99.9)
    if ceiling - floor < 1.0:
        return image.resize(image_size[::-1], Image.Resampling.BILINEAR)
    stretched = np.clip((grey - floor) / (ceiling - floor), 0.0, 1.0)
    stretched[stretched < 0.1] = 0.0  # paper texture and faint shadows are not strokes
    cropped = crop_to_content(stretched, stretched >= 0.25)
    height, width = image_size
    box = max(1, round(min(height, width) * MNIST_BOX / MNIST_FRAME))
    new_size = fitted_size(cropped.shape[0], cropped.shape[1], box)
    strokes = Image.fromarray((cropped * 255).astype(np.uint8)).resize(new_size, Image.Resampling.LANCZOS)
    strokes_array = np.asarray(strokes, dtype=np.float32)
    total = strokes_array.sum()
    if total <= 0:
        centre_y, centre_x = strokes_array.shape[0] / 2, strokes_array.shape[1] / 2
    else:
        centre_y = float((strokes_array.sum(axis=1) * np.arange(strokes_array.shape[0])).sum() / total)
        centre_x = float((strokes_array.sum(axis=0) * np.arange(strokes_array.shape[1])).sum() / total)
    top = int(np.clip(round(height / 2 - centre_y), 0, height - strokes_array.shape[0]))
    left = int(np.clip(round(width / 2 - centre_x), 0, width - strokes_array.shape[1]))
    canvas = Image.new("L", (width, height), 0)
    canvas.paste(strokes, (left, top))
    return canvas if image.mode == "L" else canvas.convert(image.mode)


def center_digit(digit: np.ndarray, image_size: int = MNIST_FRAME, digit_box: int = MNIST_BOX) -> np.ndarray:
    """A light-on-dark digit scaled into a `digit_box` square and moved so that its centre of mass is the
    frame's centre, by a fraction of a pixel (linear interpolation), as MNIST was made.

    Args:
        digit: (height, width) grey image, any range, ink bright, background 0.
        image_size: side of the square frame, pixels.
        digit_box: side of the square the digit is scaled into, pixels.

    Returns:
        uint8 (image_size, image_size), 0–255; all 0 for an empty digit.
    """
    from scipy import ndimage

    values = np.asarray(digit, dtype=np.float32)
    if not np.any(values > 0):
        return np.zeros((image_size, image_size), dtype=np.uint8)
    values = crop_to_content(values, values > 0)
    values = 255.0 * values / values.max()
    new_size = fitted_size(values.shape[0], values.shape[1], digit_box)
    scaled = Image.fromarray(values.astype(np.float32), mode="F").resize(new_size, Image.Resampling.BICUBIC)
    scaled = np.clip(np.asarray(scaled), 0, 255)
    frame = np.zeros((image_size, image_size), dtype=np.float32)
    top, left = (image_size - scaled.shape[0]) // 2, (image_size - scaled.shape[1]) // 2
    frame[top : top + scaled.shape[0], left : left + scaled.shape[1]] = scaled
    center_row, center_column = ndimage.center_of_mass(frame)
    shift = (image_size / 2 - 0.5 - center_row, image_size / 2 - 0.5 - center_column)
    frame = ndimage.shift(frame, shift, order=1, mode="constant", cval=0.0)
    return np.clip(np.round(frame), 0, 255).astype(np.uint8)
