"""Waveform variants of the audio training clips (`--augment-copies` per clip), made on every core and kept in an
on-disk store that the next run of the same recipe finds again.

Each variant is app.training.augment.waveform_variant of the clip's window (speed, shift, noise, gain, sometimes a
WebM/Opus round trip), as a log-mel spectrogram stored as float16. The noise comes from the `_background_noise_`
files (and, with --noise-from-silence, the `_silence_` training clips).

- **Reproducible**: the variants of the clip at position p of the training files draw from their own generator,
  `default_rng([seed, VARIANT_STREAM, p])`, so they depend on the seed and the clip, not on the number of worker
  processes or the order in which chunks finish.
- **Parallel**: chunks of CHUNK_CLIPS clips are decoded and varied in worker processes (one per core; fresh
  interpreters, app.training.variant_worker), which send back float16 spectrograms; the parent only writes them
  into the store.
- **Cached**: the store's folder, `variants-<key>` in the cache folder, is named by a hash of everything a
  variant depends on: every clip's content and label, in order, the noise files' contents, the preprocessing,
  the seed, the number of copies and this code's VARIANTS_VERSION with the decoders' versions. A run that finds
  the folder complete reads it; one killed half-way leaves `variants-<key>.partial`, which the next run of the
  same recipe continues. The KEEP_STORES most recently used stores are kept.

Example:
    >>> from pathlib import Path
    >>> from app.class_folders import Dataset
    >>> from app.training.variants import silence_training_files
    >>> files = tuple(Path(name) for name in ("_silence_/a.wav", "yes/b.wav", "_silence_/c.wav"))
    >>> dataset = Dataset(Path("data"), "audio", ("_silence_", "yes"), files, (0, 1, 0))
    >>> [path.name for path in silence_training_files(dataset, [0, 1])]  # c.wav is not in training
    ['a.wav']
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import importlib.metadata
import itertools
import json
import logging
import mmap
import os
import select
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

from app.audio import decode_audio, fit_window, log_mel_spectrogram
from app.class_folders import Dataset
from app.config import AudioConfig, TrainConfig, to_dict
from app.errors import InputError
from app.features import default_cache_dir
from app.step_progress import QUIET_SECONDS, step_progress
from app.training import variant_worker
from app.training.augment import waveform_variant
from app.training.inputs import check_free_space, content_keys
from app.training.store import StoredExamples, create_store, open_store, open_store_writer

logger = logging.getLogger(__name__)

SILENCE_CLASS = "_silence_"  # Speech Commands' class of background-noise crops
VARIANTS_VERSION = 1  # bump when a variant of the same clip and seed changes: stores of older versions are not read
VARIANT_STREAM = 1  # the variants' generators: default_rng([seed, VARIANT_STREAM, clip position])
STORED_DTYPE = np.float16
CHUNK_CLIPS = 16  # clips per task of a worker process
PARALLEL_MIN_CLIPS = 64  # fewer clips are varied in this process (starting workers takes about a second)
KEEP_STORES = 3  # complete variant stores kept in the cache folder, the most recently used
STALE_DAYS = 7  # an unfinished store not written to for this long is deleted
NOISE_MAX_SECONDS = 600.0  # longest noise recording read
VERSIONED_PACKAGES = ("numpy", "scipy", "av")  # their versions change the variants too
# A clip's status in clips.npy: not made yet, made, or not readable (no variants; its rows are left out).
WAITING, MADE, UNREADABLE = 0, 1, 2


def silence_training_files(dataset: Dataset, train_indices: Sequence[int]) -> list[Path]:
    """The training split's files of the `_silence_` class (none when there is no such class)."""
    if SILENCE_CLASS not in dataset.class_names:
        return []
    silence = dataset.class_names.index(SILENCE_CLASS)
    return [dataset.files[i] for i in train_indices if dataset.labels[i] == silence]


def noise_bank(dataset: Dataset, config: AudioConfig, silence_files: Sequence[Path] = ()) -> list[np.ndarray]:
    """Decoded (samples,) noise waveforms at config.sample_rate: `_background_noise_` files, then the given
    `_silence_` training clips; files that cannot be decoded are left out."""
    return [waveform for _, waveform in _decoded_noise([*dataset.background_noise_files, *silence_files], config)]


