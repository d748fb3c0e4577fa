"""Batch feature extraction for a list of files, on two threads, with an on-disk cache.

A file's features are cached under the hash of its content and of the preprocessing config, so a
second run over the same data skips decoding. Files are read and decoded as `predict` reads them, with the same
limits (app.sources, app.limits), one at a time per thread; files that cannot be read (special files, too large,
damaged) or hold nothing to learn from (silent clips, one-colour images: app.content) are skipped and reported
with the reason. Progress over 200 files or more shows as a bar on a terminal, and as a log line per tenth of
the files otherwise.

Example:
    >>> import tempfile
    >>> from pathlib import Path
    >>> import numpy as np
    >>> import scipy.io.wavfile
    >>> from app.config import AudioConfig
    >>> from app.features import extract_features
    >>> scratch = tempfile.TemporaryDirectory()
    >>> folder = Path(scratch.name)
    >>> tone = 0.3 * np.sin(2 * np.pi * 440 * np.arange(16000) / 16000)  # 1 s at 16 kHz
    >>> scipy.io.wavfile.write(folder / "tone.wav", 16000, (tone * 32767).astype(np.int16))
    >>> _ = (folder / "broken.wav").write_bytes(b"not audio")
    >>> files = sorted(folder.glob("*.wav"))  # broken.wav, tone.wav
    >>> result = extract_features(files, AudioConfig(), cache_dir=folder / "cache", progress=False)
    >>> result.arrays.shape, result.kept.tolist(), [Path(file).name for file, _ in result.skipped]
    ((1, 97, 40), [1], ['broken.wav'])
    >>> scratch.cleanup()
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import json
import logging
import os
import re
import tempfile
from collections.abc import Container, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

from app.audio import EXPECTED_AUDIO, decode_audio, fit_window, log_mel_spectrogram
from app.config import AudioConfig, ImageConfig, to_dict
from app.content import check_content
from app.errors import InputError
from app.images import EXPECTED_IMAGE, load_image
from app.sources import read_source_bytes
from app.step_progress import step_progress

# Bump when the feature code changes: cached features then no longer match. 4: silent clips and one-colour
# images are skipped, as `predict` refuses them (version 3 caches hold their features).
FEATURES_VERSION = 4
DECODER_PACKAGES = ("av", "pillow", "scipy")  # their versions are part of the cache key too
CHUNK_SIZE = 32  # files per task: small enough for the CPU cache, large enough to vectorise
WORKERS = 2
PROGRESS_MIN_FILES = 200  # fewer files than this show no progress

logger = logging.getLogger(__name__)


def default_cache_dir() -> Path:
    """`$ONEPIPE_CACHE_DIR`, else `$XDG_CACHE_HOME/onepipe`, else `~/.cache/onepipe`."""
    if os.environ.get("ONEPIPE_CACHE_DIR"):
        return Path(os.environ["ONEPIPE_CACHE_DIR"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "onepipe"


@dataclass
class Extraction:
    """Arrays for the files that could be read, in input order, and those that could not."""

    arrays: np.ndarray  # (kept, time, n_mels) spectrograms, (kept, samples) windows or (kept, h, w, c) images
    kept: np.ndarray  # indices into the input file list, (kept,)
    skipped: list[tuple[str, str]]  # (file, reason)
    # content key of every input file (None if unreadable), when asked for; else empty
    keys: list[str | None] = field(default_factory=list)


def _read_example(config: AudioConfig | ImageConfig, data: bytes) -> np.ndarray:
    """A (clip_samples,) window or an (h, w, c) image from a file's bytes; InputError as `predict` gives it."""
    if isinstance(config, AudioConfig):
        waveform = decode_audio(data, config.sample_rate, config.max_decoded_seconds)
        check_content(waveform, "audio")
        return fit_window(waveform, config)
    image = load_image(data, config)
    check_content(image, "image")
    return image


def _process_chunk(
    paths: Sequence[Path], config: AudioConfig | ImageConfig, spectrograms: bool, known_keys: Container[str] | None
) -> tuple[np.ndarray | None, list[int], list[tuple[str, str]], list[str | None]]:
    """Read and decode the files of a chunk one by one (only one file's bytes are held at a time).

    Returns:
        The stacked arrays of the decoded files (None if none), their indices in `paths`, (file, reason) of the
        files skipped, and with `known_keys` the content key of every file (None if unreadable; a file whose key
        is known is not decoded), else [].
    """
    expected = EXPECTED_AUDIO if isinstance(config, AudioConfig) else EXPECTED_IMAGE
    arrays: list[np.ndarray] = []
    kept: list[int] = []
    skipped: list[tuple[str, str]] = []
    keys: list[str | None] = []
    for index, path in enumerate(paths):
        try:
            data = read_source_bytes(path, expected)
        except InputError as error:
            skipped.append((str(path), str(error)))
            if known_keys is not None:
                keys.append(None)
            continue
        if known_keys is not None:
            keys.append(content_key(data))
            if keys[-1] in known_keys:
                continue
        try:
            arrays.append(_read_example(config, data))
            kept.append(index)
        except InputError as error:
            skipped.append((str(path), str(error)))
    stacked: np.ndarray | None = None
    if arrays and spectrograms and isinstance(config, AudioConfig):
        stacked = log_mel_spectrogram(np.stack(arrays), config)
    elif arrays:
        stacked = np.stack(arrays)
    return stacked, kept, skipped, keys


