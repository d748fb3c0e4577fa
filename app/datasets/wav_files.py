"""Writing 16-bit PCM WAV files for the datasets OnePipe makes, atomically: a file is complete or absent.

Example:
    >>> import pathlib, tempfile
    >>> import numpy as np
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     path = pathlib.Path(folder) / "yes" / "clip.wav"
    ...     write_wav(path, 16000, np.zeros(16000, np.int16))
    ...     sorted(p.name for p in path.parent.iterdir()), path.stat().st_size
    (['clip.wav'], 32044)
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy.io import wavfile


def write_wav(path: str | Path, sample_rate: int, samples: np.ndarray) -> None:
    """Write (samples,) int16 audio at `sample_rate` Hz to `path` (its folder is created): to `<path>.tmp`
    first, renamed into place once written, so an interrupted run never leaves a truncated clip."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    wavfile.write(temporary, sample_rate, samples)
    temporary.replace(path)
