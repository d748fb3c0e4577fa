"""Calibrated bundles with a familiarity threshold: what training stores, what the Predictor, `predict`, `evaluate`
and the result panel make of it, `calibrate` in its modes and refusals, and bundles made before all this."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from fixtures_data import make_shape_dataset
from PIL import Image, ImageDraw

from app import cli
from app.bundle import read_metadata
from app.calibration import expected_calibration_error
from app.datasets.digits import write_digits
from app.errors import BundleError, DatasetError
from app.evaluate import evaluate_bundle
from app.hashing import file_digest
from app.paths import PROJECT_ROOT
from app.predict import Predictor
from app.ui.result_panel import UNFAMILIAR_NOTICE, ResultPanel

TRUST_KEYS = ("calibration", "familiarity")


def edit(bundle: Path, change) -> Path:
    metadata = json.loads((bundle / "metadata.json").read_text())
    change(metadata)
    (bundle / "metadata.json").write_text(json.dumps(metadata))
    return bundle


def old_bundle(folder: Path, name: str = "mnist") -> Path:
    """A copy of a shipped bundle as made before calibration: no calibration, no familiarity threshold."""
    bundle = Path(
        shutil.copytree(PROJECT_ROOT / "models" / name, folder / name, ignore=shutil.ignore_patterns("samples"))
    )
    return edit(bundle, lambda metadata: [metadata.pop(key, None) for key in TRUST_KEYS])


def with_trust(bundle: Path, temperature: float = 2.0, threshold: float = 0.5) -> Path:
    def change(metadata: dict) -> None:
        metadata["calibration"] = {
            "method": "temperature",
            "temperature": temperature,
            "fitted_on": "test",
            "files": 40,
        }
        metadata["familiarity"] = {"statistic": "max_score", "threshold": threshold, "fitted_on": "test", "files": 40}

    return edit(bundle, change)


def one(path: Path) -> Path:
    picture = Image.new("L", (28, 28))
    ImageDraw.Draw(picture).line([(14, 4), (14, 24)], fill=255, width=3)
    picture.save(path)
    return path


@pytest.fixture(scope="module")
def digits(tmp_path_factory) -> Path:
    """60 MNIST-like digits (scikit-learn's), 6 per class: labelled files the shipped mnist bundle never saw."""
    root = tmp_path_factory.mktemp("digits") / "digits"
    write_digits(root, limit_per_class=6)
    return root


def test_an_old_bundle_loads_and_predicts_exactly_as_before(tmp_path, capsys):
    predictor = Predictor.load(old_bundle(tmp_path))
    features = predictor.preprocess(one(tmp_path / "one.png"))
    raw = predictor.predict_features(features, calibrated=False)
    assert predictor.temperature == 1.0 and predictor.familiarity_threshold is None
    assert predictor.predict_features(features) is not None
    np.testing.assert_array_equal(predictor.predict_features(features), raw)
    assessed = predictor.assess(tmp_path / "one.png", top_k=3)
    assert assessed.familiar is None and assessed.predictions == predictor(tmp_path / "one.png", top_k=3)
    assert cli.main(["predict", str(tmp_path / "mnist"), str(tmp_path / "one.png")]) == 0
    assert set(json.loads(capsys.readouterr().out)) == {"file", "predictions"}  # no "familiar" key


def test_a_calibrated_bundle_scales_its_scores_and_keeps_its_answer(tmp_path):
    old = Predictor.load(old_bundle(tmp_path / "old"))
    calibrated = Predictor.load(with_trust(old_bundle(tmp_path / "new"), temperature=2.0))
    features = old.preprocess(one(tmp_path / "one.png"))
    raw = old.predict_features(features)
    scaled = calibrated.predict_features(features)
    np.testing.assert_allclose(calibrated.predict_features(features, calibrated=False), raw, atol=1e-6)
    np.testing.assert_allclose(scaled, np.sqrt(raw) / np.sqrt(raw).sum(), rtol=1e-4)  # softmax(log p / 2)
    assert scaled.argmax() == raw.argmax() and scaled.max() < raw.max()
    assert calibrated(tmp_path / "one.png", top_k=1)[0]["label"] == old(tmp_path / "one.png", top_k=1)[0]["label"]


def test_predict_says_whether_each_file_is_familiar(tmp_path, capsys):
    one(tmp_path / "one.png")
    bundle = with_trust(old_bundle(tmp_path), temperature=1.0, threshold=0.0)
    assert cli.main(["predict", str(bundle), str(tmp_path / "one.png")]) == 0
    assert json.loads(capsys.readouterr().out)["familiar"] is True
    with_trust(bundle, temperature=1.0, threshold=1.01)  # no score reaches it
    assert cli.main(["predict", str(bundle), str(tmp_path / "one.png")]) == 0
    line = json.loads(capsys.readouterr().out)
    assert line["familiar"] is False and line["predictions"]  # still answered
    assessed = Predictor.load(bundle).assess(tmp_path / "one.png")
    assert assessed.familiar is False and assessed.familiarity_score == pytest.approx(line["predictions"][0]["score"])


def test_a_threshold_of_another_statistic_flags_nothing(tmp_path):
    bundle = with_trust(old_bundle(tmp_path), threshold=1.01)
    edit(bundle, lambda metadata: metadata["familiarity"].update(statistic="a-statistic-of-the-future"))
    predictor = Predictor.load(bundle)
    assert predictor.familiarity_threshold is None and predictor.assess(one(tmp_path / "one.png")).familiar is None


def test_the_schema_checks_what_serving_reads_of_the_new_sections(tmp_path):
    bundle = with_trust(old_bundle(tmp_path))
    edit(bundle, lambda metadata: metadata["calibration"].update(temperature=0))
    with pytest.raises(BundleError, match=r"calibration\.temperature is 0; expected a number above 0"):
        Predictor.load(bundle)
    edit(bundle, lambda metadata: metadata["calibration"].update(temperature=1.5))
    edit(bundle, lambda metadata: metadata["familiarity"].update(statistic=""))
    with pytest.raises(BundleError, match=r'familiarity\.statistic is ""; expected a name'):
        Predictor.load(bundle)


def test_evaluate_reports_the_ece_before_and_after_and_the_unfamiliar_share(tmp_path, digits, capsys):
    bundle = old_bundle(tmp_path)
    assert cli.main(["evaluate", str(bundle), str(digits), "-q"]) == 0
    out = capsys.readouterr().out
    assert "uncalibrated: the bundle has no calibration, its scores are the raw softmax (ECE " in out
    assert "familiarity" not in out
    with_trust(bundle, temperature=2.0, threshold=0.9)
    assert cli.main(["evaluate", str(bundle), str(digits), "--json"]) == 0
    metrics = json.loads(capsys.readouterr().out)
    predictor = Predictor.load(bundle)
    features = np.stack([predictor.preprocess(path) for path in sorted(digits.glob("*/*.png"))])
    labels = np.array([int(path.parent.name) for path in sorted(digits.glob("*/*.png"))])
    raw, scaled = predictor.predict_features(features, calibrated=False), predictor.predict_features(features)
    calibration = metrics["calibration"]
    assert calibration["temperature"] == 2.0 and metrics["count"] == 60
    assert calibration["ece_before"] == pytest.approx(expected_calibration_error(raw, labels), abs=1e-4)
    assert calibration["ece_after"] == pytest.approx(expected_calibration_error(scaled, labels), abs=1e-4)
    assert metrics["familiarity"]["share_below"] == pytest.approx(np.mean(scaled.max(axis=1) < 0.9), abs=1e-5)
    assert cli.main(["evaluate", str(bundle), str(digits), "-q"]) == 0
    out = capsys.readouterr().out
    assert f"calibration error (ECE, 15 bins): {calibration['ece_before']:.2%} raw, " in out
    assert "of the files score below the familiarity threshold (max_score 0.9)" in out


def test_calibrate_on_other_files_writes_both_and_leaves_the_model_alone(tmp_path, digits, capsys):
    bundle = old_bundle(tmp_path)
    before = read_metadata(bundle)
    model_bytes = (bundle / "model.tflite").read_bytes()
    assert cli.main(["calibrate", str(bundle), str(digits), "-q"]) == 0
    summary = json.loads(capsys.readouterr().out)
    metadata = read_metadata(bundle)
    assert summary["fitted_on"] == "files of digits" and summary["files"] == 60
    assert metadata["calibration"]["temperature"] == summary["temperature"] > 0
    assert metadata["familiarity"]["threshold"] == summary["familiarity_threshold"]
    assert (bundle / "model.tflite").read_bytes() == model_bytes
    assert metadata["files"]["model.tflite"] == before["files"]["model.tflite"]
    assert all(file_digest(bundle / name) == digest for name, digest in metadata["files"].items())
    assert metadata["files"]["report.png"] != before["files"]["report.png"]  # redrawn with the reliability diagram
    assert {key: metadata[key] for key in before} == before | {"files": metadata["files"]}  # nothing else changed
    assert not [path.name for path in tmp_path.iterdir() if path.name.startswith(".")]  # no staging left behind
    assert Predictor.load(bundle).temperature == summary["temperature"]


def test_calibrate_on_the_training_folder_uses_its_held_out_split(tmp_path, digits, capsys):
    bundle = old_bundle(tmp_path)

    def trained_on_digits(test_percent: float):
        def change(metadata: dict) -> None:
            metadata["data"]["root"] = str(digits)
            metadata["training"]["config"].update(validation_percent=0.0, test_percent=test_percent, split_salt="")
            metadata["training"]["group_pattern"] = None

        return change

    edit(bundle, trained_on_digits(80.0))
    assert cli.main(["calibrate", str(bundle), str(digits), "-q"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["fitted_on"] == "test split of digits" and 30 <= summary["files"] < 60
    edit(bundle, trained_on_digits(0.0))
    assert cli.main(["calibrate", str(bundle), str(digits), "-q"]) == 2
    assert "the bundle trained on every file of" in capsys.readouterr().err
    with pytest.raises(DatasetError, match=r"3 holds or lies in that folder: calibrated on files it learned"):
        from app.calibrate_bundle import calibrate_on_data

        calibrate_on_data(bundle, digits / "3", progress=False)


def test_calibrate_refuses_too_few_files_and_unclear_requests(tmp_path, capsys):
    few = tmp_path / "few"
    write_digits(few, limit_per_class=2)
    bundle = old_bundle(tmp_path / "bundle")
    assert cli.main(["calibrate", str(bundle), str(few), "-q"]) == 2
    assert "20 readable file(s) in the files of few; calibration is fitted on at least 30" in capsys.readouterr().err
    for arguments in ([str(bundle)], [str(bundle), str(few), "--from", str(bundle)]):
        assert cli.main(["calibrate", *arguments]) == 2
        assert "expected DATA_DIR (labelled files the bundle did not train on) or --from" in capsys.readouterr().err
    assert "calibration" not in read_metadata(bundle)


def test_calibrate_from_a_bundle_of_the_same_recipe_copies_and_says_where_from(tmp_path, capsys):
    measured = with_trust(old_bundle(tmp_path / "measured"), temperature=0.5, threshold=0.75)
    final = old_bundle(tmp_path / "final")
    assert cli.main(["calibrate", str(final), "--from", str(measured)]) == 0
    summary = json.loads(capsys.readouterr().out)
    metadata = read_metadata(final)
    assert summary["temperature"] == metadata["calibration"]["temperature"] == 0.5
    assert metadata["calibration"]["fitted_on"] == metadata["familiarity"]["fitted_on"] == "test split of mnist"
    assert metadata["familiarity"]["copied_from"] == "mnist" and metadata["familiarity"]["threshold"] == 0.75
    assert Predictor.load(final).familiarity_threshold == 0.75


def test_calibrate_from_refuses_another_recipe_or_nothing_to_copy(tmp_path, capsys):
    final = old_bundle(tmp_path / "final")
    uncalibrated = old_bundle(tmp_path / "plain")
    assert cli.main(["calibrate", str(final), "--from", str(uncalibrated)]) == 2
    assert "has no calibration or familiarity to copy" in capsys.readouterr().err
    for change, expected in (
        (lambda metadata: metadata.update(class_names=[*"abcdefghij"]), "class_names: "),
        (lambda metadata: metadata["preprocessing"].update(center_content=False), "preprocessing.center_content"),
        (lambda metadata: metadata.update(serving={"average_mirrored": True}), "serving: "),
    ):
        other = with_trust(old_bundle(tmp_path / f"other-{len(expected)}"))
        edit(other, change)
        assert cli.main(["calibrate", str(final), "--from", str(other)]) == 2
        err = capsys.readouterr().err
        assert "is not of the same recipe as" in err and expected in err, err
    assert cli.main(["calibrate", str(final), "--from", str(tmp_path / "final" / "mnist")]) == 2
    assert "is the bundle itself" in capsys.readouterr().err
    assert "calibration" not in read_metadata(final)


def measured_run(folder: Path, data: Path, salt: str, held_out_percent: float = 25.0) -> Path:
    """A copy of the shipped mnist bundle posing as a run that trained on `data` with files held out by `salt`."""

    def change(metadata: dict) -> None:
        metadata["data"]["root"] = str(data)
        config = metadata["training"]["config"]
        config.update(validation_percent=held_out_percent, test_percent=held_out_percent, split_salt=salt)
        metadata["training"]["group_pattern"] = None

    return edit(old_bundle(folder), change)


def test_calibrate_from_several_runs_fits_on_all_their_held_out_files(tmp_path, digits, capsys):
    from app.calibrate_bundle import recorded_splits
    from app.class_folders import find_dataset

    runs = [measured_run(tmp_path / f"run-{salt}", digits, salt) for salt in ("a", "b", "c")]
    held_out = []
    for run in runs:
        splits = recorded_splits(find_dataset(digits, "image"), read_metadata(run))
        held_out.append(len(splits["validation"]) + len(splits["test"]))
    final = old_bundle(tmp_path / "final")
    assert cli.main(["calibrate", str(final), "--from", *map(str, runs), "-q"]) == 0
    summary = json.loads(capsys.readouterr().out)
    calibration, familiarity = read_metadata(final)["calibration"], read_metadata(final)["familiarity"]
    assert summary["files"] == calibration["files"] == familiarity["files"] == sum(held_out) >= 60
    assert calibration["pooled_from"] == familiarity["pooled_from"] == dict(zip(map(str, runs), held_out, strict=True))
    assert calibration["fitted_on"] == "held-out files of 3 measured runs"
    assert 0.0 <= summary["ece_cross_fitted"] == calibration["ece_cross_fitted"] <= 1.0
    assert familiarity["statistic"] == "max_score"  # inner features are each run's own
    assert Predictor.load(final).temperature == summary["temperature"] > 0

    moved = tmp_path / "moved"
    shutil.copytree(digits, moved)
    for run in runs:
        edit(run, lambda metadata: metadata["data"].update(root=str(tmp_path / "gone")))
    assert cli.main(["calibrate", str(final), "--from", *map(str, runs[:2]), "-q"]) == 2
    assert "gone, which is not there; give its folder as DATA_DIR" in capsys.readouterr().err
    assert cli.main(["calibrate", str(final), str(moved), "--from", *map(str, runs[:2]), "-q"]) == 0
    assert json.loads(capsys.readouterr().out)["files"] == sum(held_out[:2])


def test_calibrate_from_several_runs_refuses_what_cannot_be_pooled(tmp_path, digits, capsys):
    final = old_bundle(tmp_path / "final")
    run = measured_run(tmp_path / "run", digits, "a")
    everything = measured_run(tmp_path / "everything", digits, "b", held_out_percent=0.0)
    other = edit(
        measured_run(tmp_path / "other", digits, "c"), lambda metadata: metadata.update(class_names=[*"abcdefghij"])
    )
    for runs, expected in (
        ([run, run], "expected two or more different measured runs"),
        ([run, final], "is the bundle itself"),
        ([run, other], "is not of the same recipe as"),
        ([run, everything], "trained on every file of"),
    ):
        assert cli.main(["calibrate", str(final), "--from", *map(str, runs), "-q"]) == 2
        assert expected in capsys.readouterr().err
    two = ["--from", str(run), str(tmp_path / "other" / "mnist"), "--familiarity", "first_layer_mahalanobis"]
    assert cli.main(["calibrate", str(final), *two]) == 2
    assert "measures one model's inner features, which runs do not share" in capsys.readouterr().err
    assert "calibration" not in read_metadata(final)


def test_with_enough_files_of_each_class_familiarity_is_a_distance_in_the_inner_features(tmp_path, capsys):
    many = tmp_path / "many"
    write_digits(many, limit_per_class=44)  # FEATURE_MIN_FILES_PER_CLASS and more of every digit
    bundle = old_bundle(tmp_path / "bundle")
    assert cli.main(["calibrate", str(bundle), str(many), "-q"]) == 0
    summary = json.loads(capsys.readouterr().out)
    familiarity = read_metadata(bundle)["familiarity"]
    assert summary["familiarity_statistic"] == familiarity["statistic"] == "first_layer_mahalanobis"
    assert familiarity["files"] == 440 and familiarity["cross_fitted_folds"] == 5  # scored against the other folds
    assert np.shape(familiarity["class_means"]) == (10, 64) and np.shape(familiarity["whitening"]) == (64, 64)
    assert familiarity["share_below_on_fitted"] == pytest.approx(0.05, abs=0.01)

    predictor = Predictor.load(bundle)
    probabilities, inner = predictor.served(predictor.preprocess(one(tmp_path / "one.png")))
    assert inner.shape == (64,) and probabilities.shape == (10,)
    noise = np.random.default_rng(0).integers(0, 256, (28, 28, 3), dtype=np.uint8)
    assessed = predictor.assess(noise)
    assert assessed.familiar is False and assessed.familiarity_score < predictor.familiarity_threshold
    with pytest.raises(ValueError, match="scores familiarity on the model's inner features; none were given"):
        predictor.is_familiar(probabilities)

    metrics = evaluate_bundle(bundle, many, progress=False)
    assert metrics["familiarity"]["statistic"] == "first_layer_mahalanobis"
    assert metrics["familiarity"]["share_below"] <= 0.05  # centres of all the files sit near them

    final = old_bundle(tmp_path / "final")  # another model of the same recipe: the distances are not its own
    assert cli.main(["calibrate", str(final), "--from", str(bundle)]) == 2
    assert "measures distances in its own model's inner features" in capsys.readouterr().err


def test_calibrate_fits_the_familiarity_statistic_asked_for_or_says_why_it_cannot(tmp_path, capsys):
    from app.calibrate_bundle import FAMILIARITY_CHOICES, check_feature_statistic

    with pytest.raises(SystemExit):
        cli.main(["calibrate", "b", "d", "--familiarity", "energy"])
    assert "(choose from " + ", ".join(f"'{choice}'" for choice in FAMILIARITY_CHOICES) + ")" in capsys.readouterr().err
    many, few = tmp_path / "many", tmp_path / "few"
    write_digits(many, limit_per_class=44)
    write_digits(few, limit_per_class=5)
    bundle = old_bundle(tmp_path / "bundle")
    assert cli.main(["calibrate", str(bundle), str(many), "--familiarity", "max_score", "-q"]) == 0
    assert json.loads(capsys.readouterr().out)["familiarity_statistic"] == "max_score"
    assert "class_means" not in read_metadata(bundle)["familiarity"]
    assert cli.main(["calibrate", str(bundle), str(few), "--familiarity", "first_layer_mahalanobis", "-q"]) == 2
    assert "is fitted on at least 40 files of every class; a class has 5 here" in capsys.readouterr().err
    with pytest.raises(BundleError, match="outputs probabilities only, not the inner features"):
        check_feature_statistic(bundle, None, np.arange(10), 10)


def test_the_result_panel_shows_the_notice_above_the_bars_when_unfamiliar():
    panel = ResultPanel()
    predictions = [{"label": "4", "score": 0.6}, {"label": "9", "score": 0.3}]
    panel.show_predictions(predictions, b"\x89PNG", "caption", 3.0, "cat.png", familiar=False)
    html = panel.view.value
    assert panel.familiar is False and UNFAMILIAR_NOTICE in html
    assert html.index(UNFAMILIAR_NOTICE) < html.index("onepipe-bar-row") and html.count("onepipe-bar-row") == 2
    for familiar in (True, None):
        panel.show_predictions(predictions, b"\x89PNG", "caption", 3.0, "seven.png", familiar=familiar)
        assert UNFAMILIAR_NOTICE not in panel.view.value and panel.familiar is familiar
    panel.show_predictions(predictions, b"\x89PNG", "caption", 3.0, "cat.png", familiar=False)
    panel.show_message("Something else")
    assert UNFAMILIAR_NOTICE not in panel.view.value and panel.familiar is None


def test_the_dashboard_predicts_with_the_flag(tmp_path):
    from app.ui.bundles import get_predictor
    from app.ui.common import predict_into

    bundle = with_trust(old_bundle(tmp_path), temperature=1.0, threshold=1.01)
    panel = ResultPanel()
    predictions = predict_into(panel, bundle, one(tmp_path / "one.png").read_bytes(), "one.png")
    assert predictions and panel.level == "result" and panel.familiar is False
    assert UNFAMILIAR_NOTICE in panel.view.value and "onepipe-bar-row" in panel.view.value
    assert get_predictor(bundle).familiarity_threshold == 1.01


@pytest.mark.slow
def test_a_trained_bundle_carries_calibration_and_familiarity(tmp_path, capsys):
    from app.config import TrainConfig
    from app.training.train import train

    data = make_shape_dataset(tmp_path / "shapes", per_class=30)
    recipe = TrainConfig(epochs=2, batch_size=16, validation_percent=10, test_percent=45, learning_rate=3e-3)
    result = train(data, tmp_path / "bundle", train_config=recipe, progress=False, cache_dir=tmp_path / "cache")
    metadata = read_metadata(result.bundle)
    test_files = metadata["metrics"]["test"]["count"]
    assert test_files >= 30, "the hashed split should hold out enough files to fit on"
    calibration, familiarity = metadata["calibration"], metadata["familiarity"]
    assert calibration["fitted_on"] == familiarity["fitted_on"] == "test"
    assert calibration["files"] == familiarity["files"] == test_files
    assert 0.05 <= calibration["temperature"] <= 20 and 0 <= calibration["ece_after"] <= 1
    assert familiarity["statistic"] == "max_score" and 0 <= familiarity["share_below_on_fitted"] <= 0.1
    assert cli.main(["predict", str(result.bundle), str(next((data / "circle").iterdir()))]) == 0
    assert isinstance(json.loads(capsys.readouterr().out)["familiar"], bool)
    small = dataclasses.replace(recipe, test_percent=10)  # a handful of test files: nothing fitted, still trains
    result = train(data, tmp_path / "small", train_config=small, progress=False, cache_dir=tmp_path / "cache")
    assert not set(TRUST_KEYS) & set(read_metadata(result.bundle))


@pytest.mark.slow
def test_a_bundle_trained_with_a_large_held_out_split_measures_familiarity_in_its_inner_features(tmp_path, capsys):
    from app.config import TrainConfig
    from app.training.train import train

    data = make_shape_dataset(tmp_path / "shapes", per_class=180)
    recipe = TrainConfig(epochs=3, batch_size=32, validation_percent=0, test_percent=50, learning_rate=3e-3)
    result = train(data, tmp_path / "bundle", train_config=recipe, progress=False, cache_dir=tmp_path / "cache")
    familiarity = read_metadata(result.bundle)["familiarity"]
    assert familiarity["statistic"] == "first_layer_mahalanobis" and familiarity["fitted_on"] == "test"
    assert np.shape(familiarity["class_means"]) == (3, 64) and np.shape(familiarity["whitening"]) == (64, 64)
    assert 0.02 <= familiarity["share_below_on_fitted"] <= 0.08
    # the distances the bundle serves are the ones training measured: its own files are mostly familiar
    circles = sorted((data / "circle").iterdir())[:20]
    assert cli.main(["predict", str(result.bundle), *map(str, circles)]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert sum(line["familiar"] for line in lines) >= 17
    noise = tmp_path / "noise.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (28, 28), dtype=np.uint8)).save(noise)
    assert cli.main(["predict", str(result.bundle), str(noise)]) == 0
    assert json.loads(capsys.readouterr().out)["familiar"] is False
