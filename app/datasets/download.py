"""Download public datasets and convert them to the class-folder layout `<dir>/<name>/<class>/<file>`.

Downloads (app.datasets.fetch) show a progress bar, resume after an interruption and are checked against the
publisher's checksum where one is published; archives are read member by member (app.datasets.archives),
refusing any member whose path or link would leave the target folder.

| name | source | classes |
|---|---|---|
| speech-commands | Speech Commands v0.02, training archive (2.4 GB) | 35 words + `_background_noise_` |
| speech-commands-v1 | Speech Commands v0.01 (1.4 GB) | 30 words + `_background_noise_` |
| speech-commands-test | the official v0.02 test archive (112 MB) | 10 words, `_unknown_`, `_silence_` |
| fsdd | Free Spoken Digit Dataset v1.0.10 (GitHub archive, 16 MB) | `0`..`9` |
| mnist | MNIST idx files (torchvision's mirror, 11 MB) | `0`..`9` |
| cifar10 | CIFAR-10 python batches (163 MB) | the 10 CIFAR classes |

`testing_list.txt` (and, for Speech Commands, `validation_list.txt`) beside the class folders
name the official held-out files. Set `ONEPIPE_DOWNLOAD_BASE_URL` to fetch every file from a
mirror instead (the tests point it at a local server).

Example:
    >>> from app.datasets.download import download_dataset
    >>> download_dataset("fsdd", "data")  # doctest: +SKIP
    {'0': 300, '1': 300, ...}
"""

from __future__ import annotations

import dataclasses
import functools
import gzip
import io
import os
import pickle
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, ClassVar
from urllib.parse import quote

import numpy as np
from PIL import Image

from app.datasets.archives import ARCHIVE_READ_ERRORS, DamagedArchiveError, iter_archive
from app.datasets.fetch import BASE_URL_VARIABLE, fetch
from app.datasets.target_folder import DOWNLOAD_MARKER, check_target_folder
from app.errors import DatasetError, InputError
from app.paths import DOWNLOADED_SAMPLES_DIR
from app.staging import replace_when_complete

DEFAULT_DIR = DOWNLOADED_SAMPLES_DIR.parent  # PROJECT_ROOT/data
CACHE_FOLDER = ".downloads"  # archives and .part files, under the download dir
# Files a converter writes beside the class folders: the official held-out lists, and the dataset's licence
# and readme (any name starting so).
HELD_OUT_LISTS = ("validation_list.txt", "testing_list.txt")
LICENCE_PREFIXES = ("LICENSE", "README")

# Publishers' locations. Google publishes no checksums for Speech Commands, GitHub's generated
# archives have none; the MNIST and CIFAR-10 MD5 sums are the ones their publishers (and
# torchvision) give.
SPEECH_COMMANDS_URL = "https://storage.googleapis.com/download.tensorflow.org/data/"
FSDD_URL = "https://github.com/Jakobovski/free-spoken-digit-dataset/archive/refs/tags/"
MNIST_URL = "https://ossci-datasets.s3.amazonaws.com/mnist/"  # yann.lecun.com now refuses downloads
CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/"
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


@dataclass(frozen=True)
class RemoteFile:
    """One file a dataset is made from."""

    name: str  # file name under the base URL
    md5: str | None = None  # hex digest published by the source
    sha256: str | None = None


@dataclass(frozen=True)
class DatasetSource:
    """Where a dataset comes from and how it becomes class folders."""

    name: str  # the CLI name and the output folder name
    base_url: str
    files: tuple[RemoteFile, ...]
    # convert(downloaded file paths, output folder, limit per class) -> files written per class
    convert: Callable[[list[Path], Path, int | None], dict[str, int]]
    bundle: str  # shipped bundle whose classes it matches (samples folder name)
    licence: str
    # the same for the dashboard's samples, where it differs: files the shipped bundle did not train on
    convert_samples: Callable[[list[Path], Path, int | None], dict[str, int]] | None = None
    class_file_extension: str = ".wav"  # what convert writes into the class folders


# ---------------------------------------------------------------------------------------------
# Writing class folders


