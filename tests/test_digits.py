"""scikit-learn's digits as MNIST-like PNG class folders."""

from __future__ import annotations

import argparse

import numpy as np
from PIL import Image
from scipy import ndimage

from app.data_cli import register
from app.digits import center_in_frame, digit_image, write_digits


def test_digit_image_is_mnist_like():
    pixels = np.zeros((8, 8))
    pixels[1:7, 3:5] = 16  # a "1"
    image = digit_image(pixels)
    assert image.shape == (28, 28) and image.dtype == np.uint8
    assert image.max() == 255 and image[0].max() == 0 and image[:, 0].max() == 0  # light on dark
    rows, _ = np.nonzero(image > 0)
    assert 18 <= rows.max() - rows.min() + 1 <= 22  # scaled into the 20-pixel box
    center = ndimage.center_of_mass(image.astype(float))
    assert np.allclose(center, (13.5, 13.5), atol=0.6)


def test_center_in_frame_of_blank_and_off_centre_input():
    assert center_in_frame(np.zeros((10, 10))).max() == 0
    corner = np.zeros((40, 40))
    corner[2:8, 2:6] = 1.0
    center = ndimage.center_of_mass(center_in_frame(corner).astype(float))
    assert np.allclose(center, (13.5, 13.5), atol=0.6)


def test_write_digits_with_limit(tmp_path):
    counts = write_digits(tmp_path, limit_per_class=3)
    assert counts == {str(digit): 3 for digit in range(10)}
    files = sorted(tmp_path.glob("*/*.png"))
    assert len(files) == 30
    with Image.open(files[0]) as image:
        assert image.mode == "L" and image.size == (28, 28)


def test_cli_digits(tmp_path, capsys):
    parser = argparse.ArgumentParser(prog="onepipe")
    register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["data", "digits", str(tmp_path / "digits"), "--limit-per-class", "2"])
    assert args.func(args) == 0
    assert len(list((tmp_path / "digits").glob("*/*.png"))) == 20
    assert "wrote 20 files" in capsys.readouterr().out