def variant_examples(
    dataset: Dataset,
    train_indices: Sequence[int],
    config: AudioConfig,
    train_config: TrainConfig,
    cache_dir: Path | None = None,
    progress: bool = True,
    file_keys: Sequence[str | None] | None = None,
    workers: int | None = None,
) -> tuple[StoredExamples, np.ndarray]:
    """Spectrograms (n, time, n_mels), read as float32, of `augment_copies` waveform variants of each readable
    training clip (the copies of one clip are consecutive rows), and their labels (n,).

    Args:
        dataset: the dataset; train_indices: its training files, in order (a clip's position seeds its draws).
        config: the preprocessing; train_config: the recipe (seed, augment_copies, noise_from_silence).
        cache_dir: where the stores go (default: app.features.default_cache_dir()).
        progress: a bar (or log lines) over the clips.
        file_keys: app.features.content_key of each of dataset.files, None for a file known to be unreadable
            (app.training.inputs.StoredExtraction.readable_keys()); without them the clips are read for their keys.
        workers: processes making variants; None: one per core (this process alone for under PARALLEL_MIN_CLIPS).

    Raises:
        DatasetError: the cache folder's disk has no room for the store.
    """
    clips = [dataset.files[index] for index in train_indices]
    labels = np.asarray([dataset.labels[index] for index in train_indices], dtype=np.int64)
    keys = [file_keys[index] for index in train_indices] if file_keys is not None else content_keys(clips, progress)
    silence = silence_training_files(dataset, train_indices) if train_config.noise_from_silence else []
    noise_files = [*dataset.background_noise_files, *silence]
    recipe = VariantRecipe(config, train_config.seed, train_config.augment_copies, train_config.reverberation)
    root = cache_dir or default_cache_dir()
    folder = root / f"variants-{recipe.key(keys, labels, content_keys(noise_files, progress=False))}"
    with _store_lock(folder):
        stored = _open_complete(folder)
        if stored is None:
            _make_store(folder, clips, keys, labels, noise_files, recipe, workers, progress)
            _remove_old_stores(root, keep=folder)
            stored = _open_complete(folder)
            if stored is None:
                raise OSError(f"the waveform variants just made in {folder} cannot be read")
        else:
            os.utime(folder)  # recently used: kept when older stores are removed
            logger.info("variants: %s examples of this recipe found in %s", f"{len(stored[1]):,}", folder)
    return stored


def _open_complete(folder: Path) -> tuple[StoredExamples, np.ndarray] | None:
    """The examples and labels of the complete store `folder`, without the rows of unreadable clips; None when
    there is none, or one that cannot be read (a power loss as it was finished): it is then removed."""
    if not folder.exists():
        return None
    try:
        examples, labels = open_store(folder / "examples.npy"), np.load(folder / "labels.npy")
        if len(labels) != len(examples):
            raise ValueError("labels and examples differ in number")
    except (OSError, ValueError, EOFError):
        shutil.rmtree(folder, ignore_errors=True)
        return None
    made = np.flatnonzero(labels >= 0)
    return examples.select(made), labels[made]


@dataclass(frozen=True)
class VariantRecipe:
    """What a clip's variants depend on besides the clip and the noise: the preprocessing, the seed, the copies."""

    config: AudioConfig
    seed: int
    copies: int
    reverberation: float = 0.0  # share of variants played in a synthetic room

    def key(self, clip_keys: Sequence[str | None], labels: np.ndarray, noise_keys: Sequence[str | None]) -> str:
        """24 hex digits of a SHA-256 over the recipe, the clips' and noise files' content keys, the labels, this
        code's VARIANTS_VERSION and the decoders' versions."""
        description = {
            "version": VARIANTS_VERSION,
            "stored_dtype": np.dtype(STORED_DTYPE).name,
            "packages": {name: importlib.metadata.version(name) for name in VERSIONED_PACKAGES},
            "preprocessing": to_dict(self.config),
            "seed": self.seed,
            "copies": self.copies,
            "noise": list(noise_keys),
        }
        if self.reverberation:  # recipes without rooms keep the keys (and stores) they had
            description["reverberation"] = self.reverberation
        digest = hashlib.sha256(json.dumps(description, sort_keys=True).encode())
        digest.update("\n".join(key or "-" for key in clip_keys).encode())
        digest.update(np.ascontiguousarray(labels, dtype="<i8").tobytes())
        return digest.hexdigest()[:24]


