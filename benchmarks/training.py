"""Training throughput on cached features: samples/s per epoch and peak RSS, for the project's CNN.

For each data set (a generated audio set and a generated image set, or DATA_DIR) the features are
extracted once into a temporary cache and read back from it, then the same model is trained for a few
epochs three ways in the same run:

- project:            the training PyDataset with its augmentation (SpecAugment / image shifts), as `train` does;
- project_no_augment: the same PyDataset with augmentation off (cost of the batch pipeline alone);
- reference_tf_data:  tf.data from the in-memory arrays (shuffle, batch, prefetch), no augmentation.

Validation is left out so the numbers are training steps only. The first epoch includes graph tracing;
`steady_samples_per_s` is the median of the later epochs. Samples per process-CPU-second are reported
too: on a shared machine they move less with other people's load than wall-clock rates do.

Usage:
    python benchmarks/training.py              # generated audio and image sets
    python benchmarks/training.py DATA_DIR     # a class-folder data set (at most --samples files)
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from app.class_folders import find_dataset
from app.config import AudioConfig, ImageConfig, TrainConfig, to_dict
from app.features import extract_features

VARIANTS = ("project", "project_no_augment", "reference_tf_data")


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MB."""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def current_rss_mb() -> float:
    """Resident memory now, in MB."""
    import psutil

    return round(psutil.Process().memory_info().rss / 2**20, 1)


def generate_audio_set(root: Path, count: int, classes: int = 8, seed: int = 0) -> Path:
    """root/<class>/<n>_nohash_0.wav: `count` 1 s PCM16 clips of class-specific tones in noise."""
    import scipy.io.wavfile

    rng = np.random.default_rng(seed)
    time_axis = np.arange(16000) / 16000
    for index in range(count):
        label = index % classes
        frequency = 200.0 * (label + 1) * rng.uniform(0.97, 1.03)
        start = rng.uniform(0.0, 0.4)
        envelope = (time_axis > start) & (time_axis < start + rng.uniform(0.3, 0.6))
        waveform = rng.uniform(0.1, 0.6) * envelope * np.sin(2 * np.pi * frequency * time_axis)
        waveform += rng.uniform(0.001, 0.05) * rng.standard_normal(time_axis.size)
        path = root / f"tone{label}" / f"{index:06d}_nohash_0.wav"
        path.parent.mkdir(parents=True, exist_ok=True)
        scipy.io.wavfile.write(path, 16000, (np.clip(waveform, -1, 1) * 32767).astype(np.int16))
    return root