def load_examples(
    files: Sequence[Path],
    config: AudioConfig | ImageConfig,
    spectrograms: bool = True,
    progress: bool = True,
    known_keys: Container[str] | None = None,
) -> Extraction:
    """Decode every file: spectrograms (or raw windows with spectrograms=False) for audio, images otherwise.

    Each file is read once. With `known_keys` (the keys of a cache), each file's content key (see
    `content_key`) is returned in `keys`, and a file whose key is known is not decoded and not in `kept`.

    Runs chunks of files on two threads with BLAS limited to one thread each (NumPy's FFT and matrix
    product release the GIL, so the threads overlap).
    """
    files = [Path(f) for f in files]
    is_audio = isinstance(config, AudioConfig)
    spectrograms = spectrograms and is_audio
    chunks = [files[start : start + CHUNK_SIZE] for start in range(0, len(files), CHUNK_SIZE)]

    parts: list[np.ndarray] = []
    kept: list[int] = []
    skipped: list[tuple[str, str]] = []
    keys: list[str | None] = []
    with (
        threadpool_limits(limits=1, user_api="blas"),
        ThreadPoolExecutor(WORKERS) as pool,
        step_progress(len(files), "features", "file", progress and len(files) >= PROGRESS_MIN_FILES) as bar,
    ):
        for chunk_index, (stacked, chunk_kept, chunk_skipped, chunk_keys) in enumerate(
            pool.map(partial(_process_chunk, config=config, spectrograms=spectrograms, known_keys=known_keys), chunks)
        ):
            if stacked is not None:
                parts.append(stacked)
            kept.extend(chunk_index * CHUNK_SIZE + i for i in chunk_kept)
            skipped.extend(chunk_skipped)
            keys.extend(chunk_keys)
            bar.update(len(chunks[chunk_index]))
    if parts:
        arrays = np.concatenate(parts)
    else:
        arrays = np.zeros((0, *feature_shape(config, spectrograms)), np.float32 if is_audio else np.uint8)
    return Extraction(arrays, np.asarray(kept, dtype=np.int64), skipped, keys)


def feature_shape(config: AudioConfig | ImageConfig, spectrograms: bool = True) -> tuple[int, ...]:
    """Shape of one example without the channel axis for audio: (time, n_mels), (samples,) or (h, w, c)."""
    if isinstance(config, AudioConfig):
        return (config.n_frames, config.n_mels) if spectrograms else (config.clip_samples,)
    return config.input_shape


def extract_features(
    files: Sequence[Path],
    config: AudioConfig | ImageConfig,
    cache_dir: Path | None = None,
    use_cache: bool = True,
    progress: bool = True,
) -> Extraction:
    """Model inputs for every readable file, with a content-keyed cache on disk.

    The cache of one config is a folder of up to 256 shards (by the first two hex digits of the content
    key), so a run reads and rewrites only the shards its files fall in, not every feature ever cached.

    Returns:
        Extraction with arrays of shape (kept, time, n_mels) float32 for audio or
        (kept, height, width, channels) uint8 for images.
    """
    files = [Path(f) for f in files]
    if not use_cache:
        return load_examples(files, config, progress=progress)
    root = cache_dir or default_cache_dir()
    _remove_unsharded_caches(root)
    folder = root / f"features-{_config_hash(config)}"
    shard_keys = {path.stem: keys for path in folder.glob("??.npz") if (keys := _read_shard_keys(path))}
    known = {key for keys in shard_keys.values() for key in keys}
    fresh = load_examples(files, config, progress=progress, known_keys=known)
    fresh_row = {index: row for row, index in enumerate(fresh.kept.tolist())}
    wanted = {key for index, key in enumerate(fresh.keys) if index not in fresh_row and key in known}
    cached = _read_cached_rows(folder, wanted, shard_keys, config)
    if wanted - cached.keys():  # a shard whose keys read but whose arrays did not: decode those files after all
        lost = [index for index, key in enumerate(fresh.keys) if key in wanted and key not in cached]
        again = load_examples([files[index] for index in lost], config, progress=False)
        again_keys = [fresh.keys[lost[row]] for row in again.kept.tolist()]
        cached.update(zip(again_keys, again.arrays, strict=True))
        _add_to_cache(folder, again_keys, again.arrays, config)
    rows, kept = [], []
    for index, key in enumerate(fresh.keys):
        if index in fresh_row:
            rows.append(fresh.arrays[fresh_row[index]])
            kept.append(index)
        elif key in cached:
            rows.append(cached[key])
            kept.append(index)
    shape = feature_shape(config)
    dtype = np.float32 if isinstance(config, AudioConfig) else np.uint8
    arrays = np.stack(rows) if rows else np.zeros((0, *shape), dtype)
    if len(fresh.kept):
        _add_to_cache(folder, [fresh.keys[index] for index in fresh.kept], fresh.arrays, config)
    return Extraction(arrays, np.asarray(kept, dtype=np.int64), fresh.skipped, fresh.keys)


