"""Pictures for the dashboard as PNG bytes and data URIs (Pillow only; no matplotlib import in the kernel).

The pictures of model inputs and of where the model looked are app.pictures' (the command line writes them
too); this module adds the gallery's thumbnails and inline data URIs. A spectrogram (time, n_mels) becomes a
colour image with time left to right and low frequencies at the bottom; an image (height, width, channels) is
saved at its own size, exactly as the model saw it, and the browser scales it up.
"""

from __future__ import annotations

import base64
import io

from PIL import Image, ImageOps

from app.images import to_mode
from app.pictures import image_png, overlay_layer_png, png_bytes, spectrogram_png

__all__ = ["data_uri", "image_png", "overlay_layer_png", "png_bytes", "spectrogram_png", "thumbnail_png"]


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
