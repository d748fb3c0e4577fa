"""The preprocessing a training run uses: inferred from the images when not given, and checked against the data.

Example:
    >>> import tempfile
    >>> from pathlib import Path
    >>> from PIL import Image
    >>> from app.class_folders import find_dataset
    >>> from app.training.preprocessing import infer_image_config
    >>> scratch = tempfile.TemporaryDirectory()
    >>> root = Path(scratch.name)
    >>> for name, ink in (("bar", (8, 20, 14, 100)), ("dot", (10, 50, 14, 54))):
    ...     (root / name).mkdir()
    ...     for n in range(3):
    ...         image = Image.new("L", (120, 80), 0)  # 120 px wide, 80 high, grey, dark borders
    ...         image.paste(255, ink)
    ...         image.save(root / name / f"{n}.png")
    >>> config = infer_image_config(find_dataset(root))
    >>> config.image_size, config.channels, config.background  # (height, width) at most 64 px a side
    ((43, 64), 1, 'dark')
    >>> scratch.cleanup()
"""

from __future__ import annotations

from collections import Counter

import numpy as np

from app.class_folders import Dataset
from app.config import AudioConfig, ImageConfig
from app.errors import DatasetError, InputError
from app.features import feature_shape
from app.images import open_image
from app.model import MIN_INPUT_SIZE


def choose_preprocessing(
    dataset: Dataset, preprocessing: AudioConfig | ImageConfig | None
) -> AudioConfig | ImageConfig:
    """The given preprocessing, else AudioConfig() for audio or one inferred from the images; checked to fit
    the dataset (see check_preprocessing)."""
    if preprocessing is None:
        preprocessing = AudioConfig() if dataset.kind == "audio" else infer_image_config(dataset)
    check_preprocessing(dataset, preprocessing)
    return preprocessing


def infer_image_config(dataset: Dataset, sample_count: int = 64) -> ImageConfig:
    """Image size, channels and background from a sample of the files: the typical size (at most
    64 px a side), grey when every sampled image is grey, "dark" when grey images have dark borders.
    """
    from PIL import Image

    rng = np.random.default_rng(0)
    chosen = rng.choice(len(dataset.files), size=min(sample_count, len(dataset.files)), replace=False)
    sizes, grey, borders = [], True, []
    for index in chosen:
        try:
            with open_image(dataset.files[index]) as image:  # a regular file of an accepted format
                sizes.append(image.size)
                if image.mode not in ("L", "1", "I;16", "I", "LA"):
                    grey = False
                pixels = np.asarray(image.convert("L"), dtype=np.float32)
                borders.append(np.median(np.concatenate([pixels[0], pixels[-1], pixels[:, 0], pixels[:, -1]])))
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
            continue  # unreadable files are reported by feature extraction
    if not sizes:
        raise DatasetError(f"none of {len(chosen)} sampled images under {dataset.root} could be opened")
    width, height = Counter(sizes).most_common(1)[0][0]
    scale = min(1.0, 64 / max(width, height))
    background = ("dark" if np.median(borders) < 128 else "light") if grey else None
    return ImageConfig(
        image_size=(max(MIN_INPUT_SIZE, round(height * scale)), max(MIN_INPUT_SIZE, round(width * scale))),
        channels=1 if grey else 3,
        background=background,
    )


def check_preprocessing(dataset: Dataset, preprocessing: AudioConfig | ImageConfig) -> None:
    """InputError when the preprocessing is for the other kind of data, or makes inputs too small for the CNN."""
    if isinstance(preprocessing, AudioConfig) != (dataset.kind == "audio"):
        asked = "audio" if isinstance(preprocessing, AudioConfig) else "image"
        raise InputError(
            f"{dataset.root} holds {dataset.kind} files, but the options given are for {asked} "
            f"(such as {'--sample-rate' if asked == 'audio' else '--image-size'}); drop them (or, for a folder that "
            f"also holds {asked} files, pass --kind {asked})"
        )
    height, width = feature_shape(preprocessing)[:2]
    if min(height, width) < MIN_INPUT_SIZE:
        what = (
            f"{height} frames × {width} mel bands (longer --clip-seconds, shorter --hop-length or more --n-mels)"
            if isinstance(preprocessing, AudioConfig)
            else f"{height} × {width} pixels (a larger --image-size)"
        )
        raise InputError(
            f"the model's input would be {what}; the CNN needs at least {MIN_INPUT_SIZE} × {MIN_INPUT_SIZE}"
        )
