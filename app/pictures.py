"""Model inputs and where-the-model-looked maps as PNG pictures (Pillow only; no matplotlib import).

A spectrogram (time, n_mels) is drawn with time left to right and low frequencies at the bottom, in the
"magma" colours; an image (height, width, channels) keeps its own pixels. A sensitivity map (the same shape as
the input, values 0..1) is drawn in the "viridis" colours, brighter where it is higher, either as a
see-through layer of the same size as the input's picture (the dashboard lays it over the picture) or blended
into an enlarged copy of the picture (`predict --explain` writes that).

Example:
    >>> import numpy as np
    >>> spectrogram = np.full((97, 40), -80.0, np.float32)
    >>> sensitivity = np.zeros((97, 40), np.float32)
    >>> picture_rgb(spectrogram, spectrogram=True).shape  # (n_mels, time, RGB)
    (40, 97, 3)
    >>> overlay_layer(sensitivity, spectrogram=True).shape  # the same size, with an alpha channel
    (40, 97, 4)
    >>> from PIL import Image, ImageDraw, ImageFont
    >>> import io
    >>> Image.open(io.BytesIO(overlay_png(spectrogram, sensitivity, spectrogram=True))).size  # width, height
    (388, 160)
"""

from __future__ import annotations

import io
import math
from functools import lru_cache

import numpy as np
from PIL import Image, ImageDraw, ImageFont

OVERLAY_ALPHA = 0.6  # opacity of the map's colours over the picture
OVERLAY_LONGER_SIDE = 320  # px: a written overlay is the input's picture enlarged by a whole factor to about this

CAPTION_FONT_PX = 13  # text size of a written overlay's caption

# A few stops of matplotlib's "magma" colormap (spectrograms); interpolated to 256 entries.
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
# A few stops of matplotlib's "viridis" (sensitivity maps): dark violet through teal to yellow, its lightness
# rising all the way, and unlike magma's, so a map stays readable over a spectrogram.
_VIRIDIS_STOPS = (
    (0.0, (68, 1, 84)),
    (0.13, (71, 44, 122)),
    (0.25, (59, 81, 139)),
    (0.38, (44, 113, 142)),
    (0.5, (33, 145, 140)),
    (0.63, (39, 173, 129)),
    (0.75, (92, 200, 99)),
    (0.88, (170, 220, 50)),
    (1.0, (253, 231, 37)),
)
# The CSS gradient of the viridis scale, for a legend.
VIRIDIS_CSS = "linear-gradient(90deg, rgb(68,1,84), rgb(59,81,139), rgb(33,145,140), rgb(92,200,99), rgb(253,231,37))"


@lru_cache(maxsize=2)
def _colour_table(name: str) -> np.ndarray:
    """(256, 3) uint8 lookup table of the colormap `name` ("magma" or "viridis")."""
    stops = {"magma": _MAGMA_STOPS, "viridis": _VIRIDIS_STOPS}[name]
    positions = np.array([stop for stop, _ in stops])
    colours = np.array([colour for _, colour in stops], dtype=np.float64)
    grid = np.linspace(0.0, 1.0, 256)
    table = np.stack([np.interp(grid, positions, colours[:, channel]) for channel in range(3)], axis=1)
    return np.round(table).astype(np.uint8)


def png_bytes(image: Image.Image) -> bytes:
    """PNG encoding of a Pillow image (fast settings)."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


def _as_picture_rows(array: np.ndarray, spectrogram: bool) -> np.ndarray:
    """A (time, n_mels, …) spectrogram array turned to picture rows (n_mels, time, …), low bands at the bottom;
    an image's array is already in rows."""
    return np.flipud(np.swapaxes(array, 0, 1)) if spectrogram else array


def spectrogram_rgb(features: np.ndarray) -> np.ndarray:
    """A log-mel spectrogram (time, n_mels[, 1]) in dB as (n_mels, time, 3) uint8 magma colours, its own range
    (usually -top_db to 0 dB; wider when band means are removed) mapped onto the colour scale."""
    values = np.asarray(features, dtype=np.float32)
    if values.ndim == 3:
        values = values[..., 0]
    low, high = float(values.min()), float(values.max())
    scaled = (values - low) / max(high - low, 1e-6)
    return _colour_table("magma")[np.round(_as_picture_rows(scaled, True) * 255).astype(np.uint8)]


