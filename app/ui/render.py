"""Pictures of model inputs as PNG bytes (Pillow only; no matplotlib import in the kernel).

A spectrogram (time, n_mels) becomes a colour image with time left to right and low frequencies at
the bottom; an image (height, width, channels) is saved at its own size, exactly as the model saw it,
and the browser scales it up.
"""

from __future__ import annotations

import base64
import io
from functools import lru_cache

import numpy as np
from PIL import Image, ImageOps

from app.images import to_mode

# A few stops of matplotlib's "magma" colormap; interpolated to 256 entries.
_MAGMA_STOPS = (
    (0.0, (0, 0, 4)),
    (0.13, (28, 16, 68)),
    (0.25, (79, 18, 123)),
    (0.38, (129, 37, 129)),
    (0.5, (181, 54, 122)),
    (0.63, (229, 80, 100)),
    (0.75, (251, 135, 97)),
    (0.88, (254, 194, 135)),
    (1.0, (252, 253, 191)),
)


@lru_cache(maxsize=1)
def _magma_table() -> np.ndarray:
    """(256, 3) uint8 lookup table."""
    positions = np.array([stop for stop, _ in _MAGMA_STOPS])
    colours = np.array([colour for _, colour in _MAGMA_STOPS], dtype=np.float64)
    grid = np.linspace(0.0, 1.0, 256)
    table = np.stack([np.interp(grid, positions, colours[:, channel]) for channel in range(3)], axis=1)
    return np.round(table).astype(np.uint8)


def png_bytes(image: Image.Image) -> bytes:
    """PNG encoding of a Pillow image (fast settings)."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


def spectrogram_png(features: np.ndarray) -> bytes:
    """A log-mel spectrogram (time, n_mels) in dB as a colour PNG (n_mels × time), its own range
    (usually -top_db to 0 dB; wider when band means are removed) mapped onto the colour scale."""
    values = np.asarray(features, dtype=np.float32)
    if values.ndim == 3:
        values = values[..., 0]
    low, high = float(values.min()), float(values.max())
    scaled = (values - low) / max(high - low, 1e-6)
    indices = np.round(np.flipud(scaled.T) * 255).astype(np.uint8)
    return png_bytes(Image.fromarray(_magma_table()[indices], mode="RGB"))


def image_png(image: np.ndarray) -> bytes:
    """A uint8 image (height, width[, 1|3]) as a PNG of the same size."""
    array = np.asarray(image, dtype=np.uint8)
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    return png_bytes(Image.fromarray(array))


def thumbnail_png(path_or_bytes, size: int = 64) -> bytes:
    """A small PNG preview (at most `size` px a side) of an image file, upright and with transparency over
    white, as the model sees it."""
    source = io.BytesIO(path_or_bytes) if isinstance(path_or_bytes, (bytes, bytearray)) else path_or_bytes
    with Image.open(source) as image:
        image = to_mode(ImageOps.exif_transpose(image), "L" if image.mode in ("1", "L", "I;16", "I") else "RGB")
    image.thumbnail((size, size), Image.Resampling.BILINEAR)
    return png_bytes(image)


def data_uri(png: bytes) -> str:
    """A `data:image/png;base64,…` URI for inline HTML."""
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")
