"""The source article's digit recipe against the shipped mnist bundle, on the same unseen files, as JSON.

The reference is the article's own recipe, trained here on the bundle's *training* split of DATA_DIR only:
the CNN (`app.model.build_model`: Conv2D 32 3×3 ReLU, max-pool, Conv2D 32 3×3 ReLU, max-pool, Dense 64
ReLU, dropout 0.5, softmax; its normalisation layer set to the identity) on the images read as 28 × 28 RGB
scaled to 0–1, RMSprop at Keras' default learning rate, categorical cross-entropy, batch 32, `--epochs`
epochs, no augmentation, no extra data, no early stopping (the last epoch's weights). It is trained once per
seed (`--seeds`).

The split is the bundle's own, recomputed from its metadata.json as `benchmarks/accuracy.py --held-out` does
(`split_settings`, `split_files`). Both models are then scored on the same `--split` files (default `test`:
the bundle chose its best epoch on the validation files): the reference with Keras, the shipped bundle as
served (`app.predict.Predictor`, LiteRT, its own preprocessing and views).

Usage:
    nice -n 10 python benchmarks/article_reference.py DATA/mnist --bundle models/mnist --epochs 15 --seeds 2

Prints {data, bundle, split, files, shipped, reference, margin, paired, target, target_met, hardware}:
accuracies in 0–1; `margin` is the shipped accuracy minus the reference's mean over seeds; `paired` counts,
per seed, the files only one of the two got right; `target_met` is true when the shipped bundle reaches
`--target` and beats every reference run.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np
from accuracy import split_files, split_settings, training_overlap
from PIL import Image

from app.bundle import read_metadata
from app.errors import OnePipeError
from app.predict import Predictor

ARTICLE_IMAGE_SIZE = (28, 28)  # (height, width) the article resized every picture to
TARGET_ACCURACY = 0.993
SPLIT_CHOICES = ("test", "validation", "held-out")


@dataclass(frozen=True)
class ArticleRecipe:
    """The article's training settings; the network is app.model's CNN."""

    epochs: int = 15  # full passes over the training split, no early stopping
    batch_size: int = 32
    optimizer: str = "RMSprop"  # Keras defaults: learning rate 0.001, rho 0.9
    loss: str = "categorical_crossentropy"
    input: str = "RGB 28x28, pixels / 255"
    augmentation: str = "none"


def read_article_images(paths: Sequence[Path], image_size: tuple[int, int] = ARTICLE_IMAGE_SIZE) -> np.ndarray:
    """Pictures as the article read them (Keras `load_img` defaults): RGB, nearest-neighbour resize when the size
    differs, scaled to 0–1.

    Returns:
        float32 array (files, height, width, 3).
    """
    height, width = image_size
    images = np.empty((len(paths), height, width, 3), np.float32)
    for index, path in enumerate(paths):
        with Image.open(path) as picture:
            rgb = picture.convert("RGB")
            if rgb.size != (width, height):
                rgb = rgb.resize((width, height), Image.Resampling.NEAREST)
            images[index] = np.asarray(rgb, np.float32) / 255.0
    return images


def label_indices(files: Sequence[tuple[str, Path]], class_names: Sequence[str]) -> np.ndarray:
    """Class index (into class_names) of each (class name, file); shape (files,) int64."""
    position = {name: index for index, name in enumerate(class_names)}
    return np.array([position[name] for name, _ in files], np.int64)


def accuracy_of(labels: np.ndarray, predicted: np.ndarray) -> float:
    """Share of predicted == labels, rounded to 5 places (0.0 for no files)."""
    return round(float(np.mean(predicted == labels)), 5) if len(labels) else 0.0


def wilson_interval(correct: int, count: int, z: float = 1.96) -> list[float]:
    """95 % Wilson score interval [low, high] of an accuracy of correct/count (0–1)."""
    if count == 0:
        return [0.0, 1.0]
    share = correct / count
    centre = (share + z * z / (2 * count)) / (1 + z * z / count)
    half = z * math.sqrt(share * (1 - share) / count + z * z / (4 * count * count)) / (1 + z * z / count)
    return [round(max(0.0, centre - half), 5), round(min(1.0, centre + half), 5)]


def paired_counts(labels: np.ndarray, shipped: np.ndarray, reference: np.ndarray) -> dict[str, int]:
    """Files only the shipped model got right, only the reference got right, and both got wrong."""
    shipped_right, reference_right = shipped == labels, reference == labels
    return {
        "shipped_only_right": int(np.sum(shipped_right & ~reference_right)),
        "reference_only_right": int(np.sum(reference_right & ~shipped_right)),
        "both_wrong": int(np.sum(~shipped_right & ~reference_right)),
    }


def summarise(
    labels: np.ndarray, shipped: np.ndarray, reference_runs: Sequence[np.ndarray], target: float
) -> dict[str, Any]:
    """shipped and reference accuracies, margin, paired counts and target_met from predictions (files,) each."""
    shipped_accuracy = accuracy_of(labels, shipped)
    run_accuracies = [accuracy_of(labels, predicted) for predicted in reference_runs]
    mean = round(float(np.mean(run_accuracies)), 5)
    return {
        "shipped_accuracy": shipped_accuracy,
        "shipped_interval_95": wilson_interval(int(np.sum(shipped == labels)), len(labels)),
        "reference_accuracies": run_accuracies,
        "reference_mean": mean,
        "reference_min": min(run_accuracies),
        "reference_max": max(run_accuracies),
        "margin": round(shipped_accuracy - mean, 5),
        "margin_over_best_run": round(shipped_accuracy - max(run_accuracies), 5),
        "paired": [paired_counts(labels, shipped, predicted) for predicted in reference_runs],
        "target": target,
        "target_met": shipped_accuracy >= target and shipped_accuracy > max(run_accuracies),
    }


def train_reference(
    train_images: np.ndarray, train_labels: np.ndarray, n_classes: int, recipe: ArticleRecipe, seed: int
):
    """The article's CNN trained on (files, 28, 28, 3) images in 0–1 and (files,) labels; returns the Keras model."""
    import keras

    from app.model import build_model

    keras.utils.set_random_seed(seed)
    channels = train_images.shape[-1]
    identity = (np.zeros(channels, np.float32), np.ones(channels, np.float32))  # the article scales by 1/255 only
    model = build_model(train_images.shape[1:], n_classes, *identity)
    model.compile(optimizer=keras.optimizers.RMSprop(), loss=recipe.loss, metrics=["accuracy"])
    one_hot = keras.utils.to_categorical(train_labels, n_classes)
    model.fit(train_images, one_hot, batch_size=recipe.batch_size, epochs=recipe.epochs, shuffle=True, verbose=0)
    return model


