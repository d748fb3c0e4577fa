"""Image loading: formats, modes, orientation, background matching, and the bad-input table."""

from __future__ import annotations

import io

import numpy as np
import pytest
from fixtures_data import shape_image
from PIL import Image

from app.config import ImageConfig
from app.errors import InputError
from app.images import load_image

GREY = ImageConfig(image_size=(28, 28), channels=1)
RGB = ImageConfig(image_size=(32, 32), channels=3)


def encode(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def red_square(size=(64, 48)) -> Image.Image:
    image = Image.new("RGB", size, (255, 255, 255))
    image.paste((255, 0, 0), (size[0] // 4, size[1] // 4, 3 * size[0] // 4, 3 * size[1] // 4))
    return image


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "BMP", "GIF", "WEBP", "TIFF", "PPM"])
def test_common_formats_load_as_the_model_input(fmt):
    array = load_image(encode(red_square(), fmt), RGB)
    assert array.shape == (32, 32, 3) and array.dtype == np.uint8
    centre = array[16, 16].astype(int)
    assert centre[0] > 200 and centre[1] < 80 and centre[2] < 80


@pytest.mark.parametrize("mode", ["P", "RGBA", "LA", "CMYK", "LAB", "I;16", "1", "L"])
def test_every_mode_converts_to_the_model_channels(mode):
    source = red_square()
    image = source.convert("L").convert("I;16") if mode == "I;16" else source.convert(mode)
    for config, channels in ((GREY, 1), (RGB, 3)):
        array = load_image(encode(image, "TIFF" if mode in ("CMYK", "LAB", "I;16") else "PNG"), config)
        assert array.shape[-1] == channels
        centre, corner = array[array.shape[0] // 2, array.shape[1] // 2].astype(int), array[0, 0].astype(int)
        assert corner.min() > 200  # the white paper stays white
        if channels == 3 and mode not in ("L", "1", "LA", "I;16"):
            assert centre[0] > 200 and centre[1] < 80 and centre[2] < 80  # the square stays red
        else:
            assert centre.max() < corner.min() - 50  # the square is darker than the paper


def test_sixteen_bit_grey_keeps_its_contrast():
    ramp = (np.linspace(0, 65535, 64 * 64).reshape(64, 64)).astype(np.uint16)
    array = load_image(encode(Image.fromarray(ramp), "PNG"), GREY)
    assert array.min() < 30 and array.max() > 220


def test_transparent_pixels_become_white():
    image = Image.new("RGBA", (10, 10), (0, 0, 0, 0))
    assert load_image(encode(image, "PNG"), RGB).min() == 255


def test_a_light_drawing_on_a_transparent_background_is_laid_on_black():
    strokes = shape_image("circle", size=28, seed=1)  # light strokes on black
    on_black = load_image(encode(strokes, "PNG"), GREY)
    white = Image.new("L", strokes.size, 255)
    transparent = Image.merge("RGBA", (white, white, white, strokes.convert("L")))  # alpha = the drawing
    np.testing.assert_array_equal(load_image(encode(transparent, "PNG"), GREY), on_black)
    dark = Image.merge("RGBA", (*(Image.new("L", strokes.size, 0),) * 3, strokes.convert("L")))
    assert load_image(encode(dark, "PNG"), GREY).max() == 255  # dark strokes: laid on white, as before


def test_a_huge_image_is_reduced_before_conversion_with_the_same_result():
    small = shape_image("square", size=64, seed=2).convert("RGBA")
    huge = small.resize((64 * 40, 64 * 40), Image.Resampling.NEAREST)  # 6.5 megapixels of RGBA
    config = ImageConfig(image_size=(16, 16), channels=3)
    difference = load_image(encode(huge, "PNG"), config).astype(int) - load_image(encode(small, "PNG"), config)
    assert np.abs(difference).max() <= 8


@pytest.mark.parametrize("mode", ["P", "P-transparent", "1", "I;16"])
def test_modes_that_cannot_be_reduced_are_converted_first_when_large_with_the_same_result(mode):
    from app.limits import MAX_WORKING_PIXELS

    small = shape_image("square", size=64, seed=2, dark_background=False).convert("RGB")
    if mode.startswith("P"):
        small = small.convert("P", palette=Image.Palette.ADAPTIVE, colors=4)
        if mode == "P-transparent":
            small.info["transparency"] = small.getpixel((0, 0))  # the paper is see-through
    else:
        small = small.convert("L").point(lambda v: 255 if v > 127 else 0).convert("1") if mode == "1" else small
        small = Image.fromarray(np.asarray(small.convert("L"), np.uint16) * 257) if mode == "I;16" else small
    huge = small.resize((64 * 33, 64 * 33), Image.Resampling.NEAREST)  # 4.5 megapixels
    assert huge.width * huge.height > MAX_WORKING_PIXELS and huge.mode == small.mode
    config = ImageConfig(image_size=(16, 16), channels=3)
    options = {"transparency": small.info["transparency"]} if mode == "P-transparent" else {}
    as_file = load_image(encode(huge, "PNG", **options), config).astype(int)
    assert np.abs(as_file - load_image(encode(small, "PNG", **options), config)).max() <= 8


def test_exif_orientation_is_applied():
    image = Image.new("RGB", (60, 30), (0, 0, 0))
    image.paste((255, 255, 255), (0, 0, 30, 30))  # white left half
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise to display
    array = load_image(encode(image, "JPEG", exif=exif), ImageConfig(image_size=(60, 30), channels=1))
    assert array[:25].mean() > 200 and array[35:].mean() < 50  # white half is now on top


def test_first_frame_of_an_animation():
    frames = [Image.new("RGB", (20, 20), colour) for colour in ((255, 0, 0), (0, 0, 255))]
    data = encode(frames[0], "GIF", save_all=True, append_images=frames[1:])
    assert load_image(data, RGB)[10, 10, 0] > 200


def test_dark_ink_on_paper_is_inverted_for_a_dark_background_model():
    config = ImageConfig(image_size=(28, 28), channels=1, background="dark")
    on_dark = load_image(shape_image("circle", dark_background=True), config)
    on_paper = load_image(shape_image("circle", dark_background=False), config)
    assert on_dark[0, 0, 0] < 50 and on_paper[0, 0, 0] < 50
    assert np.abs(on_dark.astype(int) - on_paper.astype(int)).mean() < 5


def test_center_content_frames_a_small_off_centre_digit_in_a_large_photo():
    photo = Image.new("L", (1200, 900), 235)  # grey paper
    photo.paste(20, (100, 100, 160, 300))  # a dark "1" near the corner
    config = ImageConfig(image_size=(28, 28), channels=1, background="dark", center_content=True)
    array = load_image(encode(photo.convert("RGB"), "JPEG"), config)[:, :, 0]
    rows, columns = np.nonzero(array > 128)
    assert 10 <= rows.mean() <= 18 and 10 <= columns.mean() <= 18
    assert rows.max() - rows.min() >= 18  # scaled up to ~20 px tall
    assert array[0].max() < 30  # the border stays dark


def test_arrays_are_accepted():
    assert load_image(np.zeros((40, 50), np.uint8), GREY).shape == (28, 28, 1)
    assert load_image(np.ones((40, 50, 3), np.float32), RGB).min() == 255
    with pytest.raises(InputError, match="shape"):
        load_image(np.zeros((4, 4, 7), np.uint8), RGB)
    with pytest.raises(InputError, match="0–255"):
        load_image(np.array([[0, 256], [300, -1]]), GREY)
    assert load_image(np.ones((10, 10), bool), GREY).min() == 255


def _truncated_png() -> bytes:
    return encode(red_square((200, 200)), "PNG")[:300]


def _bomb() -> bytes:
    return encode(Image.new("1", (12000, 12000)), "PNG")  # 144 megapixels, a few kB


@pytest.mark.parametrize(
    "data, message",
    [
        (b"", "0-byte"),
        (_truncated_png(), "damaged image"),
        (b"%PDF-1.7 not an image" * 10, "not an image"),
        (_bomb(), "pixels"),
    ],
    ids=["empty", "truncated-png", "pdf", "decompression-bomb"],
)
def test_bad_images_give_a_clear_input_error(data, message):
    with pytest.raises(InputError, match=message):
        load_image(data, RGB)


def test_a_colour_mode_pillow_cannot_convert_is_an_input_error():
    with pytest.raises(InputError, match="La colour mode"):  # premultiplied grey and alpha
        load_image(Image.new("La", (20, 20)), GREY)


def test_a_folder_is_not_an_image(tmp_path):
    with pytest.raises(InputError, match="is a folder"):
        load_image(tmp_path, RGB)


def test_default_pillow_bomb_limit_is_also_an_input_error():
    config = ImageConfig(max_pixels=10**12)
    with pytest.raises(InputError, match="decompression bomb"):
        load_image(_bomb(), config)


def test_the_inferred_image_size_fits_the_cnn(tmp_path):
    from app.class_folders import find_dataset
    from app.model import MIN_INPUT_SIZE
    from app.training.preprocessing import infer_image_config

    for name in ("a", "b"):
        (tmp_path / "tiny" / name).mkdir(parents=True)
        (tmp_path / "wide" / name).mkdir(parents=True)
        for n in range(3):
            Image.new("L", (8, 8)).save(tmp_path / "tiny" / name / f"{n}.png")
            Image.new("RGB", (300, 20)).save(tmp_path / "wide" / name / f"{n}.png")
    assert infer_image_config(find_dataset(tmp_path / "tiny")).image_size == (MIN_INPUT_SIZE, MIN_INPUT_SIZE)
    assert infer_image_config(find_dataset(tmp_path / "wide")).image_size == (MIN_INPUT_SIZE, 64)
