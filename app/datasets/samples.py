"""Example inputs for the dashboard, made by the project itself: `models/<bundle>/samples/<class>/<file>`.

- `speech-commands`: eSpeak NG speech of yes no up down left right on off stop go, other words
  for `_unknown_`, generated noise for `_silence_` (16 kHz PCM16 WAV, 1 s, 32 KB each).
- `spoken-digits`: eSpeak NG speech of "zero".."nine" in classes "0".."9".
- `mnist`: 28×28 light-on-dark PNGs of scikit-learn's handwritten digits (digits drawn with Pillow's
  bundled font only where it has too few).
- `cifar10`: nothing can be made offline; `python -m app data download cifar10 --samples` puts a
  few CIFAR-10 test images (most of the test set trained the shipped bundle too) in
  app.paths.DOWNLOADED_SAMPLES_DIR/cifar10/<class>/, where the dashboard looks.

Only bundle folders that already exist get samples. Example (`write_samples()` writes into app.paths.MODELS_DIR):
    >>> import pathlib, tempfile
    >>> with tempfile.TemporaryDirectory() as models:
    ...     (pathlib.Path(models) / "mnist").mkdir()
    ...     write_samples(models, per_class=1)
    {'mnist': {'0': 1, '1': 1, '2': 1, '3': 1, '4': 1, '5': 1, '6': 1, '7': 1, '8': 1, '9': 1}}
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from app.centering import center_digit
from app.datasets import synth
from app.datasets.digits import digit_image
from app.datasets.wav_files import write_wav
from app.paths import MODELS_DIR, SAMPLES_FOLDER
from app.staging import replace_when_complete

SPEECH_COMMANDS_LABELS = ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go")
UNKNOWN_WORDS = (
    "bed",
    "bird",
    "cat",
    "dog",
    "happy",
    "house",
    "marvin",
    "sheila",
    "tree",
    "wow",
    "seven",
    "zero",
)
DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
# Clear voices, one accent and variant each, so every class has distinct speakers.
SAMPLE_VOICES = (
    ("en-us", "m3"),
    ("en-gb-x-rp", "f2"),
    ("en-us", "f4"),
    ("en", "m7"),
    ("en-gb-scotland", "m2"),
    ("en-029", "f1"),
    ("en-us-nyc", "m1"),
    ("en-gb-x-gbclan", "f3"),
)
SAMPLE_RATE = 16000  # Hz


def _speech_sample(text: str, voice_index: int, seed: int) -> tuple[str, np.ndarray]:
    """(file stem, int16 (16000,)) for one clear, lightly noisy spoken word."""
    rng = np.random.default_rng([seed, synth.stable_number(text), voice_index])
    language, variant = SAMPLE_VOICES[voice_index % len(SAMPLE_VOICES)]
    voice = synth.Voice(
        language,
        variant,
        rate=int(rng.integers(150, 186)),
        pitch=int(rng.integers(35, 66)),
        pitch_range=int(rng.integers(40, 71)),
    )
    samples = synth.synthesize_word(text, voice, rng, SAMPLE_RATE, signal_to_noise_range=(20.0, 40.0))
    return voice.speaker_id, samples


def speech_commands_samples(samples_dir: Path, per_class: int = 4, seed: int = 0) -> dict[str, int]:
    """Write the 12 Speech Commands classes into `samples_dir/<class>/*.wav`."""
    counts = {}
    for class_index, label in enumerate(SPEECH_COMMANDS_LABELS):
        for number in range(per_class):
            speaker, samples = _speech_sample(label, class_index + number, seed)
            write_wav(samples_dir / label / f"{label}-{number + 1}-{speaker}.wav", SAMPLE_RATE, samples)
        counts[label] = per_class
    for number in range(per_class):
        word = UNKNOWN_WORDS[(seed + number) % len(UNKNOWN_WORDS)]
        speaker, samples = _speech_sample(word, number, seed)
        write_wav(samples_dir / "_unknown_" / f"{word}-{number + 1}-{speaker}.wav", SAMPLE_RATE, samples)
    counts["_unknown_"] = per_class
    for number in range(per_class):
        samples = synth.synthesize_silence(np.random.default_rng([seed, number]), SAMPLE_RATE)
        write_wav(samples_dir / synth.SILENCE_LABEL / f"noise-{number + 1}.wav", SAMPLE_RATE, samples)
    counts[synth.SILENCE_LABEL] = per_class
    return counts


def spoken_digits_samples(samples_dir: Path, per_class: int = 4, seed: int = 0) -> dict[str, int]:
    """Write classes "0".."9", spoken as "zero".."nine", into `samples_dir/<digit>/*.wav`."""
    counts = {}
    for digit, word in enumerate(DIGIT_WORDS):
        for number in range(per_class):
            speaker, samples = _speech_sample(word, digit + number, seed)
            write_wav(samples_dir / str(digit) / f"{word}-{number + 1}-{speaker}.wav", SAMPLE_RATE, samples)
        counts[str(digit)] = per_class
    return counts


def font_digit(digit: int, rng: np.random.Generator) -> np.ndarray:
    """A digit drawn with Pillow's bundled font, randomly thickened and tilted, MNIST-style.

    Returns:
        uint8 (28, 28), light strokes on a dark background.
    """
    font = ImageFont.load_default(size=64)
    canvas = Image.new("L", (112, 112), 0)
    ImageDraw.Draw(canvas).text(
        (56, 56),
        str(digit),
        fill=255,
        font=font,
        anchor="mm",
        stroke_width=int(rng.integers(0, 3)),  # MNIST pen strokes are about 1/8 of the digit height
        stroke_fill=255,
    )
    canvas = canvas.rotate(float(rng.uniform(-12, 12)), resample=Image.Resampling.BILINEAR)
    return center_digit(np.asarray(canvas))


def mnist_samples(samples_dir: Path, per_class: int = 4, seed: int = 0) -> dict[str, int]:
    """Write 28×28 PNG digits into `samples_dir/<digit>/`: handwritten ones from scikit-learn."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    rng = np.random.default_rng(seed)
    counts = {}
    for digit in range(10):
        handwritten = per_class  # real handwriting; font digits only if scikit-learn had too few
        indices = np.flatnonzero(digits.target == digit)
        chosen = rng.choice(indices, size=min(handwritten, indices.size), replace=False)
        images = [(f"handwritten-{index:04d}", digit_image(digits.images[index])) for index in sorted(chosen)]
        images += [(f"font-{number + 1}", font_digit(digit, rng)) for number in range(per_class - len(images))]
        for stem, pixels in images:
            path = samples_dir / str(digit) / f"{stem}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(pixels, mode="L").save(path)
        counts[str(digit)] = len(images)
    return counts


SAMPLE_MAKERS: dict[str, Callable[[Path, int, int], dict[str, int]]] = {
    "speech-commands": speech_commands_samples,
    "spoken-digits": spoken_digits_samples,
    "mnist": mnist_samples,
}


def write_samples(models_dir: str | Path = MODELS_DIR, per_class: int = 4, seed: int = 0) -> dict[str, dict[str, int]]:
    """Replace `<models_dir>/<bundle>/samples/` of every bundle folder that exists and has a maker.

    Each samples folder is built beside the bundle and renamed into place.

    Returns:
        Files written per class, per bundle.
    """
    written = {}
    for bundle, make in SAMPLE_MAKERS.items():
        bundle_dir = Path(models_dir) / bundle
        if not bundle_dir.is_dir():
            continue
        with replace_when_complete(bundle_dir / SAMPLES_FOLDER) as staging:
            written[bundle] = make(staging, per_class, seed)
    return written