def _is_licence_or_readme(name: str) -> bool:
    return name.upper().startswith(LICENCE_PREFIXES)


def _written_beside_classes(name: str) -> bool:
    """Whether a converter writes a file of this name beside the class folders."""
    return name in HELD_OUT_LISTS or _is_licence_or_readme(name)


def _safe_name(name: str) -> str:
    if not name or name in (".", "..") or "/" in name or "\\" in name or "\0" in name:
        raise DatasetError(f"refusing the file or class name {name!r}; expected a plain name")
    return name


class _ClassFolderWriter:
    """Writes `<root>/<class>/<file>`, at most `limit` files per class, and the held-out lists."""

    def __init__(self, root: Path, limit: int | None) -> None:
        self.root = root
        self.limit = limit
        self.counts: dict[str, int] = {}
        self.written: set[str] = set()

    def wants(self, label: str) -> bool:
        return self.limit is None or self.counts.get(label, 0) < self.limit

    def write(self, label: str, file_name: str, data: bytes | IO[bytes]) -> str | None:
        """Write one file; returns its relative path "class/file", or None when the class is full."""
        if not self.wants(label):
            return None
        relative = f"{_safe_name(label)}/{_safe_name(file_name)}"
        path = self.root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "wb") as output:
            if isinstance(data, bytes):
                output.write(data)
            else:
                shutil.copyfileobj(data, output)
        self.counts[label] = self.counts.get(label, 0) + 1
        self.written.add(relative)
        return relative

    def write_image(self, label: str, file_name: str, pixels: np.ndarray) -> str | None:
        """Write (height, width) or (height, width, 3) uint8 pixels as PNG."""
        if not self.wants(label):
            return None
        buffer = io.BytesIO()
        Image.fromarray(np.ascontiguousarray(pixels)).save(buffer, format="PNG")
        return self.write(label, file_name, buffer.getvalue())

    def write_list(self, file_name: str, relative_paths: list[str]) -> None:
        """Write a Speech Commands style list (one "class/file" a line) of the files kept."""
        kept = [path for path in relative_paths if path in self.written]
        if kept:
            (self.root / file_name).write_text("".join(f"{path}\n" for path in kept))


# ---------------------------------------------------------------------------------------------
# Converters, one per source


def _convert_speech_commands(paths: list[Path], root: Path, limit: int | None) -> dict[str, int]:
    """`<word>/<file>.wav` members become class folders; top-level lists and licence are kept."""
    writer = _ClassFolderWriter(root, limit)
    lists: dict[str, list[str]] = {}
    for member, file in iter_archive(paths[0]):
        if len(member.parts) == 2 and member.suffix.lower() == ".wav":
            writer.write(member.parts[0], member.parts[1], file)
        elif len(member.parts) == 1 and member.name in HELD_OUT_LISTS:
            lists[member.name] = file.read().decode("utf-8").split()
        elif len(member.parts) == 1 and _is_licence_or_readme(member.name):
            (root / _safe_name(member.name)).write_bytes(file.read())
    for name, relative_paths in lists.items():
        writer.write_list(name, relative_paths)
    return writer.counts


def _convert_fsdd(paths: list[Path], root: Path, limit: int | None) -> dict[str, int]:
    """`*/recordings/<digit>_<speaker>_<index>.wav` go to `<digit>/`, names unchanged."""
    writer = _ClassFolderWriter(root, limit)
    for member, file in iter_archive(paths[0]):
        if len(member.parts) >= 2 and member.parts[-2] == "recordings" and member.suffix.lower() == ".wav":
            digit = member.name.split("_", 1)[0]
            if digit.isdigit():
                writer.write(digit, member.name, file)
        elif len(member.parts) == 2 and _is_licence_or_readme(member.name):
            (root / _safe_name(member.name)).write_bytes(file.read())
    return writer.counts


