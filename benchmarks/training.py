"""Training throughput on cached features: samples/s per epoch and peak RSS, for the project's CNN.

For each data set (a generated audio set and a generated image set, or DATA_DIR) the features are
extracted once into a temporary cache and read back from it, then the same model is trained for a few
epochs three ways in the same run:

- project:            the training PyDataset with its augmentation (SpecAugment / image shifts), through Keras' fit;
- project_loop:       the same batches through the training loop `train` runs (app.training.loop: tf.data,
                      tf.distribute's custom step), which replaced fit;
- project_no_augment: the same PyDataset with augmentation off (cost of the batch pipeline alone);
- reference_tf_data:  tf.data from the in-memory arrays (shuffle, batch, prefetch), no augmentation.

Then, in the same run, the input pipeline at scale:

- project_streamed:   `project` again, its examples read a batch at a time from an on-disk store (float16
                      spectrograms or uint8 images, app.training.store) instead of an array in memory;
                      `streamed_vs_in_memory` is its seconds per epoch over `project`'s (target ≤ 1.3);
- store_precision:    (audio) the held-out accuracy of a model trained on float32 arrays and on the float16
                      store, for two seeds: the float16 effect beside the seed-to-seed spread;
- variant_making:     (audio) `--variant-clips` clips × `--variant-copies` waveform variants made by the serial
                      loop of the previous version and by app.training.variants (one process per core, and one
                      process): clips/s and `parallel_vs_serial` (target ≥ 1.7 on 2 cores).

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

VARIANTS = ("project", "project_loop", "project_no_augment", "reference_tf_data")


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
                self.accuracies: list[float] = []
                self._started = (0.0, 0.0)

            def on_epoch_begin(self, epoch, logs=None):
                self._started = (time.perf_counter(), time.process_time())

            def on_epoch_end(self, epoch, logs=None):
                self.seconds.append(time.perf_counter() - self._started[0])
                self.cpu_seconds.append(time.process_time() - self._started[1])
                self.accuracies.append(float((logs or {}).get("accuracy", float("nan"))))

        return Timer()


def train_variant(
    variant: str,
    features: np.ndarray,
    labels: np.ndarray,
    n_classes: int,
    preprocessing: AudioConfig | ImageConfig,
    train_config: TrainConfig,
    source: Any = None,
) -> dict[str, Any]:
    """Fit a fresh model for train_config.epochs epochs through one input pipeline; samples/s per epoch. The
    batches read their examples from `source` when given (a store of the same features), else from `features`."""
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
        recipe = dataclasses.replace(train_config, augment=variant in ("project", "project_loop"))
        data = Batches(features if source is None else source, labels, n_classes, recipe, preprocessing)
        started = time.thread_time()
        for index in range(len(data)):
            data[index]
        batch_seconds = time.thread_time() - started
    timer = EpochTimer.create()
    started = time.perf_counter()
    if variant == "project_loop":
        run_loop(model, data, train_config, timer)
    else:
        shuffle = variant != "reference_tf_data"
        model.fit(data, epochs=train_config.epochs, verbose=0, callbacks=[timer], shuffle=shuffle)
    per_epoch = [round(len(features) / s, 1) for s in timer.seconds]
    per_cpu_second = [round(len(features) / s, 1) for s in timer.cpu_seconds]
    return {
        "final_training_accuracy": round(float(timer.accuracies[-1]), 4),
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


def run_loop(model, batches, train_config: TrainConfig, timer) -> None:
    """Train the model (compiled for fit: its optimizer is reused) on the batches with app.training.loop."""
    from app.training.distribute import Distribution
    from app.training.fit import make_loss
    from app.training.loop import TrainingLoop

    model.optimizer.build(model.trainable_variables)
    loss = make_loss(train_config, reduction=None)
    loop = TrainingLoop(model, model.optimizer, loss, Distribution(), batches, len(batches), None, train_config)
    loop.run(progress=False, callbacks=[timer])


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
    loop = result["project_loop"]["steady_samples_per_s"]
    result["loop_vs_fit"] = round(loop / project, 3) if project else None
    result.update(streamed_comparison(features, labels, n_classes, preprocessing, train_config, result["project"]))
    if info["kind"] == "audio":
        result["store_precision"] = store_precision(features, labels, n_classes, preprocessing, train_config)
        result["variant_making"] = variant_making(data_dir, cache_dir.parent, VARIANT_OPTIONS, train_config.seed)
    print(f"{name}: project {project} samples/s, tf.data reference {reference} samples/s", file=sys.stderr)
    return result


def stored_copy(features: np.ndarray, folder: Path | None = None):
    """The features in an on-disk store as `train` keeps them: float16 spectrograms or uint8 images."""
    from app.training.store import create_store

    dtype = np.float16 if features.dtype == np.float32 else features.dtype
    writer = create_store(None, len(features), features.shape[1:], dtype, scratch_dir=folder)
    for start in range(0, len(features), 4096):
        writer.write(start, features[start : start + 4096])
    return writer.examples()


def streamed_comparison(
    features: np.ndarray,
    labels: np.ndarray,
    n_classes: int,
    preprocessing: AudioConfig | ImageConfig,
    train_config: TrainConfig,
    in_memory: dict[str, Any],
) -> dict[str, Any]:
    """`project` on the same examples read from a store, and its seconds per epoch over `in_memory`'s."""
    streamed = train_variant("project", features, labels, n_classes, preprocessing, train_config, stored_copy(features))
    ratio = in_memory["steady_samples_per_s"] / streamed["steady_samples_per_s"]
    cpu_ratio = in_memory["steady_samples_per_cpu_s"] / streamed["steady_samples_per_cpu_s"]
    return {
        "project_streamed": streamed,
        "streamed_vs_in_memory": round(ratio, 3),
        "streamed_vs_in_memory_per_cpu_s": round(cpu_ratio, 3),
    }