def spectrogram_png(features: np.ndarray) -> bytes:
    """A log-mel spectrogram (time, n_mels) as a colour PNG, n_mels px high and time px wide (see
    spectrogram_rgb)."""
    return png_bytes(Image.fromarray(spectrogram_rgb(features)))


def image_png(image: np.ndarray) -> bytes:
    """A uint8 image (height, width[, 1|3]) as a PNG of the same size."""
    array = np.asarray(image, dtype=np.uint8)
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    return png_bytes(Image.fromarray(array))


def picture_rgb(features: np.ndarray, spectrogram: bool) -> np.ndarray:
    """The picture of a model input as (rows, columns, 3) uint8: a spectrogram's magma colours (n_mels, time),
    or an image (height, width) with grey repeated into three channels."""
    if spectrogram:
        return spectrogram_rgb(features)
    array = np.asarray(features, dtype=np.uint8)
    if array.ndim == 2:
        array = array[:, :, None]
    return np.repeat(array, 3, axis=2) if array.shape[2] == 1 else array


def heat_rgb(sensitivity: np.ndarray) -> np.ndarray:
    """A map (…) of values 0..1 as (…, 3) uint8 viridis colours (0 dark violet, 1 yellow)."""
    indices = np.round(np.clip(np.nan_to_num(sensitivity), 0.0, 1.0) * 255).astype(np.uint8)
    return _colour_table("viridis")[indices]


def overlay_layer(sensitivity: np.ndarray, spectrogram: bool, alpha: float = OVERLAY_ALPHA) -> np.ndarray:
    """A see-through colour layer (rows, columns, 4) uint8 of a map shaped as the input ((time, n_mels) or
    (height, width)), oriented and sized as the input's picture, to be laid over it."""
    colours = heat_rgb(_as_picture_rows(np.asarray(sensitivity, np.float32), spectrogram))
    opacity = np.full((*colours.shape[:2], 1), round(255 * alpha), np.uint8)
    return np.concatenate([colours, opacity], axis=2)


def overlay_layer_png(sensitivity: np.ndarray, spectrogram: bool, alpha: float = OVERLAY_ALPHA) -> bytes:
    """overlay_layer as an RGBA PNG of the same size as the input's picture."""
    return png_bytes(Image.fromarray(overlay_layer(sensitivity, spectrogram, alpha)))


def overlay_png(
    features: np.ndarray,
    sensitivity: np.ndarray,
    spectrogram: bool,
    alpha: float = OVERLAY_ALPHA,
    longer_side: int = OVERLAY_LONGER_SIDE,
    caption: str = "",
) -> bytes:
    """The input's picture with the map's colours blended in, as an RGB PNG enlarged by a whole factor (each
    input value a square of pixels) so that its longer side is about `longer_side` px; with a caption, a line of
    text under it.

    Args:
        features: the model input, (time, n_mels) dB or (height, width, channels) uint8.
        sensitivity: the map, shaped as the input without channels, values 0..1.
        spectrogram: True for audio features.
        alpha: opacity of the map's colours.
        longer_side: target length in px of the picture's longer side (never shrunk below the input's size).
        caption: one line written under the picture (e.g. what brighter means); "" for none.
    """
    base = picture_rgb(features, spectrogram).astype(np.float32)
    layer = overlay_layer(sensitivity, spectrogram, alpha).astype(np.float32)
    opacity = layer[..., 3:] / 255.0
    blended = np.round(base * (1.0 - opacity) + layer[..., :3] * opacity).astype(np.uint8)
    scale = max(1, math.ceil(longer_side / max(blended.shape[:2])))
    enlarged = Image.fromarray(np.repeat(np.repeat(blended, scale, axis=0), scale, axis=1))
    return png_bytes(_with_caption(enlarged, caption) if caption else enlarged)


def _with_caption(picture: Image.Image, text: str) -> Image.Image:
    """`picture` above one line of dark text on white, the canvas widened if the text is longer."""
    font = ImageFont.load_default(size=CAPTION_FONT_PX)
    left, top, right, bottom = (math.ceil(edge) for edge in font.getbbox(text))
    margin = CAPTION_FONT_PX // 2
    width = max(picture.width, right - left + 2 * margin)
    canvas = Image.new("RGB", (width, picture.height + bottom - top + 2 * margin), "white")
    canvas.paste(picture, ((width - picture.width) // 2, 0))
    ImageDraw.Draw(canvas).text((margin - left, picture.height + margin - top), text, fill=(40, 40, 40), font=font)
    return canvas
