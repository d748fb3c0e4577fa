"""Shared fixtures: generated datasets and small trained bundles (once per test session)."""

from __future__ import annotations

import dataclasses
import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from fixtures_data import make_shape_dataset, make_tone_dataset


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
    return make_tone_dataset(tmp_path_factory.mktemp("tones"))


@pytest.fixture(scope="session")
def shape_dataset(tmp_path_factory) -> Path:
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