def store_precision(
    features: np.ndarray,
    labels: np.ndarray,
    n_classes: int,
    preprocessing: AudioConfig,
    train_config: TrainConfig,
    seeds: Sequence[int] = (0, 1),
) -> dict[str, Any]:
    """Held-out accuracy (every fifth example held out) of the model trained from float32 arrays and from the
    float16 store of the same examples, per seed; the float16 effect against the spread between seeds."""
    import dataclasses

    import keras

    from app.model import as_model_input, build_model
    from app.training.batches import Batches
    from app.training.fit import compile_model

    held_out = np.arange(len(labels)) % 5 == 0
    train_features, train_labels = features[~held_out], labels[~held_out]
    test_inputs = as_model_input(features[held_out]).astype(np.float32)
    accuracies: dict[str, list[float]] = {"float32": [], "float16": []}
    for seed in seeds:
        recipe = dataclasses.replace(train_config, seed=seed)
        for name, source in (("float32", train_features), ("float16", stored_copy(train_features))):
            keras.utils.set_random_seed(seed)
            sample = as_model_input(train_features).astype(np.float32)
            axes = tuple(range(sample.ndim - 1))
            steps = int(np.ceil(len(train_labels) / recipe.batch_size)) * recipe.epochs
            model = build_model(sample.shape[1:], n_classes, sample.mean(axis=axes), sample.var(axis=axes) + 1e-6)
            compile_model(model, recipe, steps)
            batches = Batches(source, train_labels, n_classes, recipe, preprocessing)
            model.fit(batches, epochs=recipe.epochs, verbose=0)
            predicted = np.argmax(model.predict(test_inputs, verbose=0), axis=1)
            accuracies[name].append(round(float(np.mean(predicted == labels[held_out])), 4))
    effect = [abs(a - b) for a, b in zip(accuracies["float16"], accuracies["float32"], strict=True)]
    return {
        "held_out_examples": int(held_out.sum()),
        "seeds": list(seeds),
        "held_out_accuracy": accuracies,
        "float16_minus_float32": [
            round(b - a, 4) for a, b in zip(accuracies["float32"], accuracies["float16"], strict=True)
        ],
        "largest_float16_effect": round(max(effect), 4),
        "seed_spread_float32": round(max(accuracies["float32"]) - min(accuracies["float32"]), 4),
    }


