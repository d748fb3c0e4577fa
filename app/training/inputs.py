"""The features of a training run's files, in a store on disk rather than in one array in memory.

`extract_to_store` reads every file once to learn its content key, then has app.features extract (or find in its
cache) the features of one block of files at a time and writes them into a scratch store (app.training.store):
memory holds one block, whatever the number of files. A block is a set of whole cache shards (app.features shards
its cache by the first two hex digits of the content key), so each shard of the cache is rewritten once per run,
not once per block. `split_examples` then gives each split its examples: the training split stays in the store,
read batch by batch while fitting; the validation and test splits, a tenth of the files each by default, are read
into memory, where Keras' validation and the held-out scores take them.

Example:
    >>> import tempfile
    >>> from pathlib import Path
    >>> import numpy as np
    >>> import scipy.io.wavfile
    >>> from app.config import AudioConfig
    >>> from app.training.inputs import extract_to_store, split_examples
    >>> scratch = tempfile.TemporaryDirectory()
    >>> folder = Path(scratch.name)
    >>> tone = 0.3 * np.sin(2 * np.pi * 440 * np.arange(16000) / 16000)  # 1 s at 16 kHz
    >>> for name in ("a", "b", "c"):
    ...     scipy.io.wavfile.write(folder / f"{name}.wav", 16000, (tone * 32767).astype(np.int16))
    >>> _ = (folder / "broken.wav").write_bytes(b"not audio")
    >>> files = sorted(folder.glob("*.wav"))  # a, b, broken, c
    >>> extraction = extract_to_store(files, AudioConfig(), cache_dir=folder / "cache", progress=False)
    >>> extraction.arrays.shape, extraction.kept.tolist(), [Path(file).name for file, _ in extraction.skipped]
    ((3, 97, 40), [0, 1, 3], ['broken.wav'])
    >>> arrays = split_examples(extraction, {"train": [0, 1, 2], "test": [3]}, np.array([0, 1, 0, 1]))
    >>> type(arrays["train"][0]).__name__, arrays["train"][1].tolist(), type(arrays["test"][0]).__name__
    ('StoredExamples', [0, 1], 'ndarray')
    >>> scratch.cleanup()
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from app.config import AudioConfig, ImageConfig
from app.errors import DatasetError, InputError
from app.features import WORKERS, content_key, default_cache_dir, extract_features, feature_shape
from app.sources import read_source_bytes
from app.step_progress import step_progress
from app.training.store import ExampleRows, StoredExamples, create_store

logger = logging.getLogger(__name__)

BLOCK_BYTES = 64 * 2**20  # features (as float32 or uint8) extracted per block: what memory holds at once
SHARDS = 256  # app.features' cache shards: the first two hex digits of a content key
KEY_CHUNK = 64  # files read and hashed per task
SPLITS_IN_MEMORY = ("validation", "test")
STATISTICS_CHUNK_ROWS = 1024  # rows read at a time for the input statistics


@dataclass
class StoredExtraction:
    """As app.features.Extraction, with the arrays in a store: the readable files' features in input order."""

    arrays: StoredExamples  # (kept, time, n_mels) float32 spectrograms or (kept, height, width, channels) uint8
    kept: np.ndarray  # indices into the input file list, (kept,)
    skipped: list[tuple[str, str]]  # (file, reason), in input order
    keys: list[str | None]  # content key of every input file (None if it could not be read)

    def readable_keys(self) -> list[str | None]:
        """`keys` with None for every file that was skipped (read, but not decoded or refused)."""
        kept = set(self.kept.tolist())
        return [key if index in kept else None for index, key in enumerate(self.keys)]

    def of_files(self, positions: Sequence[int], files: int) -> StoredExtraction:
        """This extraction of files[positions] (some of a list of `files` files) as one of the whole list: `kept`
        indexes the whole list, and `keys` has None for the files that were not extracted."""
        indices = np.asarray(positions, dtype=np.int64)
        keys: list[str | None] = [None] * files
        for position, key in zip(indices.tolist(), self.keys, strict=True):
            keys[position] = key
        return StoredExtraction(self.arrays, indices[self.kept], self.skipped, keys)


