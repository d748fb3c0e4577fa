"""Small generated datasets for the tests: tones for audio, shapes for images. No real data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import scipy.io.wavfile
from PIL import Image, ImageDraw

TONE_CLASSES = {"low": 300.0, "mid": 900.0, "high": 2500.0}  # Hz
SHAPE_CLASSES = ("circle", "square", "cross")


def tone(frequency: float, seconds: float = 0.8, sample_rate: int = 16000, seed: int = 0) -> np.ndarray:
    """A tone with a little noise and an envelope, float32 (samples,) in [-1, 1]."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    envelope = np.sin(np.pi * t / seconds)
    wave = 0.5 * envelope * np.sin(2 * np.pi * frequency * (1 + rng.uniform(-0.03, 0.03)) * t)
    return (wave + 0.01 * rng.standard_normal(t.size)).astype(np.float32)


def write_wav(path: Path, waveform: np.ndarray, sample_rate: int = 16000) -> Path:
    """PCM16 mono WAV."""
    path.parent.mkdir(parents=True, exist_ok=True)
    scipy.io.wavfile.write(path, sample_rate, (np.clip(waveform, -1, 1) * 32767).astype(np.int16))
    return path


def make_tone_dataset(root: Path, per_class: int = 24, speakers: int = 24) -> Path:
    """root/<low|mid|high>/<speaker>_nohash_<n>.wav, 1 s or shorter clips at 16 kHz."""
    for class_index, (name, frequency) in enumerate(TONE_CLASSES.items()):
        for n in range(per_class):
            speaker = f"{(n % speakers) * 7919 + 1000:08x}"
            seed = class_index * 1000 + n
            write_wav(root / name / f"{speaker}_nohash_{n}.wav", tone(frequency, 0.5 + 0.4 * (n % 3) / 2, seed=seed))
    return root


def shape_image(name: str, size: int = 28, seed: int = 0, dark_background: bool = True) -> Image.Image:
    """A light shape on a dark background (or the reverse), jittered in place and size."""
    rng = np.random.default_rng(seed)
    background, ink = (0, 255) if dark_background else (255, 0)
    image = Image.new("L", (size, size), background)
    draw = ImageDraw.Draw(image)
    half = size * rng.uniform(0.25, 0.35)
    cx, cy = size / 2 + rng.uniform(-2, 2), size / 2 + rng.uniform(-2, 2)
    box = (cx - half, cy - half, cx + half, cy + half)
    width = max(2, size // 10)
    if name == "circle":
        draw.ellipse(box, outline=ink, width=width)
    elif name == "square":
        draw.rectangle(box, outline=ink, width=width)
    else:
        draw.line((box[0], box[1], box[2], box[3]), fill=ink, width=width)
        draw.line((box[0], box[3], box[2], box[1]), fill=ink, width=width)
    return image


def make_shape_dataset(root: Path, per_class: int = 24) -> Path:
    """root/<circle|square|cross>/<n>.png, 28×28 grey, light on dark."""
    for class_index, name in enumerate(SHAPE_CLASSES):
        folder = root / name
        folder.mkdir(parents=True, exist_ok=True)
        for n in range(per_class):
            shape_image(name, seed=class_index * 1000 + n).save(folder / f"{name}_{n}.png")
    return root


def data_command(*argv: object) -> int:
    """`python -m app data ARGV…` through the data CLI's own parser, in this process; its exit code."""
    import argparse

    from app.datasets.cli import register

    parser = argparse.ArgumentParser(prog="onepipe")
    register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["data", *map(str, argv)])
    return args.func(args)