def read_idx(path: Path) -> np.ndarray:
    """An idx file (gzipped or not) as a uint8 array: images (count, rows, columns), labels (count,)."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as file:
            data = file.read()
    except (OSError, EOFError) as error:
        raise DatasetError(f"{path.name} is not a readable idx file ({error})") from error
    if len(data) < 4 or data[:2] != b"\0\0" or data[2] != 0x08:
        raise DatasetError(f"{path.name} is not an unsigned-byte idx file; expected magic 0x0000080N")
    dimensions = data[3]
    header = 4 + 4 * dimensions
    shape = tuple(int.from_bytes(data[4 + 4 * index : 8 + 4 * index], "big") for index in range(dimensions))
    if len(data) != header + int(np.prod(shape)):
        raise DatasetError(f"{path.name} holds {len(data) - header} bytes of data; expected shape {shape}")
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(shape)


def _convert_mnist(
    paths: list[Path], root: Path, limit: int | None, training_set_first: bool = False
) -> dict[str, int]:
    """idx files to `<digit>/<split>-<index>.png` (28×28 grey); test first (so a limited dataset has a test
    set) unless training_set_first, test images listed in testing_list.txt."""
    by_name = {path.name: path for path in paths}
    writer = _ClassFolderWriter(root, limit)
    testing = []
    splits = (("test", "t10k"), ("train", "train"))
    for split, prefix in reversed(splits) if training_set_first else splits:
        images = read_idx(by_name[f"{prefix}-images-idx3-ubyte.gz"])
        labels = read_idx(by_name[f"{prefix}-labels-idx1-ubyte.gz"])
        if images.ndim != 3 or labels.shape != images.shape[:1]:
            raise DatasetError(f"MNIST {split}: {images.shape} images for {labels.shape} labels; expected equal counts")
        for index, (image, label) in enumerate(zip(images, labels, strict=True)):
            relative = writer.write_image(str(int(label)), f"{split}-{index:05d}.png", image)
            if relative and split == "test":
                testing.append(relative)
    writer.write_list("testing_list.txt", testing)
    return writer.counts


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickles dicts, lists and NumPy arrays only: a CIFAR batch cannot run code."""

    _ALLOWED: ClassVar[set[tuple[str, str]]] = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("_codecs", "encode"),
    }

    def find_class(self, module: str, name: str):
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"refusing {module}.{name} in a CIFAR batch; expected arrays only")
        return super().find_class(module, name)


def _load_batch(file: IO[bytes], name: str) -> dict:
    try:
        batch = _ArrayUnpickler(file, encoding="bytes").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError) as error:
        raise DatasetError(f"CIFAR-10 file {name} is not a python batch ({error})") from error
    if not isinstance(batch, dict):
        raise DatasetError(f"CIFAR-10 file {name} holds a {type(batch).__name__}; expected a dict")
    return {key.decode() if isinstance(key, bytes) else key: value for key, value in batch.items()}


def _convert_cifar10(
    paths: list[Path], root: Path, limit: int | None, training_set_first: bool = False
) -> dict[str, int]:
    """Python batches to `<class>/<split>-<index>.png` (32×32 RGB); test first (so a limited dataset has a
    test set) unless training_set_first, test images listed in testing_list.txt."""
    batches: dict[str, dict] = {}
    for member, file in iter_archive(paths[0]):
        if member.name == "test_batch" or member.name.startswith("data_batch_") or member.name == "batches.meta":
            batches[member.name] = _load_batch(file, member.name)
    class_names = list(CIFAR10_CLASSES)
    if "batches.meta" in batches:
        class_names = [
            name.decode() if isinstance(name, bytes) else str(name) for name in batches["batches.meta"]["label_names"]
        ]
    training = sorted(name for name in batches if name.startswith("data_batch_"))
    if "test_batch" not in batches or not training:
        raise DatasetError(f"{paths[0].name} lacks test_batch or data_batch_*; expected the CIFAR-10 python version")
    order = [*training, "test_batch"] if training_set_first else ["test_batch", *training]
    writer = _ClassFolderWriter(root, limit)
    testing = []
    train_index = 0
    for batch_name in order:
        batch = batches[batch_name]
        images = np.asarray(batch["data"], dtype=np.uint8).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
        for index, (image, label) in enumerate(zip(images, batch["labels"], strict=True)):
            split = "test" if batch_name == "test_batch" else "train"
            number = index if split == "test" else train_index
            train_index += split == "train"
            relative = writer.write_image(class_names[int(label)], f"{split}-{number:05d}.png", image)
            if relative and split == "test":
                testing.append(relative)
    writer.write_list("testing_list.txt", testing)
    return writer.counts


