"""What one input may cost: the limits `predict`, `evaluate`, `train` and the dashboard all apply, through the
same functions, so that any file is predicted, or refused with a message, within a bounded amount of memory.

Each input is checked three times: its size before it is read (app.sources.read_source_bytes), what its header
declares before it is decoded (check_audio_size, check_image_size), and what decoding produced. The decoded
limits follow from one budget, DECODED_BYTES: the samples or pixels of one input, as the pipeline holds them.

Example:
    >>> from app.limits import check_image_size
    >>> check_image_size(4000, 3000, "RGB", (32, 32), "'photo.png'")  # 12 megapixels: accepted
    >>> check_image_size(49_000_000, 1, "L", (28, 28), "'strip.png'")
    Traceback (most recent call last):
    ...
    app.errors.InputError: 'strip.png' is 49,000,000×1 pixels; expected an image at most 50 times as wide as high ...
"""

from __future__ import annotations

from app.errors import InputError

MIB = 2**20
# The samples or pixels of one decoded input, as the pipeline holds them (32-bit samples, 1 byte per grey pixel
# and 4 per colour one); the working copies made from them stay within a few times this.
DECODED_BYTES = 64 * MIB
# A file larger than this is refused before it is read: even uncompressed, an accepted clip or picture fits.
MAX_FILE_BYTES = DECODED_BYTES
# Audio: samples of all channels at the file's own rate (60 s of 96 kHz stereo is 11.5 million), and frames,
# each of which the resampler holds as a 32- and a 64-bit number.
MAX_AUDIO_SAMPLES = DECODED_BYTES // 4
MAX_AUDIO_FRAMES = DECODED_BYTES // 8
# Images: pixels of a grey or black-and-white image take 1 byte; every other mode (RGB, RGBA, CMYK, 16- and 32-bit
# grey, and palette images, which are converted to RGB(A) to be reduced) takes 4.
ONE_BYTE_MODES = ("1", "L")
MAX_ASPECT_RATIO = 50  # a longer strip says nothing the model can use: its input is cropped to the middle
# Images are first reduced by a whole factor to about 4 times the model's input; no more pixels than this may be
# left to convert, invert and centre at once (each takes about 30 bytes there).
MAX_WORKING_PIXELS = 4 * MIB
REDUCED_TO_INPUT_SIZES = 4  # see reduction_factor


def reduction_factor(width: int, height: int, image_size: tuple[int, int]) -> int:
    """The whole factor by which a width × height image is box-reduced before conversion: as much as keeps it at
    least REDUCED_TO_INPUT_SIZES times `image_size` (height, width) on both sides; 1 for none.

    Example:
        >>> reduction_factor(4000, 3000, (32, 32)), reduction_factor(100, 100, (32, 32))
        (23, 1)
    """
    factor = min(width // (image_size[1] * REDUCED_TO_INPUT_SIZES), height // (image_size[0] * REDUCED_TO_INPUT_SIZES))
    return factor if factor >= 2 else 1


def check_image_size(width: int, height: int, mode: str | None, image_size: tuple[int, int], name: str) -> None:
    """InputError, before any pixel is decoded, for an image whose decoding or processing would take more than
    one input may.

    Args:
        width, height: the image's size in pixels, as its header declares it.
        mode: its Pillow mode ("L", "RGB", "P" …), or None for an image already in memory (not decoded here).
        image_size: the model's (height, width).
        name: how messages name the input ("'photo.png'").
    """
    if max(width, height) > MAX_ASPECT_RATIO * max(1, min(width, height)):
        raise InputError(
            f"{name} is {width:,}×{height:,} pixels; expected an image at most {MAX_ASPECT_RATIO} times as wide as "
            "high (or as high as wide)"
        )
    if mode is not None:
        bytes_per_pixel = 1 if mode in ONE_BYTE_MODES else 4
        limit = DECODED_BYTES // bytes_per_pixel
        if width * height > limit:
            kind = "grey" if bytes_per_pixel == 1 else "colour, palette or 16-bit"
            raise InputError(
                f"{name} is {width:,}×{height:,} pixels; {kind} images are accepted up to {limit / 1e6:.1f} megapixels"
            )
    factor = reduction_factor(width, height, image_size)
    working = -(-width // factor) * -(-height // factor)
    if working > MAX_WORKING_PIXELS:
        raise InputError(
            f"{name} is {width:,}×{height:,} pixels, more than can be scaled to this model's {image_size[0]}×"
            f"{image_size[1]} input at once; expected at most {MAX_WORKING_PIXELS:,} pixels, or a larger picture "
            "that can be reduced by a whole factor"
        )


def check_audio_size(frames: int, channels: int, sample_rate: int, name: str) -> None:
    """InputError, before the samples are decoded, for audio of more frames or samples than one input may hold.

    Args:
        frames: samples per channel, as the header declares them; channels: their number; sample_rate: in Hz.
        name: how messages name the input ("'clip.wav'").
    """
    if frames > MAX_AUDIO_FRAMES or frames * channels > MAX_AUDIO_SAMPLES:
        raise InputError(
            f"{name} holds {frames:,} frames of {channels} channel(s) at {sample_rate:,} Hz "
            f"({frames / max(sample_rate, 1):.0f} s); expected at most {MAX_AUDIO_FRAMES:,} frames and "
            f"{MAX_AUDIO_SAMPLES:,} samples in all: shorten it, mix it down or lower its rate"
        )
