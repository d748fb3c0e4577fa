"""The first step of training: check where the bundle goes, find the dataset and its preprocessing, refuse
what cannot train before anything slow runs, and warn of what was left out.

Example:
    >>> import tempfile
    >>> from pathlib import Path
    >>> from PIL import Image
    >>> from app.training.scan import check_out_dir, scan
    >>> scratch = tempfile.TemporaryDirectory()
    >>> root = Path(scratch.name) / "data"
    >>> for name in ("dark", "light"):
    ...     (root / name).mkdir(parents=True)
    ...     Image.new("L", (16, 16), 0 if name == "dark" else 255).save(root / name / "0.png")
    >>> dataset, preprocessing = scan(root, None, None, {})
    >>> dataset.kind, dataset.class_names, preprocessing.image_size
    ('image', ('dark', 'light'), (16, 16))
    >>> check_out_dir(root / "model", [root], force=False)
    Traceback (most recent call last):
    ...
    app.errors.InputError: --out ... is inside the data folder ...
    >>> scratch.cleanup()
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from app.bundle import check_bundle_target
from app.class_folders import Dataset, find_dataset
from app.config import AudioConfig, ImageConfig
from app.errors import InputError
from app.training.messages import first_names
from app.training.preprocessing import choose_preprocessing

logger = logging.getLogger(__name__)


def check_out_dir(out_dir: str | Path, data_dirs: Sequence[str | Path], force: bool) -> Path:
    """The resolved bundle folder, checked before any training: BundleError when something other than a
    bundle (or a bundle, without force) is there, InputError when it lies inside one of `data_dirs`, where
    it would become a class of the next run."""
    out_dir = check_bundle_target(out_dir, force)
    for folder in data_dirs:
        if out_dir.is_relative_to(Path(folder).resolve()):
            raise InputError(
                f"--out {out_dir} is inside the data folder {folder}, where the bundle would become a class "
                "of the next run; write it elsewhere (e.g. models/NAME)"
            )
    return out_dir


def scan(
    data_dir: str | Path,
    kind: str | None,
    preprocessing: AudioConfig | ImageConfig | None,
    extra_folder_classes: dict[str, str],
) -> tuple[Dataset, AudioConfig | ImageConfig]:
    """The dataset under `data_dir` and the preprocessing to train with (see choose_preprocessing).

    Raises InputError when `extra_folder_classes` maps folders to classes the dataset does not have, or the
    preprocessing does not fit the data. Logs warnings (shown even with --quiet) naming the files of the other
    kind left out, and a note when the classes look like sets (root/train/<class>/…).
    """
    dataset = find_dataset(data_dir, kind)
    unknown = sorted(set(extra_folder_classes.values()) - set(dataset.class_names))
    if unknown:
        raise InputError(
            f"extra folders are mapped to {', '.join(unknown)}, which {'is' if len(unknown) == 1 else 'are'} not "
            f"a class of {dataset.root} ({first_names(dataset.class_names)})"
        )
    preprocessing = choose_preprocessing(dataset, preprocessing)
    if dataset.other_kind_files:
        other = "image" if dataset.kind == "audio" else "audio"
        left_out = ", ".join(f"{name}/ ({count})" for name, count in dataset.other_kind_files.items())
        logger.warning("left out the %s files of this %s dataset: %s", other, dataset.kind, left_out)
    if dataset.looks_split_into_sets:
        training_set = next((name for name in dataset.class_names if name.startswith("train")), dataset.class_names[0])
        logger.warning(
            "note: the classes are %s, each holding folders; if these are sets rather than classes "
            "(root/<set>/<class>/), stop and give one set, e.g. %s",
            ", ".join(dataset.class_names),
            dataset.root / training_set,
        )
    return dataset, preprocessing
