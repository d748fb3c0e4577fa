"""Images: decode PNG, JPEG, GIF, BMP, WebP, TIFF or PPM/PGM, orient, convert to the model's channels, resize.

Only the formats of IMAGE_FORMATS are opened (Pillow reads many more, some through other programs). The size a
header declares is checked against app.limits before any pixel is decoded; JPEG is decoded at a reduced scale and
any much larger image reduced by a whole factor before it is converted, so that memory follows the model's input
size rather than the picture's.

A path, the file's bytes, a Pillow image or an array all work. Example:
    >>> import io
    >>> from PIL import Image
    >>> from app.config import ImageConfig
    >>> png = io.BytesIO()
    >>> Image.new("RGB", (64, 48), "orange").save(png, format="PNG")
    >>> load_image(png.getvalue(), ImageConfig(image_size=(32, 32), channels=3)).shape
    (32, 32, 3)
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from app.centering import center_strokes
from app.config import ImageConfig
from app.errors import InputError
from app.limits import MAX_WORKING_PIXELS, check_image_size, reduction_factor
from app.sources import Source, describe_source, read_source_bytes

EXPECTED_IMAGE = "expected an image: png, jpeg, gif, bmp, webp, tiff"
ImageSource = str | Path | bytes | bytearray | memoryview | np.ndarray | Image.Image
# Pillow's names of the formats opened ("JPEG" also opens the multi-picture JPEG of some cameras, "PPM" also PGM
# and PBM). Pillow reads many more, some through other programs (EPS through Ghostscript).
IMAGE_FORMATS = ("PNG", "JPEG", "GIF", "BMP", "WEBP", "TIFF", "PPM")
# Modes Pillow cannot reduce, and the mode each is converted to first when it is too large to convert whole
# (palette images to RGBA or RGB, see _shrink).
UNREDUCIBLE_MODES = {"1": "L", "P": "RGBA", "I;16": "I", "I;16B": "I", "I;16L": "I", "I;16N": "I"}


def load_image(source: ImageSource, config: ImageConfig) -> np.ndarray:
    """An image as the model sees it: uint8 array of shape (height, width, channels).

    Args:
        source: a path, the file's bytes, a Pillow image, or an array (height, width[, 1|3|4]).
        config: target size, channels and content handling.

    Raises:
        InputError: empty, corrupt, not an image, an unconvertible colour mode, or more than
            `config.max_pixels` pixels.
    """
    if isinstance(source, Image.Image):
        check_image_size(source.width, source.height, None, config.image_size, "the image")
        image = ImageOps.exif_transpose(source)
    elif isinstance(source, np.ndarray):
        image = _from_array(source, config.image_size)
    else:
        image = _open(source, config)
    mode = "L" if config.channels == 1 else "RGB"
    try:
        image = to_mode(image, mode)
    except (ValueError, OSError):  # a mode Pillow cannot convert, such as premultiplied "La"
        name = "the image" if isinstance(source, (Image.Image, np.ndarray)) else describe_source(source)
        raise InputError(
            f"{name} uses the {image.mode} colour mode, which cannot be converted to {mode}; "
            "expected an RGB, grey, palette, CMYK or 16-bit image"
        ) from None
    image = _shrink(image, config.image_size)  # a 16-bit image can be reduced only now
    if config.background is not None:
        image = _match_background(image, config.background)
    if config.center_content:
        image = center_strokes(image, config.image_size)
    else:
        image = ImageOps.fit(image, config.image_size[::-1], method=Image.Resampling.BILINEAR)
    array = np.asarray(image, dtype=np.uint8)
    return array[:, :, None] if array.ndim == 2 else array


def _open(source: Source, config: ImageConfig) -> Image.Image:
    """Open, check the size before decoding pixels, take the first frame, apply EXIF orientation, reduce."""
    image = open_image(source, config.max_pixels)
    width, height = image.size
    name = describe_source(source)
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            if width * height > config.max_pixels:
                raise InputError(f"{name} is {width}×{height} pixels; the limit is {config.max_pixels:,} pixels")
            if width == 0 or height == 0:
                raise InputError(f"{name} has no pixels ({width}×{height})")
            image.seek(0)
            if image.format in ("JPEG", "MPO"):
                # Decode large JPEGs at a reduced scale: much faster, and we only need a small image.
                image.draft(
                    "RGB" if config.channels == 3 else "L",
                    (config.image_size[1] * 4, config.image_size[0] * 4),
                )
            check_image_size(image.width, image.height, image.mode, config.image_size, name)
            image.load()
            image = ImageOps.exif_transpose(image)
            image = _shrink(image, config.image_size)
        except InputError:
            raise
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            raise InputError(
                f"{name} declares too many pixels (a decompression bomb?); the limit is {config.max_pixels:,} pixels"
            ) from None
        except (OSError, ValueError, SyntaxError, EOFError) as error:
            raise InputError(f"{name} is a damaged image ({error}); {EXPECTED_IMAGE}") from None
    return image


def open_image(source: Source, max_pixels: int | None = None) -> Image.Image:
    """A path's or byte string's image, opened (its size, mode and format read, no pixel decoded) if it is a
    regular file of one of IMAGE_FORMATS within app.limits.MAX_FILE_BYTES and Pillow's limit against
    decompression bombs; InputError otherwise (`max_pixels`, when given, is the limit the message states).

    Example:
        >>> with open_image(b"%PDF-1.7 ...") as image:
        ...     pass
        Traceback (most recent call last):
        ...
        app.errors.InputError: 12 bytes is not an image Pillow can read; expected an image: png, jpeg, gif, bmp, ...
    """
    data = read_source_bytes(source, EXPECTED_IMAGE)
    name = describe_source(source)
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            return Image.open(io.BytesIO(data), formats=IMAGE_FORMATS)
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            limit = f"the limit is {max_pixels:,} pixels" if max_pixels else EXPECTED_IMAGE
            raise InputError(f"{name} declares too many pixels (a decompression bomb?); {limit}") from None
        except UnidentifiedImageError:
            raise InputError(f"{name} is not an image Pillow can read; {EXPECTED_IMAGE}") from None
        except (OSError, ValueError, SyntaxError, EOFError) as error:
            raise InputError(f"{name} is a damaged image ({error}); {EXPECTED_IMAGE}") from None


def _shrink(image: Image.Image, image_size: tuple[int, int]) -> Image.Image:
    """A much larger image than the model needs, reduced by a whole factor to at least 4 × `image_size`
    (height, width) by box averaging, so that a 50-megapixel image is not converted at full size.

    Palette, 1-bit and 16-bit images cannot be reduced: up to MAX_WORKING_PIXELS they are left for to_mode to
    convert whole (and are reduced after it); larger ones are first converted to a mode that can be reduced
    (UNREDUCIBLE_MODES), which gives the same picture within rounding."""
    factor = reduction_factor(image.width, image.height, image_size)
    if factor == 1:
        return image
    if image.mode in UNREDUCIBLE_MODES:
        if image.width * image.height <= MAX_WORKING_PIXELS:
            return image
        opaque_palette = image.mode == "P" and not image.has_transparency_data
        image = image.convert("RGB" if opaque_palette else UNREDUCIBLE_MODES[image.mode])
    return image.reduce(factor)


def _from_array(array: np.ndarray, image_size: tuple[int, int]) -> Image.Image:
    """An (h, w) or (h, w, 1|3|4) array as a Pillow image; floats are taken as 0–1."""
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (3, 4)) or array.size == 0:
        raise InputError(f"expected an image array (height, width[, 1|3|4]); received shape {array.shape}")
    check_image_size(array.shape[1], array.shape[0], None, image_size, "the image array")
    if np.issubdtype(array.dtype, np.floating):
        if not np.all(np.isfinite(array)):
            raise InputError("the image array contains NaN or infinity")
        array = np.clip(array * 255.0, 0, 255)
    elif array.dtype == np.bool_:
        array = array.astype(np.uint8) * 255
    elif not np.issubdtype(array.dtype, np.integer):
        raise InputError(f"expected a numeric image array; received dtype {array.dtype}")
    elif array.min() < 0 or array.max() > 255:
        raise InputError(
            f"expected pixel values 0–255 (or floats 0–1); "
            f"received {array.min()}–{array.max()} in a {array.dtype} array"
        )
    return Image.fromarray(np.asarray(array, dtype=np.uint8))


def to_mode(image: Image.Image, mode: str) -> Image.Image:
    """Palette, alpha, CMYK, LAB, 16-bit and grey images as 8-bit "L" or "RGB". Transparent parts become
    white, or black when what is drawn is light (white strokes on a transparent background)."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        array = np.asarray(image, dtype=np.float32)  # a new array: scaled in place below
        array *= 255.0 / max(float(array.max()), 255.0)
        image = Image.fromarray(np.clip(array, 0, 255, out=array).astype(np.uint8))
    elif image.mode == "F":
        array = np.nan_to_num(np.asarray(image, dtype=np.float32))
        span = max(array.max() - array.min(), 1e-12)
        image = Image.fromarray(((array - array.min()) / span * 255.0).astype(np.uint8))
    if image.mode == "P":
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        image = image.convert("RGBA")
        alpha = np.asarray(image.getchannel("A"), dtype=np.float32)
        drawn = np.asarray(image.convert("RGB").convert("L"), dtype=np.float32)
        light_drawing = float((drawn * alpha).sum()) > 127.5 * float(alpha.sum())  # alpha-weighted mean
        shade = 0 if light_drawing else 255
        image = Image.alpha_composite(Image.new("RGBA", image.size, (shade, shade, shade, 255)), image)
    if image.mode == mode:
        return image
    try:
        return image.convert(mode)
    except ValueError:  # Pillow converts some modes (LAB) to RGB only
        return image.convert("RGB").convert(mode)


def _match_background(image: Image.Image, background: str) -> Image.Image:
    """Invert when the image's border brightness is the opposite of the training data's background."""
    grey = np.asarray(image.convert("L"), dtype=np.float32)
    border = np.concatenate([grey[0], grey[-1], grey[:, 0], grey[:, -1]])
    is_light = float(np.median(border)) > 127.5
    if is_light == (background == "dark"):
        return ImageOps.invert(image)
    return image