# The first source of a bundle is the one the dashboard suggests for example files: the smallest download
# (the official Speech Commands test archive is 112 MB, the full v0.02 archive 2.3 GB).
DATASETS: dict[str, DatasetSource] = {
    source.name: source
    for source in (
        DatasetSource(
            "speech-commands-test",
            SPEECH_COMMANDS_URL,
            (RemoteFile("speech_commands_test_set_v0.02.tar.gz"),),
            _convert_speech_commands,
            bundle="speech-commands",
            licence="CC BY 4.0 (Warden 2018, arXiv:1804.03209)",
        ),
        DatasetSource(
            "speech-commands",
            SPEECH_COMMANDS_URL,
            (RemoteFile("speech_commands_v0.02.tar.gz"),),
            _convert_speech_commands,
            bundle="speech-commands",
            licence="CC BY 4.0 (Warden 2018, arXiv:1804.03209)",
        ),
        DatasetSource(
            "speech-commands-v1",
            SPEECH_COMMANDS_URL,
            (RemoteFile("speech_commands_v0.01.tar.gz"),),
            _convert_speech_commands,
            bundle="speech-commands",
            licence="CC BY 4.0 (Warden 2018, arXiv:1804.03209)",
        ),
        DatasetSource(
            "fsdd",
            FSDD_URL,
            (RemoteFile("v1.0.10.zip"),),
            _convert_fsdd,
            bundle="spoken-digits",
            licence="CC BY-SA 4.0 (Jakobovski et al., Free Spoken Digit Dataset)",
        ),
        DatasetSource(
            "mnist",
            MNIST_URL,
            (
                RemoteFile("train-images-idx3-ubyte.gz", md5="f68b3c2dcbeaaa9fbdd348bbdeb94873"),
                RemoteFile("train-labels-idx1-ubyte.gz", md5="d53e105ee54ea40749a09fcbcd1e9432"),
                RemoteFile("t10k-images-idx3-ubyte.gz", md5="9fb629c4189551a2d022fa330f9573f3"),
                RemoteFile("t10k-labels-idx1-ubyte.gz", md5="ec29112dd5afa0611ce80d1b7f02629c"),
            ),
            _convert_mnist,
            bundle="mnist",
            licence="CC BY-SA 3.0 (LeCun, Cortes and Burges)",
            # the shipped bundle trained on MNIST's test set: its samples come from the training set
            convert_samples=functools.partial(_convert_mnist, training_set_first=True),
            class_file_extension=".png",
        ),
        DatasetSource(
            "cifar10",
            CIFAR10_URL,
            (RemoteFile("cifar-10-python.tar.gz", md5="c58f30108f718f92721af3b95e74349a"),),
            _convert_cifar10,
            bundle="cifar10",
            licence="cite Krizhevsky 2009, Learning Multiple Layers of Features from Tiny Images",
            # samples come from the test set (the default order), which the shipped bundle also learned most of
            class_file_extension=".png",
        ),
    )
}


def resolve_source(name: str | DatasetSource) -> DatasetSource:
    """The DatasetSource called `name` (or `name` itself if it is one).

    Raises:
        InputError: the name is unknown.
    """
    if isinstance(name, DatasetSource):
        return name
    if name not in DATASETS:
        raise InputError(f"unknown dataset {name!r}; expected one of {', '.join(DATASETS)}")
    return DATASETS[name]


def file_url(source: DatasetSource, remote: RemoteFile, base_url: str | None = None) -> str:
    """The URL of one file: `base_url`, else $ONEPIPE_DOWNLOAD_BASE_URL, else the publisher's."""
    base = base_url or os.environ.get(BASE_URL_VARIABLE) or source.base_url
    return f"{base.rstrip('/')}/{quote(remote.name)}"


