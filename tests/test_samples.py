"""The dashboard's example inputs, made by the project: speech from eSpeak NG, drawn digits."""

from __future__ import annotations

import argparse

import numpy as np
from PIL import Image
from scipy.io import wavfile

from app.datasets.cli import register
from app.datasets.samples import font_digit, write_samples

SPEECH_COMMANDS_CLASSES = {
    "yes",
    "no",
    "up",
    "down",
    "left",
    "right",
    "on",
    "off",
    "stop",
    "go",
    "_unknown_",
    "_silence_",
}


def test_samples_for_every_existing_bundle(tmp_path):
    for bundle in ("speech-commands", "spoken-digits", "mnist", "cifar10"):
        (tmp_path / bundle).mkdir()
    written = write_samples(tmp_path, per_class=3)
    assert set(written) == {"speech-commands", "spoken-digits", "mnist"}  # cifar10: downloaded only
    assert not (tmp_path / "cifar10" / "samples").exists()

    speech = tmp_path / "speech-commands" / "samples"
    assert {path.name for path in speech.iterdir()} == SPEECH_COMMANDS_CLASSES
    for path in speech.glob("*/*.wav"):
        sample_rate, samples = wavfile.read(path)
        assert sample_rate == 16000 and samples.dtype == np.int16 and samples.shape == (16000,)
        assert path.stat().st_size < 40_000
    assert all(len(list(folder.iterdir())) == 3 for folder in speech.iterdir())
    assert len({path.name.split("-", 2)[2] for path in (speech / "yes").iterdir()}) == 3  # three voices

    digits = tmp_path / "spoken-digits" / "samples"
    assert {path.name for path in digits.iterdir()} == {str(digit) for digit in range(10)}
    assert all(path.name.startswith("seven-") for path in (digits / "7").iterdir())

    mnist = tmp_path / "mnist" / "samples"
    pngs = sorted(mnist.glob("*/*.png"))
    assert len(pngs) == 30
    assert all(path.name.startswith("handwritten-") for path in pngs)  # real handwriting, not a font
    for path in pngs:
        with Image.open(path) as image:
            pixels = np.asarray(image)
        assert image.mode == "L" and pixels.shape == (28, 28)
        assert pixels[0].max() == 0 and pixels.max() > 200  # light on dark


def test_only_existing_bundles_and_rerun_replaces(tmp_path):
    assert write_samples(tmp_path) == {}
    (tmp_path / "mnist" / "samples" / "stale").mkdir(parents=True)
    write_samples(tmp_path, per_class=2)
    assert not (tmp_path / "mnist" / "samples" / "stale").exists()
    assert len(list((tmp_path / "mnist" / "samples").glob("*/*.png"))) == 20
    assert not list((tmp_path / "mnist").glob(".*"))  # no staging folder left behind


def test_font_digit_is_light_on_dark_and_centred():
    image = font_digit(4, np.random.default_rng(0))
    assert image.shape == (28, 28) and image.dtype == np.uint8
    assert image[:3].max() == 0 and image[-3:].max() == 0 and image.max() > 200


def test_cli_samples(tmp_path, capsys):
    (tmp_path / "mnist").mkdir()
    parser = argparse.ArgumentParser(prog="onepipe")
    register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["data", "samples", "--models-dir", str(tmp_path), "--per-class", "2"])
    assert args.func(args) == 0
    assert "wrote 20 files" in capsys.readouterr().out
    written = sorted((tmp_path / "mnist" / "samples").glob("*/*.png"))
    assert len(written) == 20 and sorted({path.parent.name for path in written}) == [str(d) for d in range(10)]
