"""Familiarity (app.familiarity): scores from served probabilities, a threshold fitted on held-out scores, the flag;
and benchmarks/familiarity.py on tiny generated data (it runs and prints the promised JSON)."""

from __future__ import annotations

import importlib.util
import json
import shutil
import sys
from types import ModuleType

import numpy as np
import pytest
from PIL import Image

from app.familiarity import (
    SHRINKAGE,
    STATISTIC,
    STATISTICS,
    familiarity_scores,
    feature_scores,
    fit_class_gaussians,
    fit_threshold,
    is_familiar,
)
from app.paths import PROJECT_ROOT


def dirichlet_probabilities(rng: np.random.Generator, count: int, classes: int, concentration: float) -> np.ndarray:
    """(count, classes) probability rows: peaked for a small concentration, flat for a large one."""
    return rng.dirichlet(np.full(classes, concentration), size=count)


def test_the_statistic_has_a_name_for_the_metadata():
    assert isinstance(STATISTIC, str) and STATISTIC


@pytest.mark.parametrize("statistic", sorted(STATISTICS))
def test_a_confident_row_scores_higher_than_a_flat_one(statistic):
    scores = familiarity_scores(np.array([[0.97, 0.01, 0.01, 0.01], [0.25, 0.25, 0.25, 0.25]]), statistic)
    assert scores.shape == (2,)
    assert scores[0] > scores[1]


def test_the_statistics_against_their_definitions():
    rows = np.array([[0.7, 0.2, 0.1], [0.4, 0.4, 0.2]])
    np.testing.assert_allclose(familiarity_scores(rows, "max_score"), [0.7, 0.4])
    np.testing.assert_allclose(familiarity_scores(rows, "margin"), [0.5, 0.0], atol=1e-12)
    entropy = [
        -(0.7 * np.log(0.7) + 0.2 * np.log(0.2) + 0.1 * np.log(0.1)),
        -(2 * 0.4 * np.log(0.4) + 0.2 * np.log(0.2)),
    ]
    np.testing.assert_allclose(familiarity_scores(rows, "negative_entropy"), np.negative(entropy))
    assert familiarity_scores(np.array([[1.0]]), "margin").tolist() == [1.0]  # one class: always sure


def test_an_unknown_statistic_is_refused():
    with pytest.raises(ValueError, match="statistic"):
        familiarity_scores(np.array([[0.5, 0.5]]), "energy")


def test_one_row_is_taken_as_one_input():
    assert familiarity_scores(np.array([0.1, 0.7, 0.2])).shape == (1,)


@pytest.mark.parametrize("shape", [(2, 0), (2, 3, 4)])
def test_scores_reject_arrays_that_are_not_probability_rows(shape):
    with pytest.raises(ValueError, match="n_inputs, n_classes"):
        familiarity_scores(np.zeros(shape))


def test_about_the_asked_share_of_in_distribution_scores_fall_below_the_threshold():
    rng = np.random.default_rng(0)
    held_out = familiarity_scores(dirichlet_probabilities(rng, 4000, 10, 0.1))
    threshold = fit_threshold(held_out, share_below=0.05)
    unseen = familiarity_scores(dirichlet_probabilities(rng, 4000, 10, 0.1))  # the same distribution, new draws
    flagged = np.mean([not is_familiar(score, threshold) for score in unseen])
    assert 0.035 <= flagged <= 0.065


def test_flat_predictions_fall_below_a_threshold_fitted_on_peaked_ones():
    rng = np.random.default_rng(1)
    threshold = fit_threshold(familiarity_scores(dirichlet_probabilities(rng, 2000, 10, 0.05)))
    flat = familiarity_scores(dirichlet_probabilities(rng, 500, 10, 20.0))
    assert np.mean(flat < threshold) > 0.95


def test_share_below_zero_flags_nothing_of_the_fitting_set():
    scores = np.array([0.3, 0.6, 0.9])
    threshold = fit_threshold(scores, share_below=0.0)
    assert threshold == pytest.approx(0.3)
    assert all(is_familiar(score, threshold) for score in scores)