def _make_store(
    folder: Path,
    clips: Sequence[Path],
    keys: Sequence[str | None],
    labels: np.ndarray,
    noise_files: Sequence[Path],
    recipe: VariantRecipe,
    workers: int | None,
    progress: bool,
) -> None:
    """Make (or continue) `folder`.partial and move it to `folder` once every clip is done."""
    partial = folder.with_name(folder.name + ".partial")
    shape = (len(clips) * recipe.copies, recipe.config.n_frames, recipe.config.n_mels)
    statuses = _open_or_create(partial, shape, len(clips), noise_files, recipe.config)
    waiting = np.flatnonzero(np.load(partial / "clips.npy") == WAITING)
    unreadable = np.array([position for position in waiting if keys[int(position)] is None], dtype=np.int64)
    statuses.write_rows(unreadable, np.full(len(unreadable), UNREADABLE, np.uint8))  # known: not decoded again
    waiting = np.setdiff1d(waiting, unreadable)
    started = time.monotonic()
    with (
        open_store_writer(partial / "examples.npy") as examples,
        statuses,
        step_progress(len(waiting), "variants", "clip", progress) as bar,
    ):

        def store(positions: np.ndarray, spectrograms: np.ndarray, readable: np.ndarray) -> None:
            rows = (positions[:, None] * recipe.copies + np.arange(recipe.copies)).reshape(-1)
            examples.write_rows(rows, spectrograms)
            examples.sync()  # the rows are on disk before their clips are marked done
            statuses.write_rows(positions, np.where(readable, MADE, UNREADABLE).astype(np.uint8))
            bar.update(len(positions))

        chunks = [waiting[start : start + CHUNK_CLIPS] for start in range(0, len(waiting), CHUNK_CLIPS)]
        tasks = [(positions, [clips[p] for p in positions]) for positions in chunks]
        worker_count = workers or (_core_count() if len(waiting) >= PARALLEL_MIN_CLIPS else 1)
        state = WorkerState(recipe, str(partial / "noise.f32"), str(partial / "noise-offsets.npy"))
        _run_tasks(tasks, state, min(worker_count, max(1, len(tasks))), store)
        statuses.sync()
    readable = np.repeat(np.load(partial / "clips.npy") == MADE, recipe.copies)
    np.save(partial / "labels.npy", np.where(readable, np.repeat(labels, recipe.copies), -1))
    for name in ("noise.f32", "noise-offsets.npy"):
        (partial / name).unlink(missing_ok=True)
    os.replace(partial, folder)
    seconds = time.monotonic() - started
    if seconds >= QUIET_SECONDS:
        logger.info(
            "variants: %s examples of %s clips in %.1f s (%.1f clips/s), kept in %s",
            f"{shape[0]:,}", f"{len(clips):,}", seconds, len(waiting) / seconds, folder,
        )  # fmt: skip


def _open_or_create(
    partial: Path, shape: tuple[int, ...], clip_count: int, noise_files: Sequence[Path], config: AudioConfig
):
    """The writer of `partial`/clips.npy (each clip's status), after making the store's files if they are not
    there (or do not fit the shape): the examples (zero), the statuses (WAITING) and the decoded noise."""
    try:
        if open_store(partial / "examples.npy").shape == shape and len(open_store(partial / "clips.npy")) == clip_count:
            return open_store_writer(partial / "clips.npy")
    except (OSError, ValueError):
        pass
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    check_free_space(partial, int(np.prod(shape)) * np.dtype(STORED_DTYPE).itemsize, "the waveform variants")
    create_store(partial / "examples.npy", shape[0], shape[1:], STORED_DTYPE).file.close()
    _write_noise(partial, noise_files, config)
    return create_store(partial / "clips.npy", clip_count, (), np.uint8)