def download_dataset(
    name: str | DatasetSource,
    directory: str | Path = DEFAULT_DIR,
    *,
    limit_per_class: int | None = None,
    base_url: str | None = None,
    folder_name: str | None = None,
    replace: bool = False,
    keep_archives: bool = False,
    progress: bool = True,
    replace_unmarked: bool = False,
) -> dict[str, int]:
    """Download a dataset and write it as `<directory>/<folder_name>/<class>/<file>`.

    The class folders are written to a temporary folder and renamed into place, so a failed run
    leaves nothing half-made. Archives go to `<directory>/.downloads/` and are deleted afterwards
    unless `keep_archives`; an interrupted download is resumed by running again.

    Args:
        name: a key of DATASETS (or a DatasetSource).
        directory: parent of the dataset folder.
        limit_per_class: keep only the first N files of each class (test images first for
            mnist and cifar10); None keeps all.
        base_url: fetch from this URL prefix instead of the publisher's (also $ONEPIPE_DOWNLOAD_BASE_URL).
        folder_name: output folder name (default: the dataset name).
        replace: replace an existing output folder that an earlier download of this dataset wrote (it holds
            a DOWNLOAD_MARKER file naming it, and nothing was added to it) instead of refusing; any other folder
            is never deleted (app.datasets.target_folder).
        keep_archives: keep the downloaded archives.
        progress: show progress bars.
        replace_unmarked: with replace, replace the folder whatever it holds, marked or not (the dashboard's
            own samples folder, which earlier versions wrote unmarked).

    Returns:
        Files written per class.

    Raises:
        InputError: unknown dataset or a bad limit.
        DatasetError: the output folder exists, a download or checksum fails, or an archive is unsafe.
    """
    source = resolve_source(name)
    if limit_per_class is not None and limit_per_class < 1:
        raise InputError(f"received --limit-per-class {limit_per_class}; expected a positive number")
    directory = Path(directory)
    marker = (DOWNLOAD_MARKER, source.name)
    target = check_target_folder(  # a link is followed: the data goes where it points, the link stays
        directory / (folder_name or source.name),
        marker,
        f"download {source.name}",
        source.class_file_extension,
        replace,
        top_level_file=_written_beside_classes,
        rewrite_any=replace_unmarked,
    )
    cache = directory / CACHE_FOLDER
    paths = [
        fetch(
            file_url(source, remote, base_url),
            cache / remote.name,
            md5=remote.md5,
            sha256=remote.sha256,
            progress=progress,
        )
        for remote in source.files
    ]
    with replace_when_complete(target, marker) as staging:
        try:
            counts = source.convert(paths, staging, limit_per_class)
        except (DamagedArchiveError, *ARCHIVE_READ_ERRORS) as error:  # members are read outside iter_archive
            for path in paths:
                path.unlink(missing_ok=True)  # or every later run would reuse the broken download
            raise DatasetError(
                f"{', '.join(path.name for path in paths)} is damaged or incomplete ({error}); it was deleted, "
                "run the command again to download it afresh"
            ) from None
        if not counts:
            raise DatasetError(f"{', '.join(path.name for path in paths)} held no files of {source.name}'s layout")
    if not keep_archives:
        for path in paths:
            path.unlink(missing_ok=True)
        if cache.exists() and not any(cache.iterdir()):
            cache.rmdir()
    return dict(sorted(counts.items()))


def download_samples(
    name: str, per_class: int = 4, base_url: str | None = None, progress: bool = True
) -> dict[str, int]:
    """Fetch a few files per class into DOWNLOADED_SAMPLES_DIR/<bundle>/ for the dashboard: for mnist, images of
    its training set, which the shipped bundle never saw; for cifar10, of its test set, most of which the shipped
    bundle learned from too; for the speech datasets, the first clips of each class, which the shipped bundles may
    have trained on.

    For cifar10 (no honest offline sample exists) this is how the dashboard gets its examples.
    """
    source = resolve_source(name)
    if source.convert_samples is not None:
        source = dataclasses.replace(source, convert=source.convert_samples)
    return download_dataset(
        source,
        DOWNLOADED_SAMPLES_DIR,
        limit_per_class=per_class,
        base_url=base_url,
        folder_name=source.bundle,
        replace=True,
        progress=progress,
        replace_unmarked=True,
    )