@pytest.mark.parametrize(
    ("scores", "share_below", "message"),
    [([], 0.05, "at least one"), ([0.5, np.nan], 0.05, "finite"), ([0.5], 1.0, "share_below"), ([0.5], -0.1, "share")],
)
def test_fit_threshold_rejects_bad_input(scores, share_below, message):
    with pytest.raises(ValueError, match=message):
        fit_threshold(np.array(scores, dtype=float), share_below=share_below)


def test_is_familiar_is_a_plain_bool_at_and_above_the_threshold():
    assert is_familiar(np.float32(0.5), 0.5) is True
    assert is_familiar(0.49, 0.5) is False


def load_benchmark() -> ModuleType:
    """Import benchmarks/familiarity.py (a script folder, not a package)."""
    spec = importlib.util.spec_from_file_location(
        "benchmark_familiarity", PROJECT_ROOT / "benchmarks" / "familiarity.py"
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def run_benchmark(module, argv: list[str], capsys) -> dict:
    assert module.main(argv) == 0
    return json.loads(capsys.readouterr().out)


@pytest.mark.slow
def test_familiarity_benchmark_fits_or_reads_thresholds(tmp_path, trained_models, tone_dataset, shape_dataset, capsys):
    familiarity = load_benchmark()
    models, runs, data = tmp_path / "models", tmp_path / "runs", tmp_path / "data"
    shutil.copytree(trained_models / "shapes", models / "mnist")  # any image bundle under a shipped name
    shutil.copytree(trained_models / "tones", models / "speech-commands")
    shutil.copytree(trained_models / "tones", runs / "speech-commands")  # its measured run
    data.mkdir()
    (data / "mnist").symlink_to(shape_dataset)
    (data / "speech_commands").symlink_to(tone_dataset)
    (data / "fsdd").symlink_to(tone_dataset)
    rng = np.random.default_rng(0)
    for index in range(12):  # colour noise: unlike the shapes
        path = data / "cifar10" / "noise" / f"{index}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(path)
    argv = ["--data", str(data), "--models-dir", str(models), "--runs-dir", str(runs), "--limit", "100"]

    fitted = run_benchmark(familiarity, argv, capsys)
    assert list(fitted) == ["mnist", "speech-commands"]  # no cifar10 or spoken-digits bundle: skipped
    shapes = fitted["mnist"]
    assert shapes["threshold_source"] == "fitted here" and shapes["measured_run"] is None
    assert shapes["out_of_distribution"]["cifar10"]["files"] == 12
    assert 0.0 <= shapes["out_of_distribution"]["cifar10"]["flagged"] <= 1.0
    assert set(shapes["met"]) == {"in_distribution", "cifar10"}
    assert set(shapes["alternatives"]["statistics"]) >= {"max_score", "max_score_calibrated"}
    tones = fitted["speech-commands"]
    assert tones["measured_run"] == "speech-commands"
    assert tones["out_of_distribution"]["fsdd_digits"]["files"] == sum(1 for _ in tone_dataset.rglob("*.wav"))
    assert "flagged_by_measured_run" in tones["out_of_distribution"]["fsdd_digits"]
    assert tones["targets"] == {"in_distribution_flagged_at_most": 0.05}  # FSDD shares are reported, no target

    metadata_path = models / "mnist" / "metadata.json"
    metadata = json.loads(metadata_path.read_text())
    metadata["calibration"] = {"temperature": 1.0}
    metadata["familiarity"] = {"statistic": familiarity.STATISTIC, "threshold": 1.01, "fitted_on": "test"}
    metadata_path.write_text(json.dumps(metadata))
    read = run_benchmark(familiarity, [*argv, "--bundles", "mnist"], capsys)["mnist"]
    assert read["threshold_source"] == "metadata" and read["threshold"] == 1.01
    assert read["in_distribution"]["flagged"] == 1.0  # no score reaches a threshold above 1


# --- the inner features ----------------------------------------------------------------------------------------


def gaussian_classes(rng: np.random.Generator, per_class: int, width: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """(3 × per_class, width) features around three centres with correlated spread, and their labels."""
    centres = np.array(
        [np.full(width, 0.0), np.full(width, 6.0), np.r_[np.full(width // 2, 6.0), np.zeros(width // 2)]]
    )
    mixing = np.eye(width) + 0.5 * rng.standard_normal((width, width))
    labels = np.repeat(np.arange(3), per_class)
    return centres[labels] + rng.standard_normal((len(labels), width)) @ mixing, labels


def test_the_whitening_makes_the_shrunk_shared_spread_round():
    features, labels = gaussian_classes(np.random.default_rng(0), 2000)
    gaussians = fit_class_gaussians(features, labels, 3)
    means, whitening = np.asarray(gaussians["class_means"]), np.asarray(gaussians["whitening"])
    assert means.shape == (3, 8) and whitening.shape == (8, 8)
    for label in range(3):
        np.testing.assert_allclose(means[label], features[labels == label].mean(axis=0), atol=1e-5)
    centred = features - means[labels]
    covariance = centred.T @ centred / len(features)
    shrunk = (1 - SHRINKAGE) * covariance + SHRINKAGE * np.trace(covariance) / 8 * np.eye(8)
    np.testing.assert_allclose(whitening @ shrunk @ whitening.T, np.eye(8), atol=1e-3)
    # the spread itself: about 1 along the wide directions (at most 1 / (1 − SHRINKAGE)), less along narrow ones
    spread = np.linalg.eigvalsh(whitening @ covariance @ whitening.T)
    assert spread.max() <= 1 / (1 - SHRINKAGE) + 1e-3 and spread.min() > 0


def test_inputs_far_from_every_class_score_below_the_threshold_of_near_ones():
    rng = np.random.default_rng(1)
    features, labels = gaussian_classes(rng, 300)
    gaussians = fit_class_gaussians(features[::2], labels[::2], 3)
    held_out = feature_scores(features[1::2], gaussians)
    threshold = fit_threshold(held_out, 0.05)
    assert np.mean(held_out < threshold) == pytest.approx(0.05, abs=0.01)
    strangers = rng.standard_normal((200, 8)) * 3 + 30.0  # another place altogether
    assert np.mean(feature_scores(strangers, gaussians) < threshold) == 1.0
    assert feature_scores(features[0], gaussians).shape == (1,)  # one row is one input
    assert np.all(held_out <= 0)


def test_the_class_centres_need_every_class_finite_features_and_one_width():
    features, labels = gaussian_classes(np.random.default_rng(2), 20)
    with pytest.raises(ValueError, match=r"classes \[3\] have none"):
        fit_class_gaussians(features, labels, 4)
    with pytest.raises(ValueError, match="expected finite features"):
        fit_class_gaussians(np.where(features > 5, np.nan, features), labels, 3)
    with pytest.raises(ValueError, match=r"expected \(n, d\) features and n labels"):
        fit_class_gaussians(features, labels[:-1], 3)
    gaussians = fit_class_gaussians(features, labels, 3)
    with pytest.raises(ValueError, match="expected features of width 8"):
        feature_scores(np.zeros((2, 5)), gaussians)


def test_cifar10_plan_measures_a_bundle_trained_on_both_folders_on_its_held_out_split(
    tmp_path, trained_models, shape_dataset
):
    familiarity = load_benchmark()
    models, data = tmp_path / "models", tmp_path / "data"
    shutil.copytree(trained_models / "shapes", models / "cifar10")
    data.mkdir()
    (data / "cifar10_train").symlink_to(shape_dataset)
    (data / "cifar10").symlink_to(shape_dataset / "circle", target_is_directory=True)  # any other folder
    metadata_path = models / "cifar10" / "metadata.json"
    metadata = json.loads(metadata_path.read_text())
    metadata["data"]["root"] = str(data / "cifar10_train")

    metadata_path.write_text(json.dumps(metadata))
    plan = familiarity.plan_cifar10(models, data, tmp_path / "runs", 100, 0)
    assert "of cifar10/" in plan.fit_description  # it never saw the other folder: measured there

    metadata["data"]["extra_training_data"] = {str(data / "cifar10"): {"circle": 1}}
    metadata_path.write_text(json.dumps(metadata))
    plan = familiarity.plan_cifar10(models, data, tmp_path / "runs", 100, 0)
    held_out = familiarity.held_out_parts(models / "cifar10", data / "cifar10_train")
    unseen = {path for _, path in held_out["validation"] + held_out["test"]}
    assert "held-out split of cifar10_train/" in plan.fit_description
    assert plan.fit[0] and plan.measure[0]
    assert set(plan.fit[0]) | set(plan.measure[0]) == unseen
    assert not set(plan.fit[0]) & set(plan.measure[0])