def _remove_unsharded_caches(root: Path) -> None:
    """Delete caches of the one-file format before FEATURES_VERSION 3 (`features-<16 hex digits>.npz`), which are
    never read; one that cannot be deleted (a read-only cache) is left."""
    for unsharded in root.glob("features-*.npz"):
        if re.fullmatch(r"features-[0-9a-f]{16}\.npz", unsharded.name):
            with contextlib.suppress(OSError):
                unsharded.unlink()


def _config_hash(config: AudioConfig | ImageConfig) -> str:
    """The cache file's key: the config, this code's FEATURES_VERSION and the decoders' versions."""
    decoders = {name: importlib.metadata.version(name) for name in DECODER_PACKAGES}
    description = json.dumps(
        {"type": type(config).__name__, "version": FEATURES_VERSION, "decoders": decoders, **to_dict(config)},
        sort_keys=True,
    )
    return hashlib.sha256(description.encode()).hexdigest()[:16]


def content_key(data: bytes) -> str:
    """The cache key of a file's bytes: a 128-bit BLAKE2b digest in hex."""
    return hashlib.blake2b(data, digest_size=16).hexdigest()


def _shard_of(key: str) -> str:
    return key[:2]


def _read_shard_keys(path: Path) -> list[str]:
    """The keys of one cache shard (its arrays are not read); empty when damaged."""
    try:
        with np.load(path, allow_pickle=False) as shard:
            return [str(key) for key in shard["keys"]]
    except Exception:
        return []


def _read_shard_arrays(path: Path, count: int, config: AudioConfig | ImageConfig) -> np.ndarray | None:
    """The (count, *feature_shape) arrays of one shard; None when damaged or of another shape or length."""
    try:
        with np.load(path, allow_pickle=False) as shard:
            arrays = shard["arrays"]
    except Exception:
        return None
    return arrays if arrays.shape[1:] == feature_shape(config) and len(arrays) == count else None


def _read_shard(path: Path, config: AudioConfig | ImageConfig) -> tuple[list[str], np.ndarray | None]:
    """Keys and arrays of one shard; ([], None) when missing, damaged or of another shape."""
    keys = _read_shard_keys(path)
    arrays = _read_shard_arrays(path, len(keys), config) if keys else None
    return (keys, arrays) if arrays is not None else ([], None)


def _read_cached_rows(
    folder: Path, wanted: set[str], shard_keys: dict[str, list[str]], config: AudioConfig | ImageConfig
) -> dict[str, np.ndarray]:
    """{key: features} for the wanted keys, reading only the arrays of the shards they are in (their keys,
    `shard_keys`, were read already)."""
    rows: dict[str, np.ndarray] = {}
    for shard in sorted({_shard_of(key) for key in wanted}):
        keys = shard_keys[shard]
        arrays = _read_shard_arrays(folder / f"{shard}.npz", len(keys), config)
        if arrays is not None:
            rows.update((key, arrays[row]) for row, key in enumerate(keys) if key in wanted)
    return rows


def _add_to_cache(folder: Path, keys: list[str], arrays: np.ndarray, config: AudioConfig | ImageConfig) -> None:
    """Append new (key, features) rows to their shards, each rewritten atomically."""
    by_shard: dict[str, list[int]] = {}
    for row, key in enumerate(keys):
        by_shard.setdefault(_shard_of(key), []).append(row)
    for shard, rows in by_shard.items():
        path = folder / f"{shard}.npz"
        old_keys, old_arrays = _read_shard(path, config)
        present = set(old_keys)
        rows = [row for row in rows if keys[row] not in present]
        if not rows:
            continue
        merged = arrays[rows] if old_arrays is None else np.concatenate([old_arrays, arrays[rows]])
        _write_shard(path, old_keys + [keys[row] for row in rows], merged)


def _write_shard(path: Path, keys: list[str], arrays: np.ndarray) -> None:
    """Write atomically; a cache that cannot be written is only a missed speed-up."""
    temporary = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path.parent, suffix=".npz", delete=False) as handle:
            temporary = Path(handle.name)
            np.savez(handle, keys=np.asarray(keys), arrays=arrays)
        os.replace(temporary, path)
        temporary = None
    except OSError:
        pass
    finally:
        if temporary is not None:
            temporary.unlink(missing_ok=True)