def _write_noise(partial: Path, noise_files: Sequence[Path], config: AudioConfig) -> None:
    """The decoded noise waveforms end to end in noise.f32 (float32 at config.sample_rate), where each starts in
    noise-offsets.npy: the workers map the file rather than each holding a copy."""
    offsets = [0]
    with open(partial / "noise.f32", "wb") as output:
        for _, waveform in _decoded_noise(noise_files, config):
            output.write(waveform.astype(np.float32).tobytes())
            offsets.append(offsets[-1] + waveform.size)
    np.save(partial / "noise-offsets.npy", np.asarray(offsets, dtype=np.int64))


def _decoded_noise(files: Sequence[Path], config: AudioConfig) -> Iterator[tuple[Path, np.ndarray]]:
    for path in files:
        try:
            yield path, decode_audio(path, config.sample_rate, max_seconds=NOISE_MAX_SECONDS)
        except InputError:
            continue


@dataclass(frozen=True)
class WorkerState:
    """What every task of a variant store shares: the recipe and where the decoded noise lies."""

    recipe: VariantRecipe
    noise_path: str
    offsets_path: str


_worker: dict[str, object] = {}  # in a worker process: the state, the noise bank and its memory map


def start_worker(state: WorkerState) -> None:
    """Set up a process (a worker, or this one for a serial run) to make variants: one BLAS thread, the noise
    bank as views of the memory-mapped noise file."""
    _worker["state"], _worker["limits"] = state, threadpool_limits(limits=1, user_api="blas")
    offsets = np.load(state.offsets_path)
    bank, mapping = [], None
    if offsets[-1] > 0:
        with open(state.noise_path, "rb") as file:
            mapping = mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ)
        samples = np.frombuffer(mapping, dtype=np.float32)
        bank = [samples[start:stop] for start, stop in itertools.pairwise(offsets)]
    _worker["bank"], _worker["mapping"] = bank, mapping


