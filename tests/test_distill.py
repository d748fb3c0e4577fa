"""`train --network teacher` and `train --distill-from BUNDLE`: a teacher bundle is a bundle like any other (it
loads, predicts, and its network is the larger one); a run taught by it mixes the teacher's softened answers into
its targets, records the teacher, and is still the article's CNN; a teacher of another kind, other classes or
other preprocessing is refused with a message that says why, before anything slow."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from app.bundle import read_metadata
from app.cli import main
from app.config import AudioConfig, ImageConfig, TrainConfig
from app.errors import InputError
from app.hashing import file_digest
from app.training.distill import check_teacher, soften

RECIPE = TrainConfig(epochs=3, batch_size=16, validation_percent=0, test_percent=20, learning_rate=3e-3)


@pytest.fixture(scope="module")
def teacher(tmp_path_factory, shape_dataset) -> Path:
    """A teacher bundle trained on the shapes at 20 × 20."""
    from app.training.train import train

    out = tmp_path_factory.mktemp("teacher") / "teacher"
    recipe = dataclasses.replace(RECIPE, network="teacher")
    train(
        shape_dataset,
        out,
        train_config=recipe,
        preprocessing=ImageConfig((20, 20), 1, background="dark"),
        progress=False,
    )
    return out


def layer_types(bundle: Path) -> list[str]:
    import keras

    model = keras.saving.load_model(bundle / "model.keras", compile=False, safe_mode=True)
    return [type(layer).__name__ for layer in model.layers]


def test_the_teacher_is_the_larger_network_and_a_whole_bundle(teacher, shape_dataset):
    from app.predict import Predictor

    metadata = read_metadata(teacher)
    assert metadata["training"]["config"]["network"] == "teacher"
    assert metadata["training"]["distilled_from"] is None
    types = layer_types(teacher)
    assert types.count("Conv2D") == 6 and types.count("BatchNormalization") == 6
    assert types.count("GlobalAveragePooling2D") == 1
    answer = Predictor.load(teacher)(next((shape_dataset / "circle").iterdir()))
    assert answer[0]["label"] in {"circle", "cross", "square"} and 0.0 <= answer[0]["score"] <= 1.0


def test_a_taught_run_records_its_teacher_and_is_the_article_cnn(tmp_path, teacher, shape_dataset, caplog):
    from app.training.train import train

    recipe = dataclasses.replace(RECIPE, distill_weight=0.6, distill_temperature=3.0)
    with caplog.at_level("INFO"):
        result = train(shape_dataset, tmp_path / "student", train_config=recipe, progress=False, distill_from=teacher)
    metadata = read_metadata(result.bundle)
    taught = metadata["training"]["distilled_from"]
    assert taught["bundle"] == "teacher" and taught["model_sha256"] == file_digest(teacher / "model.keras")
    assert taught["weight"] == 0.6 and taught["temperature"] == 3.0
    assert taught["accuracy"] == read_metadata(teacher)["metrics"]["test"]["accuracy"]
    assert metadata["input_shape"] == [28, 28, 1]  # its own size; the teacher's answers came from 20 × 20
    assert layer_types(result.bundle).count("Conv2D") == 2 and "BatchNormalization" not in layer_types(result.bundle)
    assert "its top answer is the label of" in caplog.text


def test_the_mixed_targets_are_labels_and_teacher_in_the_recipes_shares():
    from app.training.batches import Batches

    images = np.zeros((6, 12, 12, 1), np.uint8)
    labels = np.array([0, 1, 2, 0, 1, 2])
    answers = np.full((6, 3), 1 / 3, np.float32)
    recipe = TrainConfig(batch_size=6, augment=False, label_smoothing=0.0, distill_weight=0.25)
    _, targets = Batches(images, labels, 3, recipe, ImageConfig((12, 12), 1), answers)[0]
    order = Batches(images, labels, 3, recipe, ImageConfig((12, 12), 1)).order
    expected = 0.75 * np.eye(3)[labels[order]] + 0.25 / 3
    np.testing.assert_allclose(targets, expected, atol=1e-6)
    np.testing.assert_allclose(targets.sum(axis=1), 1.0, atol=1e-6)


def test_softening_flattens_and_keeps_the_order():
    probabilities = np.array([[0.7, 0.2, 0.1], [0.05, 0.9, 0.05]])
    softened = soften(probabilities, 2.0)
    np.testing.assert_allclose(softened.sum(axis=1), 1.0)
    assert (softened.argmax(axis=1) == probabilities.argmax(axis=1)).all()
    assert softened.max(axis=1).tolist() < probabilities.max(axis=1).tolist()
    np.testing.assert_allclose(soften(probabilities, 1.0), probabilities, atol=1e-9)


def test_a_teacher_of_another_kind_classes_or_preprocessing_is_refused(tmp_path, teacher):
    classes = ["circle", "cross", "square"]
    with pytest.raises(InputError, match="model of image data and this run trains on audio"):
        check_teacher(teacher, "audio", AudioConfig(), classes)
    with pytest.raises(InputError, match=r"its classes are circle, cross, square; this run's are cat, dog"):
        check_teacher(teacher, "image", ImageConfig((28, 28), 1, background="dark"), ["cat", "dog"])
    with pytest.raises(InputError, match=r"its preprocessing differs from this run's: channels: bundle 1, this run 3"):
        check_teacher(teacher, "image", ImageConfig((28, 28), 3, background="dark"), classes)
    assert check_teacher(teacher, "image", ImageConfig((32, 32), 1, background="dark"), classes).input_shape == (
        20,
        20,
        1,
    )

    tampered = Path(shutil.copytree(teacher, tmp_path / "tampered"))
    with open(tampered / "model.keras", "ab") as file:
        file.write(b"x")
    with pytest.raises(InputError, match=r"--distill-from .*tampered: .*model\.keras"):
        check_teacher(tampered, "image", None, classes)
    with pytest.raises(InputError, match="is not a model bundle"):
        check_teacher(tmp_path, "image", None, classes)


def test_the_cli_refuses_a_wrong_teacher_before_training(tmp_path, teacher, tone_dataset, capsys):
    code = main(["train", str(tone_dataset), "--out", str(tmp_path / "out"), "--distill-from", str(teacher)])
    assert code != 0
    error = capsys.readouterr().err
    assert "--distill-from" in error and "model of image data and this run trains on audio" in error
    assert not (tmp_path / "out").exists()


def test_the_cli_passes_the_network_and_the_distillation_recipe():
    from app.cli import build_parser, train_config_from_args

    args = build_parser().parse_args(
        ["train", "data", "--out", "b", "--network", "teacher", "--distill-weight", "0.5", "--distill-temperature", "4"]
    )
    recipe = train_config_from_args(args)
    assert (recipe.network, recipe.distill_weight, recipe.distill_temperature) == ("teacher", 0.5, 4.0)
    assert json.loads(json.dumps(dataclasses.asdict(recipe)))["network"] == "teacher"
