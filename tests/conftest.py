"""Fixtures shared by the test modules, which get them by name: generated datasets, small trained bundles
(once per test session) and a models folder with dashboard samples.

Plain helpers are imported from their modules: fixtures_data (generated clips and pictures), ui_helpers
(browser media), binder_helpers, and benchmarks/browser_harness.py (Voila and Chromium, shared with the
dashboard benchmark).
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the helper modules beside this file
sys.path.insert(1, str(Path(__file__).resolve().parent.parent))  # `benchmarks.browser_harness`, from any folder
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from fixtures_data import make_shape_dataset, make_tone_dataset

SAMPLES_PER_CLASS = 3  # dashboard examples copied into each bundle of `ui_models`


def pytest_collection_modifyitems(items) -> None:
    """Tests that need the trained bundles are slow (the fixture trains two CNNs), whatever their module."""
    for item in items:
        if "trained_models" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(autouse=True, scope="session")
def _private_feature_cache(tmp_path_factory):
    """Keep the feature cache inside the test run, not in the user's home."""
    os.environ["ONEPIPE_CACHE_DIR"] = str(tmp_path_factory.mktemp("feature-cache"))


@pytest.fixture(scope="session")
def tone_dataset(tmp_path_factory) -> Path:
    """root/<low|mid|high>/<speaker>_nohash_<n>.wav: 24 clips per class (see fixtures_data.make_tone_dataset)."""
    return make_tone_dataset(tmp_path_factory.mktemp("tones"))


@pytest.fixture(scope="session")
def shape_dataset(tmp_path_factory) -> Path:
    """root/<circle|square|cross>/<name>_<n>.png: 24 28×28 grey pictures per class."""
    return make_shape_dataset(tmp_path_factory.mktemp("shapes"))


@pytest.fixture(scope="session")
def trained_models(tmp_path_factory, tone_dataset, shape_dataset) -> Path:
    """A models folder with a tiny audio bundle `tones` and image bundle `shapes` (a few epochs)."""
    from app.config import TrainConfig
    from app.training.train import train

    models = tmp_path_factory.mktemp("models")
    recipe = TrainConfig(epochs=6, batch_size=16, augment_copies=1, patience=6, learning_rate=3e-3)
    train(tone_dataset, models / "tones", train_config=recipe, progress=False)
    image_recipe = dataclasses.replace(recipe, rotation_degrees=5.0, random_erasing=0.25)
    train(shape_dataset, models / "shapes", train_config=image_recipe, progress=False)
    return models


def add_samples(bundle_dir: Path, dataset_dir: Path, per_class: int = SAMPLES_PER_CLASS) -> None:
    """Copy the first `per_class` files of each class of a dataset into <bundle>/samples/<class>/."""
    for class_dir in sorted(p for p in dataset_dir.iterdir() if p.is_dir()):
        target = bundle_dir / "samples" / class_dir.name
        target.mkdir(parents=True, exist_ok=True)
        for path in sorted(class_dir.iterdir())[:per_class]:
            shutil.copy(path, target / path.name)


@pytest.fixture(scope="session")
def ui_models(tmp_path_factory, trained_models, tone_dataset, shape_dataset) -> Path:
    """A copy of `trained_models` (tones, shapes) with samples, plus `tones-bare`: the tone model without any."""
    models = tmp_path_factory.mktemp("ui-models") / "models"
    shutil.copytree(trained_models, models)
    add_samples(models / "tones", tone_dataset)
    add_samples(models / "shapes", shape_dataset)
    shutil.copytree(trained_models / "tones", models / "tones-bare")
    shutil.rmtree(models / "tones-bare" / "samples", ignore_errors=True)
    return models
