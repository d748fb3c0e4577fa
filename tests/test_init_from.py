"""`train --init-from BUNDLE`: a run that starts from another bundle's trained layers, records where they came from,
keeps them fixed for its first epochs, and refuses a bundle of another kind, preprocessing or input shape, a
tampered or unloadable model.keras, and a folder that is no bundle. The donor is the tiny `tones` bundle the test
session trains (conftest.trained_models)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from fixtures_data import make_tone_dataset

from app.bundle import read_metadata
from app.class_folders import Dataset
from app.cli import main
from app.config import AudioConfig, TrainConfig
from app.errors import InputError
from app.hashing import file_digest
from app.training.checkpoints import run_key
from app.training.distribute import Distribution
from app.training.init_from import TRANSFERRED_LAYERS, check_source, preprocessing_differences

RECIPE = TrainConfig(epochs=2, batch_size=16, augment_copies=0, validation_percent=0, test_percent=0)


def layer_weights(bundle: Path) -> dict[str, list[np.ndarray]]:
    """{"Conv2D[0]": weights, …, "Dense[last]": the softmax's} of a bundle's model.keras."""
    import keras

    model = keras.saving.load_model(bundle / "model.keras", compile=False, safe_mode=True)
    found: dict[str, list[np.ndarray]] = {}
    for kind in ("Conv2D", "Dense"):
        layers = [layer for layer in model.layers if type(layer).__name__ == kind]
        for index, layer in enumerate(layers):
            name = f"{kind}[last]" if kind == "Dense" and index == len(layers) - 1 else f"{kind}[{index}]"
            found[name] = layer.get_weights()
    return found


def same(first: list[np.ndarray], second: list[np.ndarray]) -> bool:
    return all(np.array_equal(a, b) for a, b in zip(first, second, strict=True))


@pytest.fixture(scope="module")
def two_words(tmp_path_factory) -> Path:
    """Tones of two classes only ("low", "high"): another set of classes than the donor's three."""
    root = make_tone_dataset(tmp_path_factory.mktemp("two-words"), per_class=8)
    shutil.rmtree(root / "mid")
    return root


@pytest.fixture
def donor(tmp_path, trained_models) -> Path:
    """A copy of the `tones` bundle, free to damage."""
    return Path(shutil.copytree(trained_models / "tones", tmp_path / "donor"))


def test_a_run_starts_from_the_bundle_and_records_it(tmp_path, two_words, donor):
    from app.training.train import train

    frozen = train(
        two_words, tmp_path / "frozen", train_config=TrainConfig(**{**RECIPE.__dict__, "frozen_epochs": 2}),
        progress=False, init_from=donor,
    )  # fmt: skip
    metadata = read_metadata(frozen.bundle)
    source = metadata["training"]["init_from"]
    assert source["bundle"] == "tones" and source["model_sha256"] == file_digest(donor / "model.keras")
    assert source["layers"] == [f"{kind}[{index}]" for kind, index in TRANSFERRED_LAYERS]
    assert metadata["class_names"] == ["high", "low"] and metadata["input_shape"] == [97, 40, 1]
    given, taken = layer_weights(donor), layer_weights(frozen.bundle)
    for name in source["layers"]:  # fixed for both epochs: exactly the donor's
        assert same(given[name], taken[name]), name
    assert taken["Dense[last]"][0].shape == (64, 2)  # a new softmax for these two classes

    trained = train(
        two_words, tmp_path / "trained", train_config=TrainConfig(**{**RECIPE.__dict__, "frozen_epochs": 1}),
        progress=False, init_from=donor,
    )  # fmt: skip
    after = layer_weights(trained.bundle)
    assert not same(given["Conv2D[0]"], after["Conv2D[0]"])  # trained from the second epoch on
    from app.predict import Predictor

    assert Predictor.load(trained.bundle)(two_words / "low" / sorted((two_words / "low").iterdir())[0].name) is not None

    scratch = train(two_words, tmp_path / "scratch", train_config=RECIPE, progress=False)
    assert read_metadata(scratch.bundle)["training"]["init_from"] is None


def test_a_bundle_of_other_preprocessing_is_refused_before_training(tmp_path, two_words, donor, capsys):
    argv = ["train", str(two_words), "--out", str(tmp_path / "model"), "--init-from", str(donor), "--test-percent", "0"]
    argv += ["--validation-percent", "0"]
    assert main([*argv, "--n-mels", "32"]) == 2
    message = capsys.readouterr().err
    assert "--init-from" in message and "n_mels: bundle 40, this run 32" in message
    assert main([*argv, "--sample-rate", "8000"]) == 2
    message = capsys.readouterr().err
    assert "sample_rate: bundle 16000, this run 8000" in message and "input shape" not in message
    assert not (tmp_path / "model").exists()


def test_a_bundle_of_the_other_kind_is_refused(tmp_path, trained_models, capsys):
    from fixtures_data import make_shape_dataset

    shapes = make_shape_dataset(tmp_path / "shapes", per_class=4)
    code = main(["train", str(shapes), "--out", str(tmp_path / "model"), "--init-from", str(trained_models / "tones")])
    message = capsys.readouterr().err
    assert code == 2 and "a model of audio data and this run trains on image" in message


def test_a_tampered_or_foreign_model_is_refused(tmp_path, two_words, donor):
    from app.training.train import train

    with open(donor / "model.keras", "ab") as model:
        model.write(b"\0")
    with pytest.raises(InputError, match="does not match the sha256"):
        train(two_words, tmp_path / "model", train_config=RECIPE, progress=False, init_from=donor)

    # a model.keras whose recorded sha256 matches but which holds code (a Lambda layer): Keras' safe mode refuses it
    import keras

    unsafe = keras.Sequential([keras.Input((97, 40, 1)), keras.layers.Lambda(lambda x: x * 2)])
    unsafe.save(donor / "model.keras")
    metadata = json.loads((donor / "metadata.json").read_text())
    metadata["files"]["model.keras"] = file_digest(donor / "model.keras")
    (donor / "metadata.json").write_text(json.dumps(metadata))
    with pytest.raises(InputError, match="not a model Keras can load"):
        train(two_words, tmp_path / "model", train_config=RECIPE, progress=False, init_from=donor)
    assert not (tmp_path / "model").exists()


def test_a_folder_that_is_no_bundle_is_refused(tmp_path):
    with pytest.raises(InputError, match=r"--init-from .*not a model bundle"):
        check_source(tmp_path, "audio", AudioConfig())
    (tmp_path / "metadata.json").write_text("{not json")
    with pytest.raises(InputError, match=r"--init-from .*not valid JSON"):
        check_source(tmp_path, "audio", AudioConfig())


def test_preprocessing_differences_name_each_field_and_ignore_input_limits():
    run = AudioConfig(subtract_band_mean=True)
    assert preprocessing_differences(AudioConfig(subtract_band_mean=True, max_decoded_seconds=10), run) == []
    assert preprocessing_differences(AudioConfig(hop_length=128), run) == [
        "hop_length: bundle 128, this run 160",
        "subtract_band_mean: bundle False, this run True",
    ]


def test_the_run_key_of_resume_includes_the_source(tmp_path):
    dataset = Dataset(tmp_path, "audio", ("a", "b"), (tmp_path / "a" / "1.wav",), (0,))
    key = lambda source: run_key(  # noqa: E731
        dataset, {"train": [0]}, AudioConfig(), TrainConfig(), None, (), {}, Distribution(), source
    )
    first = {"bundle": "speech-commands", "model_sha256": "a" * 64, "layers": ["Conv2D[0]"]}
    assert len({key(None), key(first), key({**first, "model_sha256": "b" * 64})}) == 3
    assert key(first) == key(dict(first))
