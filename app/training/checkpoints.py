"""The checkpoint folder of a training run, beside its bundle: `.NAME.checkpoint/` for `--out models/NAME`.

Each completed epoch leaves a checkpoint there (app.training.loop_state writes it: the model, the optimizer, the
best epoch so far, the history and the data order), so that `train … --resume` continues a killed run from its
last completed epoch. The folder also holds `run.json`, the key of the run's data and recipe: --resume continues
only a run of the same data and recipe, and refuses, saying so, a checkpoint another command left. Without
--resume a run starts afresh and first removes the checkpoint folder of the same --out; writing the bundle
removes it. Workers other than the chief (app.training.distribute) keep theirs in a `worker-K/` subfolder (on
their own machine), so that nothing but the chief's bundle goes to --out.

Example:
    >>> import tempfile
    >>> from pathlib import Path
    >>> from app.training.checkpoints import open_checkpoints
    >>> scratch = tempfile.TemporaryDirectory()
    >>> out = Path(scratch.name) / "models" / "digits"
    >>> place = open_checkpoints(out, resume=False, worker_index=0, key="abc")
    >>> place.folder.name, place.resume
    ('.digits.checkpoint', False)
    >>> place.mark()  # the loop marks it before its first checkpoint
    >>> open_checkpoints(out, resume=True, worker_index=0, key="abc").resume
    True
    >>> open_checkpoints(out, resume=True, worker_index=0, key="other")
    Traceback (most recent call last):
    ...
    app.errors.InputError: --resume: the checkpoint in ... was left by a run of other data or another recipe; ...
    >>> scratch.cleanup()
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.class_folders import Dataset
from app.config import AudioConfig, ImageConfig, TrainConfig, to_dict
from app.errors import InputError
from app.training.distribute import Distribution

logger = logging.getLogger(__name__)

MARKER_FILE = "run.json"  # {"key": the run's key}: what makes a folder one of these, and whose run it is
WORKER_PREFIX = "worker-"  # worker K > 0 keeps its checkpoints in worker-K/
KEY_VERSION = 1  # part of the key: a OnePipe that checkpoints differently changes it


@dataclass(frozen=True)
class CheckpointFolder:
    """Where this process keeps its epoch checkpoints, the run's key, and whether to continue from them."""

    folder: Path  # the chief's `.NAME.checkpoint/`, or `.NAME.checkpoint/worker-K/` of worker K
    key: str  # run_key(…) of the run's data and recipe
    resume: bool  # True: a checkpoint of this same run is there to continue from

    def mark(self) -> None:
        """Create the folder with its run.json (written whole: through a temporary file renamed into place)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        marker = self.folder / MARKER_FILE
        if _read_key(marker) == self.key:
            return
        with tempfile.NamedTemporaryFile("w", dir=self.folder, prefix=f".{MARKER_FILE}.", delete=False) as handle:
            json.dump({"key": self.key, "key_version": KEY_VERSION}, handle)
        os.replace(handle.name, marker)

    def finish(self, distribution: Distribution) -> None:
        """Delete the folder once every worker has come here (one collective when there are several): the chief
        calls it once the bundle is written, the other workers once they have trained."""
        distribution.wait_for_workers()
        self.remove()

    def remove(self) -> None:
        """Delete the folder (the chief's holds the other workers' when they share a disk), and a worker's
        parent folder once empty."""
        shutil.rmtree(self.folder, ignore_errors=True)
        if self.folder.name.startswith(WORKER_PREFIX):
            with contextlib.suppress(OSError):
                self.folder.parent.rmdir()


def checkpoint_folder(out_dir: Path, worker_index: int = 0) -> Path:
    """`.NAME.checkpoint/` beside the bundle folder `out_dir`, or its `worker-K/` subfolder for worker K > 0."""
    root = out_dir.parent / f".{out_dir.name}.checkpoint"
    return root if worker_index == 0 else root / f"{WORKER_PREFIX}{worker_index}"


def open_checkpoints(out_dir: Path, resume: bool, worker_index: int, key: str) -> CheckpointFolder:
    """The checkpoint folder of a run writing the bundle `out_dir`: to continue from with `resume` when it holds
    a checkpoint of the run keyed `key`; otherwise emptied, a fresh run starting.

    Raises:
        InputError: `resume` and the folder holds another run's checkpoint (its key differs), or the folder is
            not a checkpoint folder (no run.json) and cannot be reused.
    """
    folder = checkpoint_folder(out_dir, worker_index)
    place = CheckpointFolder(folder, key, resume=False)
    found_key = _read_key(folder / MARKER_FILE)
    if found_key is None and folder.exists() and any(not p.name.startswith(WORKER_PREFIX) for p in folder.iterdir()):
        raise InputError(f"{folder} is not a training checkpoint (it has no {MARKER_FILE}); move it away or delete it")
    if found_key is None:  # nothing here, or only other workers' folders
        if resume:
            logger.info("no checkpoint of an earlier run in %s: starting at epoch 1", folder)
        return place
    if resume and found_key == key:
        return CheckpointFolder(folder, key, resume=True)
    if resume:
        raise InputError(
            f"--resume: the checkpoint in {folder} was left by a run of other data or another recipe; "
            "run the same command as that run with --resume, or this one without --resume to start afresh "
            "(which deletes that checkpoint)"
        )
    logger.info("starting afresh: deleting the checkpoint of an earlier run in %s", folder)
    place.remove()
    return place


def run_key(
    dataset: Dataset,
    splits: dict[str, list[int]],
    preprocessing: AudioConfig | ImageConfig,
    train_config: TrainConfig,
    group_pattern: str | None,
    extra_train_dirs: Sequence[str | Path],
    extra_folder_classes: dict[str, str],
    distribution: Distribution,
    source: dict[str, Any] | None = None,
    teacher: dict[str, Any] | None = None,
) -> str:
    """A SHA-256 hex key of what a run trains on and how: the data's files (paths, sizes, modification times),
    their split, the preprocessing, the recipe, the extra training folders (their paths), the distribution
    (its summary and this worker's index) and the bundle it starts from (`source`: its name, model sha256 and
    layers taken, app.training.init_from; None: from scratch) and the bundle that teaches it (`teacher`,
    app.training.distill; None: none). Two runs with the same key continue one another."""
    files = [(str(path), *_size_and_time(path)) for path in dataset.files]
    parts = {
        "version": KEY_VERSION,
        "root": str(Path(dataset.root).resolve()),
        "files": files,
        "labels": list(dataset.labels),
        "splits": splits,
        "preprocessing": to_dict(preprocessing),
        "train_config": to_dict(train_config),
        "group_pattern": group_pattern,
        "extra_train_dirs": [str(Path(folder).resolve()) for folder in extra_train_dirs],
        "extra_folder_classes": extra_folder_classes,
        "distribution": {**distribution.summary(), "worker_index": distribution.worker_index},
    }
    if source is not None:  # absent from scratch: the keys of such runs stay as they were
        parts["init_from"] = source
    if teacher is not None:
        parts["distilled_from"] = teacher
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def _size_and_time(path: Path) -> tuple[int, int]:
    try:
        status = Path(path).stat()
    except OSError:
        return -1, -1
    return status.st_size, status.st_mtime_ns


def _read_key(marker: Path) -> str | None:
    try:
        return str(json.loads(marker.read_text())["key"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
