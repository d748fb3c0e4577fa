"""Pictures for the dashboard as PNG bytes and data URIs (Pillow only; no matplotlib import in the kernel).

The pictures of model inputs and of where the model looked are app.pictures' (the command line writes them
too); this module adds the gallery's thumbnails and inline data URIs. A spectrogram (time, n_mels) becomes a
colour image with time left to right and low frequencies at the bottom; an image (height, width, channels) is
saved at its own size, exactly as the model saw it, and the browser scales it up.
"""

from __future__ import annotations

import base64

from PIL import Image, ImageOps

from app.images import open_image, to_mode
from app.limits import check_image_size, reduction_factor
from app.pictures import image_png, overlay_layer_png, png_bytes, spectrogram_png
from app.sources import Source, describe_source

REDUCIBLE_MODES = ("L", "RGB", "RGBA", "LA")  # modes Pillow box-reduces directly

__all__ = ["data_uri", "image_png", "overlay_layer_png", "png_bytes", "spectrogram_png", "thumbnail_png"]


def thumbnail_png(source: Source, size: int = 64) -> bytes:
    """A small PNG preview (at most `size` px a side) of an image file or its bytes, upright and with
    transparency over white. The file passes the same checks and size limits as a prediction's input
    (InputError otherwise), and a large picture is reduced before it is converted.

    Example:
        >>> import io
        >>> from PIL import Image
        >>> picture = io.BytesIO()
        >>> Image.new("RGB", (640, 480), "red").save(picture, "PNG")
        >>> Image.open(io.BytesIO(thumbnail_png(picture.getvalue()))).size
        (64, 48)
    """
    with open_image(source) as opened:
        name = describe_source(source)
        check_image_size(*opened.size, opened.mode, (size, size), name)
        opened.draft(opened.mode, (size, size))  # JPEG: decode at a fraction of the size
        grey = opened.mode in ("1", "L", "I;16", "I")
        factor = reduction_factor(*opened.size, (size, size))
        reduced = opened.reduce(factor) if factor > 1 and opened.mode in REDUCIBLE_MODES else opened
        image = to_mode(ImageOps.exif_transpose(reduced), "L" if grey else "RGB")
    image.thumbnail((size, size), Image.Resampling.BILINEAR)
    return png_bytes(image)


def data_uri(png: bytes) -> str:
    """A `data:image/png;base64,…` URI for inline HTML."""
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")