def make_chunk(positions: np.ndarray, paths: Sequence[Path]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The variants of the clips at `positions`: (positions, (clips × copies, time, n_mels) float16 spectrograms,
    (clips,) readable flags; an unreadable clip's rows are zero)."""
    state: WorkerState = _worker["state"]  # type: ignore[assignment]
    bank: list[np.ndarray] = _worker["bank"]  # type: ignore[assignment]
    recipe, config = state.recipe, state.recipe.config
    windows = np.zeros((len(positions) * recipe.copies, config.clip_samples), np.float32)
    readable = np.zeros(len(positions), dtype=bool)
    for index, (position, path) in enumerate(zip(positions, paths, strict=True)):
        rng = np.random.default_rng([recipe.seed, VARIANT_STREAM, int(position)])
        try:
            window = fit_window(decode_audio(path, config.sample_rate, config.max_decoded_seconds), config)
        except InputError:
            continue
        readable[index] = True
        for copy in range(recipe.copies):
            windows[index * recipe.copies + copy] = waveform_variant(rng, window, config, bank, recipe.reverberation)
    spectrograms = log_mel_spectrogram(windows, config).astype(STORED_DTYPE)
    spectrograms[np.repeat(~readable, recipe.copies)] = 0
    mapping = _worker["mapping"]
    if mapping is not None:  # drop the noise pages read: the map's resident pages stay few
        mapping.madvise(mmap.MADV_DONTNEED)  # type: ignore[attr-defined]
    return positions, spectrograms, readable


def _run_tasks(
    tasks: Sequence[tuple[np.ndarray, list[Path]]],
    state: WorkerState,
    workers: int,
    store: Callable[[np.ndarray, np.ndarray, np.ndarray], None],
) -> None:
    """Make every task's variants, in this process (workers 1) or in `workers` worker processes
    (app.training.variant_worker) with at most two tasks each in flight, and `store` each result as it comes."""
    if workers <= 1:
        start_worker(state)
        try:
            for positions, paths in tasks:
                store(*make_chunk(positions, paths))
        finally:
            _worker["limits"].restore_original_limits()  # type: ignore[attr-defined]
            _worker.clear()
        return
    processes = [_start_process(state) for _ in range(workers)]
    try:
        queue = iter(tasks)
        in_flight = {process.stdout.fileno(): 0 for process in processes}  # type: ignore[union-attr]
        by_output = {process.stdout.fileno(): process for process in processes}  # type: ignore[union-attr]
        for process in processes:
            for _ in range(2):
                in_flight[process.stdout.fileno()] += _give_task(process, queue)  # type: ignore[union-attr]
        while any(in_flight.values()):
            ready, _, _ = select.select([output for output, count in in_flight.items() if count], [], [])
            for output in ready:
                message = _receive_from(by_output[output])
                if message[0] != "done":
                    raise RuntimeError(f"a worker making waveform variants failed:\n{message[1]}")
                store(*message[1:])
                in_flight[output] += _give_task(by_output[output], queue) - 1
    finally:
        _stop_processes(processes)


def _start_process(state: WorkerState) -> subprocess.Popen:
    """A worker process (app.training.variant_worker) that has been sent the state."""
    package_root = str(Path(__file__).resolve().parents[2])  # the folder holding app/, whatever sys.path says
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join([package_root, os.environ.get("PYTHONPATH", "")])}
    process = subprocess.Popen(
        [sys.executable, "-m", variant_worker.__name__], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        env=environment, bufsize=0,
    )  # fmt: skip
    variant_worker.send(process.stdin.fileno(), state)  # type: ignore[union-attr]
    return process


def _give_task(process: subprocess.Popen, queue: Iterator[tuple[np.ndarray, list[Path]]]) -> int:
    """Send the next task to a worker: 1, or 0 when none is left."""
    task = next(queue, None)
    if task is None:
        return 0
    variant_worker.send(process.stdin.fileno(), task)  # type: ignore[union-attr]
    return 1


def _receive_from(process: subprocess.Popen) -> tuple:
    try:
        return variant_worker.receive(process.stdout.fileno())  # type: ignore[union-attr]
    except EOFError:
        raise RuntimeError(
            f"a worker making waveform variants ended unexpectedly (exit code {process.wait()})"
        ) from None


def _stop_processes(processes: Sequence[subprocess.Popen]) -> None:
    """End the workers: their input closes, and any still running after a few seconds is killed."""
    for process in processes:
        with contextlib.suppress(OSError):
            process.stdin.close()  # type: ignore[union-attr]
    for process in processes:
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        process.stdout.close()  # type: ignore[union-attr]


def _core_count() -> int:
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


@contextlib.contextmanager
def _store_lock(folder: Path) -> Iterator[None]:
    """Hold `folder`.lock exclusively: one run at a time makes (or reads for the first time) a given store; a second
    run of the same recipe waits for the first, then reads what it made."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    lock_path = folder.with_name(folder.name + ".lock")
    with open(lock_path, "a+b") as lock:
        try:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            logger.info("variants: waiting for another run that makes the same variants")
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock.fileno(), fcntl.LOCK_UN)


def _remove_old_stores(root: Path, keep: Path) -> None:
    """Delete the complete variant stores of `root` beyond the KEEP_STORES most recently used (`keep` stays), and
    unfinished ones nobody has written to for STALE_DAYS (and that no run holds)."""
    stores = [path for path in root.glob("variants-*") if path.is_dir() and "." not in path.name and path != keep]
    stores.sort(key=lambda path: path.stat().st_mtime, reverse=True)
    for old in stores[KEEP_STORES - 1 :]:
        shutil.rmtree(old, ignore_errors=True)
        old.with_name(old.name + ".lock").unlink(missing_ok=True)
    for partial in root.glob("variants-*.partial"):
        with contextlib.suppress(OSError):
            last_written = max([partial.stat().st_mtime, *(path.stat().st_mtime for path in partial.iterdir())])
            if time.time() - last_written > STALE_DAYS * 86400:
                with open(partial.with_suffix(".lock"), "a+b") as lock:
                    fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)  # OSError while a run holds it
                    shutil.rmtree(partial, ignore_errors=True)