def shipped_predictions(bundle_dir: Path, paths: Sequence[Path]) -> np.ndarray:
    """Class index the shipped bundle gives each file as served (Predictor: preprocessing, views, LiteRT)."""
    predictor = Predictor.load(bundle_dir)
    features = np.stack([predictor.preprocess(path) for path in paths])
    return np.argmax(predictor.predict_features(features), axis=1)


def hardware() -> dict[str, Any]:
    """CPU count, processor, load average and library versions of this run."""
    import keras
    import tensorflow as tf

    return {
        "cpu_count": os.cpu_count(),
        "machine": platform.machine(),
        "processor": platform.processor() or platform.machine(),
        "load_average": [round(value, 2) for value in os.getloadavg()],
        "niceness": os.nice(0),
        "gpus": len(tf.config.list_physical_devices("GPU")),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
    }


def run(
    data_dir: Path, bundle_dir: Path, split: str, recipe: ArticleRecipe, seeds: Sequence[int], target: float
) -> dict[str, Any]:
    """Train the reference per seed on the bundle's training split and score both models on `split`."""
    metadata = read_metadata(bundle_dir)
    settings = split_settings(metadata, {})
    train_files = split_files(data_dir, metadata, "train", settings)
    test_files = split_files(data_dir, metadata, split, settings)
    if not train_files or not test_files:
        raise OnePipeError(
            f"{data_dir} split with {settings} leaves {len(train_files)} training files and "
            f"{len(test_files)} {split} files; both must be non-empty"
        )
    class_names = list(metadata["class_names"])
    test_labels = label_indices(test_files, class_names)
    train_images = read_article_images([path for _, path in train_files])
    test_images = read_article_images([path for _, path in test_files])
    load_before = [round(value, 2) for value in os.getloadavg()]
    runs, reference_predictions = [], []
    for seed in seeds:
        started = time.perf_counter()
        model = train_reference(train_images, label_indices(train_files, class_names), len(class_names), recipe, seed)
        seconds = time.perf_counter() - started
        predicted = np.argmax(model.predict(test_images, batch_size=256, verbose=0), axis=1)
        reference_predictions.append(predicted)
        runs.append({"seed": seed, "accuracy": accuracy_of(test_labels, predicted), "train_seconds": round(seconds, 1)})
    shipped = shipped_predictions(bundle_dir, [path for _, path in test_files])
    summary = summarise(test_labels, shipped, reference_predictions, target)
    return {
        "data": str(data_dir),
        "bundle": str(bundle_dir),
        "split": split,
        **training_overlap(metadata, data_dir),
        "split_settings": settings,
        "files": {"train": len(train_files), split: len(test_files)},
        "shipped": {
            "accuracy": summary["shipped_accuracy"],
            "count": len(test_files),
            "interval_95": summary["shipped_interval_95"],
        },
        "reference": {
            "recipe": asdict(recipe),
            "runs": runs,
            "mean": summary["reference_mean"],
            "min": summary["reference_min"],
            "max": summary["reference_max"],
            "count": len(test_files),
        },
        "margin": summary["margin"],
        "margin_over_best_run": summary["margin_over_best_run"],
        "paired": [{"seed": seed, **counts} for seed, counts in zip(seeds, summary["paired"], strict=True)],
        "target": target,
        "target_met": summary["target_met"],
        "hardware": {**hardware(), "load_average_before_training": load_before},
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data_dir", type=Path, help="the class folders the bundle was trained on (e.g. DATA/mnist)")
    default_bundle = Path(__file__).resolve().parents[1] / "models" / "mnist"
    parser.add_argument("--bundle", type=Path, default=default_bundle, help="shipped bundle (default: models/mnist)")
    parser.add_argument("--split", choices=SPLIT_CHOICES, default="test", help="files both models are scored on")
    parser.add_argument("--epochs", type=int, default=ArticleRecipe.epochs, help="reference epochs (default 15)")
    parser.add_argument("--seeds", type=int, default=2, help="reference runs, seeds 0..N-1 (default 2)")
    parser.add_argument("--target", type=float, default=TARGET_ACCURACY, help="accuracy the bundle must reach")
    args = parser.parse_args(argv)
    if not args.data_dir.is_dir():
        parser.error(f"DATA_DIR {args.data_dir} is not a folder")
    if args.epochs < 1 or args.seeds < 1:
        parser.error("--epochs and --seeds must be at least 1")
    recipe = ArticleRecipe(epochs=args.epochs)
    try:
        result = run(args.data_dir, args.bundle, args.split, recipe, range(args.seeds), args.target)
    except OnePipeError as error:
        parser.exit(1, f"error: {error}\n")
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