def scratch_folder(cache_dir: Path | None) -> Path:
    """Where a run's scratch stores go: `scratch/` in the cache folder (their files have no name there)."""
    return (cache_dir or default_cache_dir()) / "scratch"


def extract_to_store(
    files: Sequence[Path],
    config: AudioConfig | ImageConfig,
    cache_dir: Path | None = None,
    progress: bool = True,
    description: str = "features",
) -> StoredExtraction:
    """Features of every readable file in a scratch store, through app.features' cache, a block at a time.

    Args:
        files: the files, in the order the rows keep.
        config: the preprocessing.
        cache_dir: the feature cache folder (default: app.features.default_cache_dir()); scratch stores go in
            its `scratch/` folder, as files without a name that vanish with the process.
        progress: a bar (or log lines) over the files.
        description: the bar's name.

    Raises:
        DatasetError: the cache folder's disk has no room for the store.
    """
    files = [Path(file) for file in files]
    started = time.monotonic()
    keys = content_keys(files, progress)
    shape = feature_shape(config)
    dtype = np.float32 if isinstance(config, AudioConfig) else np.uint8
    row_bytes = int(np.prod(shape)) * np.dtype(dtype).itemsize
    folder = scratch_folder(cache_dir)
    check_free_space(folder, len(files) * row_bytes, "the features of the training files")
    writer = create_store(None, len(files), shape, dtype, scratch_dir=folder)
    kept = np.zeros(len(files), dtype=bool)
    skipped: list[tuple[int, tuple[str, str]]] = []
    with step_progress(len(files), description, "file", progress) as bar:
        for positions in shard_blocks(keys, max(1, BLOCK_BYTES // row_bytes)):
            block = [files[position] for position in positions]
            extraction = extract_features(block, config, cache_dir=cache_dir, progress=False)
            writer.write_rows(positions[extraction.kept], extraction.arrays)
            kept[positions[extraction.kept]] = True
            position_of = {str(path): position for path, position in zip(block, positions, strict=True)}
            skipped.extend((position_of[file], (file, reason)) for file, reason in extraction.skipped)
            bar.update(len(block))
    kept_indices = np.flatnonzero(kept)
    if len(files) >= 1000 or time.monotonic() - started > 2:
        logger.info("%s: %s files in %.1f s", description, f"{len(files):,}", time.monotonic() - started)
    return StoredExtraction(
        writer.examples().select(kept_indices), kept_indices, [entry for _, entry in sorted(skipped)], keys
    )


def content_keys(files: Sequence[Path], progress: bool = True) -> list[str | None]:
    """app.features.content_key of each file's bytes (None when it cannot be read), on WORKERS threads."""

    def read_chunk(chunk: Sequence[Path]) -> list[str | None]:
        keys: list[str | None] = []
        for path in chunk:
            try:  # as predict reads: a regular file within the size limit (a FIFO would wait for a writer)
                keys.append(content_key(read_source_bytes(path, "a training file")))
            except InputError:
                keys.append(None)
        return keys

    chunks = [files[start : start + KEY_CHUNK] for start in range(0, len(files), KEY_CHUNK)]
    keys: list[str | None] = []
    with ThreadPoolExecutor(WORKERS) as pool, step_progress(len(files), "reading", "file", progress) as bar:
        for chunk_keys in pool.map(read_chunk, chunks):
            keys.extend(chunk_keys)
            bar.update(len(chunk_keys))
    return keys


def shard_blocks(keys: Sequence[str | None], block_files: int) -> list[np.ndarray]:
    """Positions of the keys in blocks of whole cache shards, each of about `block_files` positions (ascending
    within a block); a key of None (an unreadable file) counts as shard 0.

    Example:
        >>> [block.tolist() for block in shard_blocks(["ff01", "0a22", None, "0b33"], block_files=2)]
        [[1, 2], [0, 3]]
    """
    shard_of = np.array([int(key[:2], 16) if key else 0 for key in keys], dtype=np.int64)
    counts = np.bincount(shard_of, minlength=SHARDS)
    block_of_shard = np.zeros(SHARDS, dtype=np.int64)
    block, size = 0, 0
    for shard in range(SHARDS):
        if size >= block_files:
            block, size = block + 1, 0
        block_of_shard[shard] = block
        size += counts[shard]
    block_of = block_of_shard[shard_of]
    return [positions for index in range(block + 1) if len(positions := np.flatnonzero(block_of == index))]


def split_examples(
    extraction: StoredExtraction, splits: dict[str, list[int]], labels: np.ndarray
) -> dict[str, tuple[StoredExamples | np.ndarray, np.ndarray]]:
    """Each split's examples (n, …) and labels (n,), from the files that could be read: a view of the store for
    the training split, arrays in memory for the validation and test splits (SPLITS_IN_MEMORY)."""
    row_of = np.full(max(len(labels), int(extraction.kept.max(initial=-1)) + 1), -1, dtype=np.int64)
    row_of[extraction.kept] = np.arange(len(extraction.kept))
    arrays: dict[str, tuple[StoredExamples | np.ndarray, np.ndarray]] = {}
    for name, indices in splits.items():
        rows = row_of[np.asarray(indices, dtype=np.int64)]
        rows = rows[rows >= 0]
        view = extraction.arrays.select(rows)
        arrays[name] = (view[:] if name in SPLITS_IN_MEMORY else view), labels[extraction.kept[rows]]
    return arrays


def held_out_arrays(
    arrays: dict[str, tuple[StoredExamples | np.ndarray, np.ndarray]],
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The validation and test splits of split_examples' result, (features (n, …), labels (n,)) each, which it
    holds in memory."""
    return {name: (np.asarray(arrays[name][0]), arrays[name][1]) for name in SPLITS_IN_MEMORY if name in arrays}


def channel_sums(
    features: np.ndarray | ExampleRows, indices: np.ndarray, chunk_rows: int = STATISTICS_CHUNK_ROWS
) -> tuple[int, np.ndarray, np.ndarray]:
    """(values, per-channel sum, per-channel sum of squares), the sums (channels,) float64, of the model inputs
    made from the rows `indices` of (n, time, n_mels) spectrograms (one channel) or (n, height, width, channels)
    images, a chunk of rows at a time: memory holds one chunk, however many rows are sampled.

    Example:
        >>> images = np.arange(2 * 4 * 4 * 3, dtype=np.uint8).reshape(2, 4, 4, 3)  # (n, height, width, channels)
        >>> count, total, squares = channel_sums(images, np.arange(2), chunk_rows=1)
        >>> pixels = images.reshape(-1, 3).astype(np.float64)  # every pixel's three channels
        >>> count, np.allclose(total, pixels.sum(axis=0)), np.allclose(squares, (pixels**2).sum(axis=0))
        (32, True, True)
    """
    channels = 1 if features.ndim == 3 else features.shape[-1]
    count, total, squares = 0, np.zeros(channels), np.zeros(channels)
    for start in range(0, len(indices), chunk_rows):
        values = np.asarray(features[np.sort(indices[start : start + chunk_rows])], np.float64).reshape(-1, channels)
        count += len(values)
        total += values.sum(axis=0)
        squares += np.square(values).sum(axis=0)
    return count, total, squares


def check_free_space(folder: Path, needed_bytes: int, what: str) -> None:
    """DatasetError when the disk of `folder` (made if missing) has less than `needed_bytes` free."""
    folder.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(folder).free
    if needed_bytes > free:
        raise DatasetError(
            f"{what} need {needed_bytes / 1e9:.1f} GB in {folder}, which has {free / 1e9:.1f} GB free; free some "
            "space or point $ONEPIPE_CACHE_DIR at a larger disk"
        )
