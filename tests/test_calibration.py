"""Calibration maths (app.calibration) and the trust step of training (app.training.trust) on generated numbers."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from app.calibration import (
    apply_temperature,
    expected_calibration_error,
    fit_temperature,
    negative_log_likelihood,
    reliability_bins,
)
from app.training.trust import MIN_FILES, fit_trust, trust_on_held_out


def overconfident(rng: np.random.Generator, count: int, classes: int, accuracy: float, confidence: float):
    """(count, classes) probabilities that give `confidence` to a top class that is right `accuracy` of the time,
    and their (count,) labels."""
    labels = rng.integers(0, classes, count)
    wrong = (labels + rng.integers(1, classes, count)) % classes
    predicted = np.where(rng.random(count) < accuracy, labels, wrong)
    probabilities = np.full((count, classes), (1 - confidence) / (classes - 1))
    probabilities[np.arange(count), predicted] = confidence
    return probabilities, labels


def perfectly_calibrated(rng: np.random.Generator, count: int, classes: int = 4):
    """Rows drawn from a Dirichlet, each label drawn from its own row: every score is the true probability."""
    probabilities = rng.dirichlet(np.full(classes, 0.5), size=count)
    labels = np.array([rng.choice(classes, p=row) for row in probabilities])
    return probabilities, labels


def test_an_overconfident_classifier_gets_a_temperature_above_one_and_a_lower_ece():
    probabilities, labels = overconfident(np.random.default_rng(1), 3000, 5, accuracy=0.75, confidence=0.98)
    temperature = fit_temperature(probabilities, labels)
    calibrated = apply_temperature(probabilities, temperature)
    assert temperature > 1.5
    assert expected_calibration_error(probabilities, labels) == pytest.approx(0.23, abs=0.02)
    assert expected_calibration_error(calibrated, labels) < 0.02
    assert negative_log_likelihood(calibrated, labels) < negative_log_likelihood(probabilities, labels)
    np.testing.assert_allclose(calibrated.max(axis=1), 0.75, atol=0.02)  # confidence now matches the accuracy


def test_an_underconfident_classifier_gets_a_temperature_below_one():
    probabilities, labels = overconfident(np.random.default_rng(2), 3000, 3, accuracy=0.95, confidence=0.6)
    assert fit_temperature(probabilities, labels) < 1


def test_a_set_without_a_single_mistake_keeps_the_scores_as_they_are():
    labels = np.arange(40) % 4
    probabilities = np.where(np.eye(4)[labels] == 1, 0.7, 0.1)  # right every time, and only 70 % sure
    assert fit_temperature(probabilities, labels) == 1.0  # not the bound, which would make every answer certain


def test_a_perfectly_calibrated_set_has_an_ece_near_zero_and_keeps_a_temperature_near_one():
    probabilities, labels = perfectly_calibrated(np.random.default_rng(3), 20000)
    assert expected_calibration_error(probabilities, labels) < 0.015
    assert fit_temperature(probabilities, labels) == pytest.approx(1.0, abs=0.05)


def test_temperature_one_is_the_identity_and_rows_still_sum_to_one():
    probabilities, _ = perfectly_calibrated(np.random.default_rng(4), 50)
    assert apply_temperature(probabilities, 1.0) is probabilities
    for temperature in (0.3, 2.5):
        scaled = apply_temperature(probabilities, temperature)
        np.testing.assert_allclose(scaled.sum(axis=1), 1.0, atol=1e-12)
        np.testing.assert_array_equal(scaled.argmax(axis=1), probabilities.argmax(axis=1))


def test_one_row_and_float32_work_and_zeros_stay_finite():
    row = np.array([0.7, 0.3, 0.0], dtype=np.float32)
    scaled = apply_temperature(row, 2.0)
    assert scaled.shape == (3,) and scaled.dtype == np.float32 and np.all(np.isfinite(scaled))
    np.testing.assert_allclose(scaled[:2], np.array([0.7, 0.3]) ** 0.5 / (0.7**0.5 + 0.3**0.5), rtol=1e-5)


@pytest.mark.parametrize("temperature", [0.0, -1.0, float("nan"), float("inf")])
def test_a_temperature_must_be_positive_and_finite(temperature):
    with pytest.raises(ValueError, match="positive temperature"):
        apply_temperature(np.array([0.5, 0.5]), temperature)


def test_fitting_needs_matching_labels():
    with pytest.raises(ValueError, match="n ≥ 1"):
        fit_temperature(np.zeros((0, 3)), np.zeros(0))
    with pytest.raises(ValueError, match=r"\(n,\) labels"):
        fit_temperature(np.full((4, 2), 0.5), np.zeros(3))


def test_reliability_bins_count_every_file_once_and_agree_with_the_ece():
    probabilities, labels = overconfident(np.random.default_rng(5), 500, 4, accuracy=0.6, confidence=0.9)
    probabilities[:100] = [0.25, 0.25, 0.25, 0.25]  # the lowest confidence of 4 classes, in the first bins
    bins = reliability_bins(probabilities, labels)
    assert len(bins["edges"]) == 16 and len(bins["count"]) == 15 and sum(bins["count"]) == 500
    assert bins["count"][3] == 100 and bins["confidence"][3] == 0.25  # (0.2, 0.2667]
    assert bins["count"][13] == 400 and bins["confidence"][13] == 0.9  # (0.8667, 0.9333]
    assert bins["accuracy"][0] is None and bins["confidence"][0] is None  # empty bins say so
    ece = sum(
        count * abs(accuracy - confidence)
        for count, accuracy, confidence in zip(bins["count"], bins["accuracy"], bins["confidence"], strict=True)
        if count
    ) / sum(bins["count"])
    assert expected_calibration_error(probabilities, labels) == pytest.approx(ece, abs=1e-4)


def test_fit_trust_writes_both_sections_and_flags_about_five_percent_of_its_files():
    probabilities, labels = overconfident(np.random.default_rng(6), 400, 3, accuracy=0.8, confidence=0.97)
    probabilities += np.random.default_rng(7).uniform(0, 0.05, probabilities.shape)  # spread the scores
    probabilities /= probabilities.sum(axis=1, keepdims=True)
    sections = fit_trust(probabilities, labels, "test")
    calibration, familiarity = sections["calibration"], sections["familiarity"]
    assert calibration["method"] == "temperature" and calibration["fitted_on"] == "test" and calibration["files"] == 400
    assert calibration["temperature"] > 1 and calibration["ece_after"] < calibration["ece_before"]
    assert sum(calibration["reliability"]["after"]["count"]) == 400
    assert familiarity["statistic"] == "max_score" and familiarity["files"] == 400
    assert familiarity["share_below_on_fitted"] == pytest.approx(0.05, abs=0.01)
    scaled = apply_temperature(probabilities, calibration["temperature"])
    assert np.mean(scaled.max(axis=1) < familiarity["threshold"]) == familiarity["share_below_on_fitted"]


def test_training_fits_nothing_without_enough_held_out_files_and_says_why(caplog):
    probabilities, labels = overconfident(np.random.default_rng(8), MIN_FILES, 2, accuracy=0.9, confidence=0.9)
    with caplog.at_level(logging.INFO, logger="app.training.trust"):
        assert trust_on_held_out({}, None) == {}
        assert trust_on_held_out({"test": (probabilities[:-1], labels[:-1])}, "test") == {}
    assert [record.levelno for record in caplog.records] == [logging.INFO, logging.INFO]
    assert "none is held out" in caplog.records[0].getMessage()
    assert f"the test split has {MIN_FILES - 1} file(s), fewer than the {MIN_FILES}" in caplog.records[1].getMessage()
    fitted = trust_on_held_out({"validation": (probabilities, labels)}, "validation")
    assert fitted["calibration"]["fitted_on"] == "validation" and fitted["familiarity"]["files"] == MIN_FILES
