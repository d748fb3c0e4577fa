"""Bundles on disk: a failed write changes nothing, and a damaged bundle is refused with a message that says
what is wrong, by `Predictor.load` and by `python -m app predict` alike."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from PIL import Image, ImageDraw

from app import cli
from app.bundle import write_bundle
from app.errors import BundleError
from app.hashing import file_digest
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

    # The new bundle is complete but cannot be moved into place: the old one is put back.
    real_rename = Path.rename

    def failing_rename(self: Path, target):
        if self.name.startswith(".b.") and not self.name.startswith(".b.old-"):
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
    "metadata newer": (edit_metadata(lambda m: m.update(format_version=99)), "this OnePipe reads up to 1"),
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