def generate_image_set(root: Path, count: int, classes: int = 8, seed: int = 0) -> Path:
    """root/<class>/<n>.png: `count` 32×32 RGB images, one coloured rectangle position/colour per class."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    for index in range(count):
        label = index % classes
        pixels = rng.integers(0, 60, size=(32, 32, 3), dtype=np.uint8)
        top, left = 4 + 3 * (label % 4) + rng.integers(-2, 3), 4 + 6 * (label // 4) + rng.integers(-2, 3)
        pixels[top : top + 10, left : left + 12] = (80 + 20 * label, 200 - 15 * label, 120)
        path = root / f"shape{label}" / f"{index:06d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels).save(path)
    return root


def cached_features(
    data_dir: Path, cache_dir: Path, max_samples: int, seed: int
) -> tuple[np.ndarray, np.ndarray, AudioConfig | ImageConfig, dict[str, Any]]:
    """Features of (a random subset of) a data set, extracted once and then read back from the cache."""
    from app.training.preprocessing import infer_image_config

    dataset = find_dataset(data_dir)
    preprocessing = AudioConfig() if dataset.kind == "audio" else infer_image_config(dataset)
    chosen = np.sort(np.random.default_rng(seed).permutation(len(dataset.files))[:max_samples])
    files = [dataset.files[i] for i in chosen]
    started = time.perf_counter()
    extract_features(files, preprocessing, cache_dir=cache_dir, progress=False)
    extract_seconds = time.perf_counter() - started
    started = time.perf_counter()
    extraction = extract_features(files, preprocessing, cache_dir=cache_dir, progress=False)
    cache_seconds = time.perf_counter() - started
    labels = np.asarray(dataset.labels)[chosen][extraction.kept]
    info = {
        "kind": dataset.kind,
        "classes": len(dataset.class_names),
        "samples": len(labels),
        "feature_shape": list(extraction.arrays.shape[1:]),
        "feature_dtype": str(extraction.arrays.dtype),
        "extract_s": round(extract_seconds, 2),
        "cache_read_s": round(cache_seconds, 2),
        "preprocessing": to_dict(preprocessing),
    }
    return extraction.arrays, labels, preprocessing, info


class EpochTimer:
    """A Keras callback factory recording wall and process CPU seconds per epoch."""

    @staticmethod
    def create():
        import keras

        class Timer(keras.callbacks.Callback):
            def __init__(self):
                super().__init__()
                self.seconds: list[float] = []
                self.cpu_seconds: list[float] = []
                self._started = (0.0, 0.0)

            def on_epoch_begin(self, epoch, logs=None):
                self._started = (time.perf_counter(), time.process_time())

            def on_epoch_end(self, epoch, logs=None):
                self.seconds.append(time.perf_counter() - self._started[0])
                self.cpu_seconds.append(time.process_time() - self._started[1])

        return Timer()


def train_variant(
    variant: str,
    features: np.ndarray,
    labels: np.ndarray,
    n_classes: int,
    preprocessing: AudioConfig | ImageConfig,
    train_config: TrainConfig,
) -> dict[str, Any]:
    """Fit a fresh model for train_config.epochs epochs through one input pipeline; samples/s per epoch."""
    import dataclasses

    import keras
    import tensorflow as tf

    from app.model import as_model_input, build_model
    from app.training.batches import Batches
    from app.training.fit import compile_model

    keras.utils.set_random_seed(train_config.seed)
    model_input = as_model_input(features[:1])
    axes = tuple(range(model_input.ndim - 1))
    sample = as_model_input(features).astype(np.float32)
    mean, variance = sample.mean(axis=axes), sample.var(axis=axes) + 1e-6
    steps = int(np.ceil(len(features) / train_config.batch_size)) * train_config.epochs
    model = compile_model(build_model(model_input.shape[1:], n_classes, mean, variance), train_config, steps)
    if variant == "reference_tf_data":
        targets = np.eye(n_classes, dtype=np.float32)[labels]
        data = (
            tf.data.Dataset.from_tensor_slices((sample, targets))
            .shuffle(len(sample), seed=train_config.seed)
            .batch(train_config.batch_size)
            .prefetch(tf.data.AUTOTUNE)
        )
    else:
        recipe = dataclasses.replace(train_config, augment=variant == "project")
        data = Batches(features, labels, n_classes, recipe, preprocessing)
        started = time.thread_time()
        for index in range(len(data)):
            data[index]
        batch_seconds = time.thread_time() - started
    timer = EpochTimer.create()
    started = time.perf_counter()
    model.fit(data, epochs=train_config.epochs, verbose=0, callbacks=[timer], shuffle=variant != "reference_tf_data")
    per_epoch = [round(len(features) / s, 1) for s in timer.seconds]
    per_cpu_second = [round(len(features) / s, 1) for s in timer.cpu_seconds]
    return {
        "samples_per_s_per_epoch": per_epoch,
        "steady_samples_per_s": round(statistics.median(per_epoch[1:] or per_epoch), 1),
        "samples_per_cpu_s_per_epoch": per_cpu_second,
        "steady_samples_per_cpu_s": round(statistics.median(per_cpu_second[1:] or per_cpu_second), 1),
        # one pass over the PyDataset's batches in NumPy alone (no model): the input pipeline's own cost
        "batch_pipeline_cpu_s_per_epoch": None if variant == "reference_tf_data" else round(batch_seconds, 3),
        "epoch_s": [round(s, 2) for s in timer.seconds],
        "total_s": round(time.perf_counter() - started, 2),
        "peak_rss_mb": peak_rss_mb(),
        "rss_mb": current_rss_mb(),
    }


def benchmark_set(
    name: str, data_dir: Path, cache_dir: Path, max_samples: int, train_config: TrainConfig
) -> dict[str, Any]:
    """Features from the cache, then every variant on them."""
    features, labels, preprocessing, info = cached_features(data_dir, cache_dir, max_samples, train_config.seed)
    n_classes = int(labels.max()) + 1
    result: dict[str, Any] = {"data": info, "rss_after_features_mb": current_rss_mb()}
    for variant in VARIANTS:
        result[variant] = train_variant(variant, features, labels, n_classes, preprocessing, train_config)
    project = result["project"]["steady_samples_per_s"]
    reference = result["reference_tf_data"]["steady_samples_per_s"]
    result["project_vs_reference"] = round(project / reference, 3) if reference else None
    project_cpu = result["project"]["steady_samples_per_cpu_s"]
    reference_cpu = result["reference_tf_data"]["steady_samples_per_cpu_s"]
    result["project_vs_reference_per_cpu_s"] = round(project_cpu / reference_cpu, 3) if reference_cpu else None
    print(f"{name}: project {project} samples/s, tf.data reference {reference} samples/s", file=sys.stderr)
    return result


def run(data_dir: Path | None, samples: int, epochs: int, batch_size: int, seed: int) -> dict[str, Any]:
    """The JSON-ready result for the generated sets or DATA_DIR."""
    import tensorflow as tf

    train_config = TrainConfig(epochs=epochs, batch_size=batch_size, seed=seed)
    started = time.perf_counter()
    result: dict[str, Any] = {
        "epochs": epochs,
        "batch_size": batch_size,
        "train_config": to_dict(train_config),
        "cpu_count": os.cpu_count(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "tensorflow": tf.__version__,
        "tf_threads": {
            "intra_op": tf.config.threading.get_intra_op_parallelism_threads(),
            "inter_op": tf.config.threading.get_inter_op_parallelism_threads(),
        },
        "blas_env": {k: v for k, v in os.environ.items() if k.startswith(("OPENBLAS", "OMP_", "MKL_"))},
        "sets": {},
    }
    with tempfile.TemporaryDirectory(prefix="onepipe-train-bench-") as scratch:
        scratch = Path(scratch)
        if data_dir is None:
            sets = {
                "audio": generate_audio_set(scratch / "audio", samples, seed=seed),
                "image": generate_image_set(scratch / "image", samples, seed=seed),
            }
        else:
            sets = {data_dir.name: data_dir}
        for name, folder in sets.items():
            result["sets"][name] = benchmark_set(name, folder, scratch / "cache", samples, train_config)
    result["peak_rss_mb"] = peak_rss_mb()
    result["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    result["total_s"] = round(time.perf_counter() - started, 1)
    return result


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data_dir", nargs="?", type=Path, help="class-folder data set (default: generate two)")
    parser.add_argument("--samples", type=int, default=2000, help="examples per set (generated, or a subset)")
    parser.add_argument("--epochs", type=int, default=4, help="epochs per variant (the first includes tracing)")
    parser.add_argument("--batch-size", type=int, default=TrainConfig.batch_size)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.data_dir is not None and not args.data_dir.is_dir():
        parser.error(f"DATA_DIR {args.data_dir} is not a folder")
    if args.samples < 2 or args.epochs < 1:
        parser.error("--samples must be at least 2 and --epochs at least 1")
    print(json.dumps(run(args.data_dir, args.samples, args.epochs, args.batch_size, args.seed)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
