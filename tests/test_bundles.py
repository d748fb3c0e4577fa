"""Bundles on disk: a failed write changes nothing, and a damaged or hostile bundle is refused with a message
that says what is wrong (the file, the field, the value and what is allowed), by `Predictor.load` and by
`python -m app predict` alike, before anything is allocated from it; bundles of earlier versions still load.
The replacement of a bundle itself (one-step swap, repair after a kill) is tested in test_staging.py."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from app import bundle as bundle_module
from app import cli, staging
from app.bundle import find_bundles, read_metadata, write_bundle
from app.bundle_schema import check_model_fits
from app.config import MIN_IMAGE_SIDE, AudioConfig, ImageConfig
from app.errors import BundleError
from app.hashing import file_digest
from app.model import MIN_INPUT_SIZE
from app.paths import PROJECT_ROOT
from app.predict import Predictor

METADATA = {"format_version": 1, "kind": "audio", "class_names": ["a"], "preprocessing": {}, "input_shape": [1]}


def write_model(folder: Path) -> None:
    (folder / "model.tflite").write_bytes(b"model")


def leftovers(parent: Path) -> list[str]:
    return sorted(path.name for path in parent.iterdir() if path.name.startswith("."))


def test_a_write_that_fails_leaves_no_bundle_and_no_staging_folder(tmp_path):
    def crash(folder: Path) -> None:
        (folder / "model.keras").write_bytes(b"half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        write_bundle(tmp_path / "new", METADATA, crash)
    assert not (tmp_path / "new").exists() and leftovers(tmp_path) == []


def test_a_retrain_that_fails_keeps_the_old_bundle_whole(tmp_path, monkeypatch):
    bundle = write_bundle(tmp_path / "b", METADATA, write_model)
    before = {path.name: path.read_bytes() for path in bundle.iterdir()}

    def crash(folder: Path) -> None:
        (folder / "model.tflite").write_bytes(b"half of a new model")
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError, match="killed"):
        write_bundle(bundle, METADATA, crash, force=True)
    assert {path.name: path.read_bytes() for path in bundle.iterdir()} == before
    assert leftovers(tmp_path) == []

    # The new bundle is complete but the swap fails: the old one stays.
    def failing_swap(first: Path, second: Path) -> bool:
        raise OSError("swap refused")

    monkeypatch.setattr(staging, "exchange_paths", failing_swap)
    with pytest.raises(OSError, match="swap refused"):
        write_bundle(bundle, {**METADATA, "class_names": ["a", "b"]}, write_model, force=True)
    assert {path.name: path.read_bytes() for path in bundle.iterdir()} == before
    assert leftovers(tmp_path) == []

    # Without the swap (two renames), the new one cannot be moved in: the old one is put back.
    monkeypatch.setattr(staging, "exchange_paths", lambda first, second: False)
    real_rename = Path.rename

    def failing_rename(self: Path, target):
        if self.name.startswith(".b.staging-"):
            raise OSError("rename refused")
        return real_rename(self, target)

    monkeypatch.setattr(Path, "rename", failing_rename)
    with pytest.raises(OSError, match="rename refused"):
        write_bundle(bundle, {**METADATA, "class_names": ["a", "b"]}, write_model, force=True)
    assert {path.name: path.read_bytes() for path in bundle.iterdir()} == before
    assert leftovers(tmp_path) == []


def damage_model_bytes(bundle: Path) -> None:
    (bundle / "model.tflite").write_bytes(b"not the model it was")


def replace_model_and_its_checksum(bundle: Path) -> None:
    (bundle / "model.tflite").write_bytes(b"TFL3 but not a flatbuffer")
    metadata = json.loads((bundle / "metadata.json").read_text())
    metadata["files"]["model.tflite"] = file_digest(bundle / "model.tflite")
    (bundle / "metadata.json").write_text(json.dumps(metadata))


def edit_metadata(change):
    def edit(bundle: Path) -> None:
        metadata = json.loads((bundle / "metadata.json").read_text())
        change(metadata)
        (bundle / "metadata.json").write_text(json.dumps(metadata))

    return edit


DAMAGE = {
    "model deleted": (lambda bundle: (bundle / "model.tflite").unlink(), "has no model.tflite"),
    "model changed": (damage_model_bytes, "does not match the sha256 in metadata.json"),
    "model not LiteRT": (replace_model_and_its_checksum, "is not a valid LiteRT model"),
    "metadata cut short": (lambda bundle: (bundle / "metadata.json").write_text("{"), "is not valid JSON"),
    "metadata deleted": (lambda bundle: (bundle / "metadata.json").unlink(), "is not a model bundle"),
    "metadata newer": (edit_metadata(lambda m: m.update(format_version=99)), "a newer OnePipe made this bundle"),
    "checksums missing": (edit_metadata(lambda m: m.pop("files")), "lacks files; the bundle is incomplete"),
    "checksum missing": (
        edit_metadata(lambda m: m["files"].pop("model.tflite")),
        "records no sha256 for model.tflite",
    ),
}


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_a_damaged_bundle_is_refused_with_what_is_wrong(tmp_path, capsys, damage):
    bundle = Path(shutil.copytree(PROJECT_ROOT / "models" / "mnist", tmp_path / "mnist"))
    digit = tmp_path / "digit.png"
    picture = Image.new("L", (28, 28))
    ImageDraw.Draw(picture).line([(14, 4), (14, 24)], fill=255, width=3)  # a "1"
    picture.save(digit)
    assert Predictor.load(bundle)(digit)  # intact, it answers
    make_damage, message = DAMAGE[damage]
    make_damage(bundle)
    with pytest.raises(BundleError, match=message):
        Predictor.load(bundle)
    assert cli.main(["predict", str(bundle), str(digit)]) == 2
    stderr = capsys.readouterr().err
    assert message in stderr and len(stderr.strip().splitlines()) == 1, stderr


def test_evaluate_on_a_folder_without_the_bundles_classes_says_which_folders_it_needs(tmp_path, capsys):
    (tmp_path / "cats").mkdir()
    Image.new("L", (28, 28)).save(tmp_path / "cats" / "a.png")
    assert cli.main(["evaluate", str(PROJECT_ROOT / "models" / "mnist"), str(tmp_path)]) == 2
    stderr = capsys.readouterr().err
    assert "no image files under" in stderr and "in folders named after the bundle's classes" in stderr
    assert len(stderr.strip().splitlines()) == 1


def copy_bundle(name: str, folder: Path) -> Path:
    """A copy of a shipped bundle without its samples."""
    return Path(
        shutil.copytree(PROJECT_ROOT / "models" / name, folder / name, ignore=shutil.ignore_patterns("samples"))
    )


def digit_image() -> Image.Image:
    picture = Image.new("L", (28, 28))
    ImageDraw.Draw(picture).line([(14, 4), (14, 24)], fill=255, width=3)  # a "1"
    return picture


def set_in(*keys_and_value):
    """An edit that sets metadata[key][key]… = value."""
    *keys, value = keys_and_value

    def change(metadata: dict) -> None:
        for key in keys[:-1]:
            metadata = metadata[key]
        metadata[keys[-1]] = value

    return change


def sixteen_moves_and_one(metadata: dict) -> None:
    metadata["serving"]["pixel_shifts"] = [[1, 1]] * 17


# name: (shipped bundle, edit of its metadata.json, the message that follows "…/metadata.json: ")
HOSTILE_METADATA = {
    "image_size huge": (
        "mnist",
        set_in("preprocessing", "image_size", [100000, 100000]),
        "preprocessing.image_size is [100000, 100000]; expected two whole numbers from 10 to 1024",
    ),
    "image_size one number": (
        "mnist",
        set_in("preprocessing", "image_size", 28),
        "preprocessing.image_size is 28; expected two whole numbers from 10 to 1024",
    ),
    "pixel_shifts huge": (
        "mnist",
        set_in("serving", {"pixel_shifts": [[30000, 30000]]}),
        "serving.pixel_shifts[0] is [30000, 30000]; expected two whole numbers from -1024 to 1024",
    ),
    "pixel_shift beyond the image": (
        "cifar10",
        set_in("serving", "pixel_shifts", [[3, 0], [0, 49]]),
        "serving.pixel_shifts[1] is [0, 49]; expected [down, right] within the 48 × 48 image: from -48 to 48",
    ),
    "pixel_shifts too many": (
        "cifar10",
        sixteen_moves_and_one,
        "serving.pixel_shifts is a list of 17 entries; expected a list of 0 to 16 [down, right] moves",
    ),
    "time shift beyond the window": (
        "spoken-digits",
        set_in("serving", "time_shift_frames", [-5, 98]),
        "serving.time_shift_frames[1] is 98; expected a whole number from -97 to 97",
    ),
    "time shift as text": (
        "spoken-digits",
        set_in("serving", "time_shift_frames", ["-5"]),
        'serving.time_shift_frames[0] is "-5"; expected a whole number from -4096 to 4096',
    ),
    "average_mirrored as text": (
        "cifar10",
        set_in("serving", "average_mirrored", "yes"),
        'serving.average_mirrored is "yes"; expected true or false',
    ),
    "window_past_edges as a number": (
        "spoken-digits",
        set_in("preprocessing", "window_past_edges", 1),
        "preprocessing.window_past_edges is 1; expected true or false",
    ),
    "serving a list": ("mnist", set_in("serving", []), "serving is []; expected an object of test-time views"),
    "class_names null": (
        "mnist",
        set_in("class_names", None),
        "class_names is null; expected a list of 1 to 1000 different names",
    ),
    "class_names empty": ("mnist", set_in("class_names", []), "class_names is []; expected a list of 1 to 1000"),
    "class_names too few": (
        "mnist",
        set_in("class_names", [str(digit) for digit in range(9)]),
        "class_names has 9 names; expected 10, one per output of model.tflite",
    ),
    "class_names too many": (
        "mnist",
        set_in("class_names", [*map(str, range(10)), "PWNED"]),
        "class_names has 11 names; expected 10, one per output of model.tflite",
    ),
    "class_names renamed, fewer": (
        "speech-commands",
        set_in("class_names", ["PWNED", "yes"]),
        "class_names has 2 names; expected 12, one per output of model.tflite",
    ),
    "class_names over a thousand": (
        "mnist",
        set_in("class_names", [f"class {n}" for n in range(1001)]),
        "class_names is a list of 1001 entries; expected a list of 1 to 1000 different names",
    ),
    "class name repeated": (
        "mnist",
        set_in("class_names", [*map(str, range(9)), "7"]),
        '("7" is there twice)',
    ),
    "class name empty": ("mnist", set_in("class_names", 0, "  "), 'class_names[0] is "  "; expected a name'),
    "class name a number": ("mnist", set_in("class_names", 3, 3), "class_names[3] is 3; expected a name"),
    "string where an object belongs": (
        "mnist",
        set_in("preprocessing", "image"),
        'preprocessing is "image"; expected an object of image preprocessing settings',
    ),
    "files a string": ("mnist", set_in("files", "model.tflite"), 'files is "model.tflite"; expected an object'),
    "sha256 not hex": (
        "mnist",
        set_in("files", "model.tflite", "PWNED"),
        'files.model.tflite is "PWNED"; expected 64 hexadecimal digits (a sha256)',
    ),
    "file in another folder": (
        "mnist",
        set_in("files", "../model.tflite", "0" * 64),
        'a name in files is "../model.tflite"; expected a file name without a folder',
    ),
    "sample rate as text": (
        "spoken-digits",
        set_in("preprocessing", "sample_rate", "16000"),
        'preprocessing.sample_rate is "16000"; expected a whole number from 1000 to 384000',
    ),
    "sample rate huge": (
        "spoken-digits",
        set_in("preprocessing", "sample_rate", 10**9),
        "preprocessing.sample_rate is 1000000000; expected a whole number from 1000 to 384000",
    ),
    "channels 7": ("mnist", set_in("preprocessing", "channels", 7), "preprocessing.channels is 7; expected 1 or 3"),
    "channels true": ("mnist", set_in("preprocessing", "channels", True), "preprocessing.channels is true"),
    "n_fft 1e9": (
        "spoken-digits",
        set_in("preprocessing", "n_fft", 1e9),
        "preprocessing.n_fft is 1000000000.0; expected a whole number from 2 to 16384",
    ),
    "n_mels huge": (
        "spoken-digits",
        set_in("preprocessing", "n_mels", 100000),
        "preprocessing.n_mels is 100000; expected a whole number from 1 to 256",
    ),
    "clip_seconds not a number": (
        "spoken-digits",
        set_in("preprocessing", "clip_seconds", float("nan")),
        "preprocessing.clip_seconds is NaN; expected a number above 0 and at most 30",
    ),
    "n_fft longer than the clip": (
        "spoken-digits",
        set_in("preprocessing", "n_fft", 10000),
        "preprocessing does not fit together (clip_seconds 1.0 is shorter than one frame of 10000 samples)",
    ),
    "f_max above Nyquist": (
        "spoken-digits",
        set_in("preprocessing", "f_max", 5000.0),
        "preprocessing does not fit together (f_max 5000.0 Hz is above the Nyquist frequency 4000.0 Hz)",
    ),
    "decoding unbounded": (
        "spoken-digits",
        set_in("preprocessing", "max_decoded_seconds", 1e9),
        "preprocessing.max_decoded_seconds is 1000000000.0; expected a number above 0 and at most 60",
    ),
    "pixel limit raised": (
        "mnist",
        set_in("preprocessing", "max_pixels", 10**12),
        "preprocessing.max_pixels is 1000000000000; expected a whole number from 1 to 50000000",
    ),
    "background unknown": (
        "mnist",
        set_in("preprocessing", "background", "blue"),
        'preprocessing.background is "blue"; expected null, "dark" or "light"',
    ),
    "format_version unknown": (
        "mnist",
        set_in("format_version", 2),
        "format_version is 2; expected at most 1 (a newer OnePipe made this bundle",
    ),
    "format_version zero": ("mnist", set_in("format_version", 0), "format_version is 0; expected 1"),
    "format_version as text": ("mnist", set_in("format_version", "1"), 'format_version is "1"; expected 1'),
    "kind unknown": ("mnist", set_in("kind", "video"), 'kind is "video"; expected "audio" or "image"'),
    "kind swapped": (
        "mnist",
        set_in("kind", "audio"),
        "input_shape is [28, 28, 1]; expected [97, 40, 1], the shape the preprocessing makes",
    ),
    "input_shape not the preprocessing's": (
        "mnist",
        set_in("input_shape", [28, 28, 3]),
        "input_shape is [28, 28, 3]; expected [28, 28, 1], the shape the preprocessing makes",
    ),
    "input_shape not the model's": (
        "mnist",
        lambda m: (set_in("preprocessing", "image_size", [32, 32])(m), set_in("input_shape", [32, 32, 1])(m)),
        "input_shape is [32, 32, 1]; expected [28, 28, 1], the input of model.tflite",
    ),
    "input_shape null": (
        "mnist",
        set_in("input_shape", None),
        "input_shape is null; expected a list of 3 whole numbers",
    ),
    "temperature negative": (
        "mnist",
        set_in("calibration", {"temperature": -1.0}),
        "calibration.temperature is -1.0; expected a number above 0 and at most 100",
    ),
    "temperature as text": (
        "mnist",
        set_in("calibration", {"temperature": "1.5"}),
        'calibration.temperature is "1.5"; expected a number above 0',
    ),
    "familiarity threshold as text": (
        "mnist",
        set_in("familiarity", {"threshold": "high"}),
        'familiarity.threshold is "high"; expected a number',
    ),
    "familiarity not an object": (
        "mnist",
        set_in("familiarity", 0.5),
        "familiarity is 0.5; expected an object of familiarity settings",
    ),
}


@pytest.mark.parametrize("case", sorted(HOSTILE_METADATA))
def test_hostile_metadata_is_refused_naming_the_field_the_value_and_what_is_allowed(tmp_path, case):
    name, change, message = HOSTILE_METADATA[case]
    bundle = copy_bundle(name, tmp_path)
    edit_metadata(change)(bundle)
    with pytest.raises(BundleError) as raised:
        Predictor.load(bundle)
    assert str(raised.value).startswith(f"{bundle / 'metadata.json'}: "), raised.value
    assert message in str(raised.value), raised.value
    assert len(str(raised.value)) < 300 and "\n" not in str(raised.value)


def test_the_command_line_blames_metadata_json_in_one_line(tmp_path, capsys):
    bundle = copy_bundle("mnist", tmp_path)
    edit_metadata(set_in("preprocessing", "channels", 7))(bundle)
    digit = tmp_path / "digit.png"
    digit_image().save(digit)
    assert cli.main(["predict", str(bundle), str(digit)]) == 2
    stderr = capsys.readouterr().err
    assert "metadata.json: preprocessing.channels is 7; expected 1 or 3" in stderr, stderr
    assert "model.tflite" not in stderr and len(stderr.strip().splitlines()) == 1


def test_fields_added_later_are_read_when_present_and_unknown_ones_ignored(tmp_path):
    bundle = copy_bundle("mnist", tmp_path)
    edit_metadata(
        lambda m: m.update(
            calibration={"temperature": 1.5, "method": "later"},
            familiarity={"threshold": -3.25},
            something_new={"any": "thing"},
        )
    )(bundle)
    assert Predictor.load(bundle)(digit_image(), top_k=1)[0]["label"] == "1"


EARLIER_OPTIONAL_KEYS = (
    "name",
    "training",
    "serving",
    "metrics",
    "data",
    "versions",
    "created",
    "calibration",
    "familiarity",
)
# Preprocessing fields that earlier versions did not write, each with its default value in the shipped bundles.
EARLIER_MISSING_PREPROCESSING = {
    "spoken-digits": ("subtract_band_mean", "max_decoded_seconds"),
    "mnist": ("max_pixels",),
}


@pytest.mark.parametrize("name", sorted(EARLIER_MISSING_PREPROCESSING))
def test_a_bundle_of_format_1_without_optional_keys_still_loads(tmp_path, name):
    """Metadata as earlier versions wrote it: only the required keys (the sha256 covers the model files, not
    metadata.json, so nothing is recomputed)."""
    shipped = Predictor.load(PROJECT_ROOT / "models" / name)
    bundle = copy_bundle(name, tmp_path)

    def strip(metadata: dict) -> None:
        for key in EARLIER_OPTIONAL_KEYS:
            metadata.pop(key, None)
        for key in EARLIER_MISSING_PREPROCESSING[name]:
            metadata["preprocessing"].pop(key)

    edit_metadata(strip)(bundle)
    assert sorted(json.loads((bundle / "metadata.json").read_text())) == sorted(
        ["format_version", "kind", "class_names", "preprocessing", "input_shape", "files"]
    )
    earlier = Predictor.load(bundle)
    assert earlier.config == shipped.config and earlier.class_names == shipped.class_names
    assert earlier.serving == {"average_mirrored": False, "time_shift_frames": [], "pixel_shifts": []}
    inputs = digit_image() if name == "mnist" else np.sin(np.arange(8000) / 8000 * 2 * np.pi * 300).astype(np.float32)
    assert len(earlier(inputs, top_k=3)) == 3
    assert list(find_bundles(models_dir=tmp_path)) == [bundle]


def test_a_listing_leaves_out_a_bundle_whose_listed_fields_are_wrong_but_lists_one_that_will_not_load(tmp_path):
    shipped = copy_bundle("mnist", tmp_path / "shipped")
    for name, change in (
        ("names-null", set_in("class_names", None)),
        ("kind-odd", set_in("kind", "video")),
        ("huge", set_in("preprocessing", "image_size", [100000, 100000])),
    ):
        edit_metadata(change)(Path(shutil.copytree(shipped, tmp_path / name)))
    assert list(find_bundles("image", tmp_path, required=("class_names",))) == [tmp_path / "huge"]
    with pytest.raises(BundleError, match=r"preprocessing\.image_size is"):
        read_metadata(tmp_path / "huge")  # loading it says what is wrong


def test_a_large_or_deeply_nested_metadata_json_is_refused_before_it_is_parsed(tmp_path, monkeypatch):
    bundle = copy_bundle("mnist", tmp_path)
    monkeypatch.setattr(bundle_module, "MAX_METADATA_BYTES", 1000)
    with pytest.raises(BundleError, match=r"metadata.json is \d+ bytes; expected at most 1000"):
        Predictor.load(bundle)
    monkeypatch.undo()
    (bundle / "metadata.json").write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(BundleError, match="is not valid JSON"):
        Predictor.load(bundle)


def test_a_model_of_another_type_or_shape_is_refused_before_its_tensors_are_allocated():
    metadata = {"input_shape": [28, 28, 1], "class_names": list("abc")}
    model_input = {"shape": np.array([1, 28, 28, 1]), "dtype": np.float32}
    model_output = {"shape": np.array([1, 3]), "dtype": np.float32}
    check_model_fits(metadata, [model_input], [model_output], "b")
    for inputs, outputs, message in (
        ([{**model_input, "dtype": np.uint8}], [model_output], "has a uint8 input; expected float32"),
        ([model_input, model_input], [model_output], "has 2 inputs and 1 outputs; expected one of each"),
        ([model_input], [{**model_output, "shape": np.array([1, 3, 1])}], "expected (batch, classes)"),
    ):
        with pytest.raises(BundleError, match=re.escape(message)):
            check_model_fits(metadata, inputs, outputs, "b")


def test_configs_are_bounded_as_the_schema_is():
    assert MIN_IMAGE_SIDE == MIN_INPUT_SIZE  # the smallest side of ImageConfig and the schema is the CNN's
    for options in ({"n_mels": 1000}, {"n_fft": 20000, "clip_seconds": 2.0}, {"clip_seconds": 31.0}):
        with pytest.raises(ValueError, match="is outside"):
            AudioConfig(**options)
    with pytest.raises(ValueError, match="frames"):
        AudioConfig(hop_length=1, clip_seconds=2.0)
    with pytest.raises(ValueError, match="image_size"):
        ImageConfig(image_size=(2000, 28))


def test_a_familiarity_of_inner_features_must_fit_the_model_and_its_classes():
    model_input = {"shape": np.array([1, 28, 28, 1]), "dtype": np.float32}
    model_output = {"shape": np.array([1, 3]), "dtype": np.float32}
    features = {"shape": np.array([1, 4]), "dtype": np.float32}
    section = {
        "statistic": "first_layer_mahalanobis",
        "threshold": -10.0,
        "class_means": [[0.0] * 4] * 3,
        "whitening": [[1.0] * 4] * 4,
    }
    metadata = {"input_shape": [28, 28, 1], "class_names": list("abc"), "familiarity": section}
    check_model_fits(metadata, [model_input], [model_output], "b", features)
    for change, details, message in (
        ({}, None, "familiarity describes the model's inner features, but b/model.tflite outputs probabilities only"),
        ({"class_means": [[0.0] * 4] * 2}, features, "familiarity.class_means is"),
        ({"class_means": [[0.0] * 5] * 3}, features, "expected 3 lists of 4 numbers (one per class)"),
        ({"whitening": [[1.0] * 4] * 3}, features, "familiarity.whitening is"),
        ({}, {**features, "shape": np.array([1, 4, 1])}, "features output of shape [1, 4, 1]"),
    ):
        with pytest.raises(BundleError, match=re.escape(message)):
            check_model_fits(
                {**metadata, "familiarity": {**section, **change}}, [model_input], [model_output], "b", details
            )


def test_the_schema_bounds_the_size_and_values_of_the_class_centres(tmp_path):
    bundle = copy_bundle("mnist", tmp_path)
    metadata = json.loads((bundle / "metadata.json").read_text())
    for value, message in (("centres", "familiarity.class_means is"), ([[float("nan")]], r"class_means\[0\]\[0\]")):
        edited = {**metadata, "familiarity": {**metadata["familiarity"], "class_means": value}}
        (bundle / "metadata.json").write_text(json.dumps(edited))
        with pytest.raises(BundleError, match=message):
            Predictor.load(bundle)
