"""Datasets in the class-folder layout `root/<class>/<file>`, and a stable speaker-aware split.

The split follows TensorFlow's speech_commands `which_set()`: a file's set is decided by a hash of
its name with everything from `_nohash_` on removed, so one speaker's clips stay together and a
file keeps its set as the dataset grows. `validation_list.txt` and `testing_list.txt` at the root
(Speech Commands; MNIST and CIFAR-10 as downloaded have a test list only) take precedence for their
set; a set without a list is still drawn by the hash from the unlisted files.

Example:
    >>> import tempfile
    >>> from pathlib import Path
    >>> root = Path(tempfile.mkdtemp())
    >>> for name in ("yes/ab12cd34_nohash_0.wav", "yes/ab12cd34_nohash_1.wav", "no/ef56ab78_nohash_0.wav"):
    ...     (root / name).parent.mkdir(exist_ok=True)
    ...     _ = (root / name).write_bytes(b"")
    >>> dataset = find_dataset(root)
    >>> dataset.class_names, dataset.kind, dataset.counts()
    (('no', 'yes'), 'audio', {'no': 1, 'yes': 2})
    >>> speaker_key(Path("yes/ab12cd34_nohash_1.wav"))
    'ab12cd34'
    >>> which_set(Path("yes/ab12cd34_nohash_0.wav"), 10, 10) == which_set(Path("no/ab12cd34_nohash_5.wav"), 10, 10)
    True
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from app.config import AUDIO_EXTENSIONS, IMAGE_EXTENSIONS
from app.errors import DatasetError

BACKGROUND_NOISE_FOLDER = "_background_noise_"
SPLITS = ("train", "validation", "test")
# Folder names of a dataset split into sets (root/train/<class>/…), which are not classes.
SPLIT_FOLDER_NAMES = {"train", "training", "val", "valid", "validation", "dev", "test", "testing", "eval"}
MAX_FILES_PER_CLASS = 2**27 - 1  # as in TensorFlow's speech_commands


@dataclass(frozen=True)
class Dataset:
    """Files of a class-folder dataset with their labels (index into class_names). `files` holds every entry named
    like a file of the kind, including any that is not a regular file (reading it says why it cannot be used)."""

    root: Path
    kind: str  # "audio" or "image"
    class_names: tuple[str, ...]
    files: tuple[Path, ...]
    labels: tuple[int, ...]
    background_noise_files: tuple[Path, ...] = ()
    # {folder name: files} of the other kind, left out (e.g. pictures among audio class folders)
    other_kind_files: dict[str, int] = field(default_factory=dict)
    # True when every class is named like a set (train/, test/ …) and holds folders: probably root/<set>/<class>/
    looks_split_into_sets: bool = False

    def counts(self) -> dict[str, int]:
        """Files per class name."""
        counter = Counter(self.labels)
        return {name: counter.get(index, 0) for index, name in enumerate(self.class_names)}


def file_kind(path: Path) -> str | None:
    """'audio', 'image' or None, from the file name's ending."""
    name = path.name.lower()
    if name.endswith(AUDIO_EXTENSIONS):
        return "audio"
    if name.endswith(IMAGE_EXTENSIONS):
        return "image"
    return None


def find_dataset(
    root: str | Path,
    kind: str | None = None,
    class_names: list[str] | None = None,
    folder_classes: dict[str, str] | None = None,
) -> Dataset:
    """Scan `root/<class>/<file>`; the kind is the majority of file types unless forced.

    Args:
        root: dataset folder.
        kind: "audio" or "image" to force; None to detect.
        class_names: use exactly these classes in this order (e.g. a bundle's), ignoring others.
        folder_classes: with class_names, {folder name: class name} for folders named otherwise (e.g.
            {"zero": "0"}); several folders may feed one class.

    Raises:
        DatasetError: missing folder, no class folders, or no files of the kind.
    """
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"data folder not found: {root}; expected a folder of class folders root/<class>/<file>")
    folders = sorted(
        path
        for path in root.iterdir()
        if path.is_dir() and not path.name.startswith(".") and path.name != BACKGROUND_NOISE_FOLDER
    )
    aliases = folder_classes if class_names is not None and folder_classes else {}
    class_of = {folder: aliases.get(folder.name, folder.name) for folder in folders}
    if class_names is not None:
        folders = sorted(
            (folder for folder in folders if class_of[folder] in class_names),
            key=lambda folder: (class_names.index(class_of[folder]), folder.name),
        )
    files_by_folder = {folder: data_files(folder) for folder in folders}
    if kind is None:
        kind = _majority_kind(files_by_folder, root)
    if kind not in ("audio", "image"):
        raise DatasetError(f"kind must be 'audio' or 'image'; received {kind!r}")
    names = list(class_names) if class_names is not None else []
    files: list[Path] = []
    labels: list[int] = []
    other_kind: dict[str, int] = {}
    for folder, folder_files in files_by_folder.items():
        matching = [p for p in folder_files if file_kind(p) == kind]
        if len(matching) < len(folder_files):
            other_kind[folder.name] = len(folder_files) - len(matching)
        if not matching:
            continue
        if class_names is None:
            names.append(folder.name)
        files.extend(matching)
        labels.extend([names.index(class_of[folder])] * len(matching))
    if class_names is None and len(names) < 2:
        others = f" ({sum(other_kind.values())} other files were not {kind}; --kind chooses)" if other_kind else ""
        raise DatasetError(
            f"found {len(names)} class folder(s) with {kind} files under {root}; need at least 2{others}"
        )
    split_into_sets = set(names) <= SPLIT_FOLDER_NAMES and all(_has_subfolders(root / name) for name in names)
    noise_folder = root / BACKGROUND_NOISE_FOLDER
    noise = tuple(sorted(p for p in noise_folder.glob("*") if file_kind(p) == "audio")) if noise_folder.is_dir() else ()
    return Dataset(root, kind, tuple(names), tuple(files), tuple(labels), noise, other_kind, split_into_sets)


