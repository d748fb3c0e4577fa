"""Waveform variants of the audio training clips, made once per run: the noise they are mixed with comes from
`_background_noise_` files (and, when asked for, the `_silence_` training clips).

The variants draw from one generator seeded with `seed + 1`, in file order, so a run is reproducible.

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

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from app.audio import decode_audio, log_mel_spectrogram
from app.class_folders import Dataset
from app.config import AudioConfig, TrainConfig
from app.errors import InputError
from app.features import load_examples
from app.training.augment import waveform_variant

SILENCE_CLASS = "_silence_"  # Speech Commands' class of background-noise crops


def silence_training_files(dataset: Dataset, train_indices: Sequence[int]) -> list[Path]:
    """The training split's files of the `_silence_` class (none when there is no such class)."""
    if SILENCE_CLASS not in dataset.class_names:
        return []
    silence = dataset.class_names.index(SILENCE_CLASS)
    return [dataset.files[i] for i in train_indices if dataset.labels[i] == silence]


def noise_bank(dataset: Dataset, config: AudioConfig, silence_files: Sequence[Path] = ()) -> list[np.ndarray]:
    """Decoded (samples,) noise waveforms at config.sample_rate: `_background_noise_` files, then the given
    `_silence_` training clips; files that cannot be decoded are left out."""
    bank = []
    for path in [*dataset.background_noise_files, *silence_files]:
        try:
            bank.append(decode_audio(path, config.sample_rate, max_seconds=600.0))
        except InputError:
            continue
    return bank


def waveform_variants(
    dataset: Dataset, train_indices: list[int], config: AudioConfig, train_config: TrainConfig, progress: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Spectrograms (n, time, n_mels) of `augment_copies` waveform variants per readable training clip, and
    their labels (n,)."""
    rng = np.random.default_rng(train_config.seed + 1)
    windows = load_examples([dataset.files[i] for i in train_indices], config, spectrograms=False, progress=progress)
    labels = np.asarray([dataset.labels[train_indices[k]] for k in windows.kept])
    silence_files = silence_training_files(dataset, train_indices) if train_config.noise_from_silence else []
    bank = noise_bank(dataset, config, silence_files)
    variants, variant_labels = [], []
    for _ in range(train_config.augment_copies):
        batch = np.stack([waveform_variant(rng, window, config, bank) for window in windows.arrays])
        variants.append(log_mel_spectrogram(batch, config))
        variant_labels.append(labels)
    if not variants:
        return np.zeros((0, config.n_frames, config.n_mels), np.float32), np.zeros(0, np.int64)
    return np.concatenate(variants), np.concatenate(variant_labels)
