"""benchmarks/article_reference.py: the article's image reading, the comparison's arithmetic, and one tiny run."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
from PIL import Image

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "article_reference.py"


@pytest.fixture(scope="module")
def article() -> ModuleType:
    """The script imported as a module (benchmarks/ is a script folder, not a package)."""
    spec = importlib.util.spec_from_file_location("benchmark_article_reference", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_images_are_read_as_the_article_read_them(article, tmp_path):
    grey = np.zeros((28, 28), np.uint8)
    grey[5:9, 10:12] = 255
    Image.fromarray(grey).save(tmp_path / "grey.png")
    Image.new("RGB", (14, 14), (255, 0, 51)).save(tmp_path / "small.png")  # enlarged to 28 × 28

    images = article.read_article_images([tmp_path / "grey.png", tmp_path / "small.png"])

    assert images.shape == (2, 28, 28, 3) and images.dtype == np.float32
    assert images.min() >= 0.0 and images.max() <= 1.0
    np.testing.assert_array_equal(images[0, ..., 0], grey / 255.0)  # grey becomes three equal channels
    np.testing.assert_array_equal(images[0, ..., 0], images[0, ..., 2])
    np.testing.assert_allclose(images[1, 27, 27], [1.0, 0.0, 0.2])


def test_labels_follow_the_bundle_class_order(article):
    files = [("2", Path("a.png")), ("0", Path("b.png")), ("2", Path("c.png"))]
    np.testing.assert_array_equal(article.label_indices(files, ["0", "1", "2"]), [2, 0, 2])


def test_wilson_interval_holds_the_share_and_narrows_with_more_files(article):
    low, high = article.wilson_interval(856, 862)
    assert low < 856 / 862 < high <= 1.0
    wide_low, wide_high = article.wilson_interval(86, 87)
    assert high - low < wide_high - wide_low
    assert article.wilson_interval(10, 10)[1] == 1.0
    assert article.wilson_interval(0, 0) == [0.0, 1.0]


def test_summary_compares_on_the_same_files(article):
    labels = np.arange(10) % 3
    shipped = labels.copy()
    shipped[0] = 1  # 9 of 10 right
    reference_runs = [labels.copy(), labels.copy()]
    reference_runs[0][[1, 2]] = 0  # 8 of 10, wrong on files the shipped model got right
    reference_runs[1][[0, 3, 4]] = 2  # 7 of 10, also wrong where the shipped model was

    summary = article.summarise(labels, shipped, reference_runs, target=0.85)

    assert summary["shipped_accuracy"] == 0.9
    assert summary["reference_accuracies"] == [0.8, 0.7]
    assert (summary["reference_mean"], summary["reference_min"], summary["reference_max"]) == (0.75, 0.7, 0.8)
    assert summary["margin"] == 0.15 and summary["margin_over_best_run"] == 0.1
    assert summary["paired"][0] == {"shipped_only_right": 2, "reference_only_right": 1, "both_wrong": 0}
    assert summary["paired"][1] == {"shipped_only_right": 2, "reference_only_right": 0, "both_wrong": 1}
    assert summary["target_met"] is True
    assert article.summarise(labels, shipped, reference_runs, target=0.95)["target_met"] is False
    assert article.summarise(labels, shipped, [labels], target=0.85)["target_met"] is False  # the reference won


def test_a_missing_folder_is_refused(article, tmp_path):
    with pytest.raises(SystemExit) as stop:
        article.main([str(tmp_path / "missing")])
    assert stop.value.code == 2


def test_one_tiny_run_scores_both_models_on_the_bundle_test_split(article, trained_models, shape_dataset, capsys):
    bundle = trained_models / "shapes"
    assert article.main([str(shape_dataset), "--bundle", str(bundle), "--epochs", "1", "--seeds", "1"]) == 0
    result = json.loads(capsys.readouterr().out)

    split = json.loads((bundle / "metadata.json").read_text())["data"]["split"]
    assert result["files"] == {"train": split["train"], "test": split["test"]}
    assert result["same_data_as_training"] is True
    assert result["shipped"]["count"] == result["reference"]["count"] == split["test"]
    assert 0.0 <= result["shipped"]["accuracy"] <= 1.0
    assert [run["seed"] for run in result["reference"]["runs"]] == [0]
    assert result["reference"]["mean"] == result["reference"]["runs"][0]["accuracy"]
    assert result["margin"] == pytest.approx(result["shipped"]["accuracy"] - result["reference"]["mean"], abs=1e-5)
    assert result["reference"]["recipe"]["epochs"] == 1 and result["hardware"]["cpu_count"] >= 1