def data_files(folder: Path) -> list[Path]:
    """Every entry under `folder` named like an audio or image file, sorted, except folders: FIFOs, sockets and
    broken links are listed too, so that training and evaluation report them as skipped, with the reason, rather
    than pass over them."""
    return sorted(path for path in folder.rglob("*") if file_kind(path) and not path.is_dir())


def _majority_kind(files_by_folder: dict[Path, list[Path]], root: Path) -> str:
    """The kind ("audio" or "image") of most of the files; DatasetError when there are none."""
    kinds = Counter(kind for files in files_by_folder.values() for path in files if (kind := file_kind(path)))
    if not kinds:
        raise DatasetError(
            f"no audio or image files in class folders under {root}; expected root/<class>/<file> "
            f"with audio ({', '.join(AUDIO_EXTENSIONS)}) or images ({', '.join(IMAGE_EXTENSIONS)})"
        )
    return kinds.most_common(1)[0][0]


def _has_subfolders(folder: Path) -> bool:
    return any(path.is_dir() for path in folder.iterdir())


def speaker_key(path: Path, group_pattern: str | None = None) -> str:
    """The name part that groups files of one speaker (or one source object).

    With `group_pattern`, its first capture group on the file name (e.g. `^[^_]+_([^_]+)_` for FSDD's
    `<digit>_<speaker>_<n>.wav`). Otherwise Speech Commands' convention: the text before
    `_nohash_`, without a leading `<word>_` (its `_unknown_` files are `<word>_<speaker>_nohash_…`);
    a name without `_nohash_` is its own group.
    """
    name = path.name
    if group_pattern:
        match = re.search(group_pattern, name)
        if match:
            return match.group(1) or name
    if "_nohash_" in name:
        return name.split("_nohash_")[0].split("_")[-1]
    return name


def which_set(
    path: Path, validation_percent: float, test_percent: float, group_pattern: str | None = None, salt: str = ""
) -> str:
    """'train', 'validation' or 'test' from a stable hash of the speaker key (TensorFlow's which_set)."""
    digest = hashlib.sha1((salt + speaker_key(path, group_pattern)).encode("utf-8")).hexdigest()
    percentage = (int(digest, 16) % (MAX_FILES_PER_CLASS + 1)) * (100.0 / MAX_FILES_PER_CLASS)
    if percentage < validation_percent:
        return "validation"
    if percentage < validation_percent + test_percent:
        return "test"
    return "train"


def split_dataset(
    dataset: Dataset,
    validation_percent: float,
    test_percent: float,
    group_pattern: str | None = None,
    salt: str = "",
    validation_groups: tuple[str, ...] = (),
    test_groups: tuple[str, ...] = (),
) -> dict[str, list[int]]:
    """Indices of `dataset.files` per split.

    Named groups (speaker keys, see `speaker_key`) come first: when `validation_groups` or `test_groups`
    is given, exactly those speakers are validation or test and everyone else trains. Otherwise a list
    file at the root decides its set (validation_list.txt, testing_list.txt) and the hash the rest, with
    the percentage of a listed set taken as 0. Both percentages 0 put every file in training, lists or
    not (a final model on all the data).
    """
    listed: dict[str, str] = {}
    listed_splits: set[str] = set()
    for split, list_name in (("validation", "validation_list.txt"), ("test", "testing_list.txt")):
        list_path = dataset.root / list_name
        if list_path.is_file() and (validation_percent or test_percent):
            listed_splits.add(split)
            for line in list_path.read_text().splitlines():
                if line.strip():
                    listed[line.strip()] = split
    validation_percent = 0.0 if "validation" in listed_splits else validation_percent
    test_percent = 0.0 if "test" in listed_splits else test_percent
    indices: dict[str, list[int]] = {split: [] for split in SPLITS}
    named = {**{group: "validation" for group in validation_groups}, **{group: "test" for group in test_groups}}
    for index, path in enumerate(dataset.files):
        if named:
            split = named.get(speaker_key(path, group_pattern), "train")
        else:
            split = listed.get(path.relative_to(dataset.root).as_posix()) or which_set(
                path, validation_percent, test_percent, group_pattern, salt
            )
        indices[split].append(index)
    return indices