VARIANT_OPTIONS = {"clips": 160, "copies": 10}  # --variant-clips, --variant-copies


def variant_making(data_dir: Path, scratch: Path, options: dict[str, int], seed: int) -> dict[str, Any]:
    """clips/s of making `copies` waveform variants of `clips` clips: the previous version's serial loop, then
    app.training.variants with one process per core and with one process, on the same clips in the same run."""
    from app.training.variants import _core_count, variant_examples

    dataset = find_dataset(data_dir)
    indices = sorted(np.random.default_rng(seed).permutation(len(dataset.files))[: options["clips"]].tolist())
    recipe = TrainConfig(augment_copies=options["copies"], seed=seed)
    config = AudioConfig()
    timings: dict[str, dict[str, float]] = {}

    def timed(name: str, make) -> None:
        before = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        made = make()
        seconds = time.perf_counter() - started
        after = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = sum(a.ru_utime + a.ru_stime - b.ru_utime - b.ru_stime for a, b in zip(after, before, strict=True))
        timings[name] = {
            "examples": int(len(made)),
            "seconds": round(seconds, 2),
            "clips_per_s": round(len(indices) / seconds, 2),
            "cpu_s": round(cpu, 2),
        }

    timed("serial_as_before", lambda: serial_variants_as_before(dataset, indices, config, recipe))
    workers = _core_count()
    timed(
        "parallel", lambda: variant_examples(dataset, indices, config, recipe, scratch / "v1", False, None, workers)[0]
    )
    timed("one_process", lambda: variant_examples(dataset, indices, config, recipe, scratch / "v2", False, None, 1)[0])
    serial, parallel = timings["serial_as_before"]["seconds"], timings["parallel"]["seconds"]
    return {
        "clips": len(indices),
        "copies": options["copies"],
        "workers": workers,
        **timings,
        "parallel_vs_serial": round(serial / parallel, 3),
        "parallel_vs_one_process": round(timings["one_process"]["seconds"] / parallel, 3),
    }


def serial_variants_as_before(
    dataset, indices: list[int], config: AudioConfig, train_config: TrainConfig
) -> np.ndarray:
    """The variants as the previous version made them: every window decoded into memory, then one generator and
    one process for every copy of every clip, then the spectrograms (n, time, n_mels) float32."""
    from app.audio import log_mel_spectrogram
    from app.features import load_examples
    from app.training.augment import waveform_variant
    from app.training.variants import noise_bank

    rng = np.random.default_rng(train_config.seed + 1)
    windows = load_examples([dataset.files[i] for i in indices], config, spectrograms=False, progress=False)
    bank = noise_bank(dataset, config)
    variants = []
    for _ in range(train_config.augment_copies):
        batch = np.stack([waveform_variant(rng, window, config, bank) for window in windows.arrays])
        variants.append(log_mel_spectrogram(batch, config))
    return np.concatenate(variants)


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
    parser.add_argument("--variant-clips", type=int, default=VARIANT_OPTIONS["clips"], help="audio: clips varied")
    parser.add_argument("--variant-copies", type=int, default=VARIANT_OPTIONS["copies"], help="audio: variants each")
    args = parser.parse_args(argv)
    VARIANT_OPTIONS.update(clips=args.variant_clips, copies=args.variant_copies)
    if args.data_dir is not None and not args.data_dir.is_dir():
        parser.error(f"DATA_DIR {args.data_dir} is not a folder")
    if args.samples < 2 or args.epochs < 1:
        parser.error("--samples must be at least 2 and --epochs at least 1")
    print(json.dumps(run(args.data_dir, args.samples, args.epochs, args.batch_size, args.seed)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
