"""scikit-learn's digits as MNIST-like PNG class folders."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from fixtures_data import data_command
from PIL import Image
from scipy import ndimage

from app.centering import center_digit
from app.datasets.digits import digit_image, write_digits
from app.errors import DatasetError


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


def test_center_digit_of_blank_and_off_centre_input():
    assert center_digit(np.zeros((10, 10))).max() == 0
    corner = np.zeros((40, 40))
    corner[2:8, 2:6] = 1.0
    center = ndimage.center_of_mass(center_digit(corner).astype(float))
    assert np.allclose(center, (13.5, 13.5), atol=0.6)


def test_write_digits_with_limit(tmp_path):
    counts = write_digits(tmp_path, limit_per_class=3)
    assert counts == {str(digit): 3 for digit in range(10)}
    files = sorted(tmp_path.glob("*/*.png"))
    assert len(files) == 30
    with Image.open(files[0]) as image:
        assert image.mode == "L" and image.size == (28, 28)


def test_cli_digits(tmp_path, capsys):
    assert data_command("digits", tmp_path / "digits", "--limit-per-class", "2") == 0
    assert len(list((tmp_path / "digits").glob("*/*.png"))) == 20
    assert "wrote 20 files" in capsys.readouterr().out


def test_replace_rewrites_only_a_folder_this_command_made(tmp_path, capsys):
    def run(out: Path, *options: str) -> int:
        return data_command("digits", out, "--limit-per-class", "1", *options)

    mine = tmp_path / "mine"  # the user's own class folders of PNGs: never deleted
    for name in ("cat", "dog"):
        (mine / name).mkdir(parents=True)
        Image.new("L", (8, 8)).save(mine / name / "1.png")
    with pytest.raises(DatasetError, match=r"was not made by `data digits`.*nothing was deleted"):
        run(mine, "--replace")
    assert sorted(path.name for path in mine.iterdir()) == ["cat", "dog"]
    assert run(tmp_path / "digits") == 0
    assert run(tmp_path / "digits", "--replace") == 0  # an earlier run's folder is rewritten
    assert len(list((tmp_path / "digits").glob("*/*.png"))) == 10
    (tmp_path / "digits" / "0" / "notes.txt").write_text("mine")
    with pytest.raises(DatasetError, match=r"more than class folders of \.png files"):
        run(tmp_path / "digits", "--replace")
    assert (tmp_path / "digits" / "0" / "notes.txt").read_text() == "mine"
    assert sorted(path.name for path in tmp_path.iterdir()) == ["digits", "mine"]  # no staging folder left
