"""Training: a class-folder dataset in, a bundle out (model.keras, model.tflite, metadata.json, report.png).

Example:
    >>> from app.training.train import train
    >>> train("data/fsdd", "models/my-digits", group_pattern=r"^[^_]+_([^_]+)_")  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import json
import platform
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from app.audio import decode_audio, log_mel_spectrogram
from app.bundle import FORMAT_VERSION, check_bundle_target, write_bundle
from app.class_folders import Dataset, find_dataset, speaker_key, split_dataset
from app.config import AudioConfig, ImageConfig, TrainConfig, to_dict
from app.errors import DatasetError, InputError
from app.evaluate import metrics_from_predictions
from app.features import Extraction, extract_features, feature_shape, load_examples
from app.model import MIN_INPUT_SIZE, build_model, to_tflite
from app.paths import KERAS_FILE, REPORT_FILE, TFLITE_FILE
from app.report import plot_report
from app.training.augment import (
    erase_patches,
    jitter_images,
    mix_up,
    spec_augment,
    stretch_time,
    warp_frequencies,
    waveform_variant,
)
from app.views import input_views, serving_views


def infer_image_config(dataset: Dataset, sample_count: int = 64) -> ImageConfig:
    """Image size, channels and background from a sample of the files: the typical size (at most
    64 px a side), grey when every sampled image is grey, "dark" when grey images have dark borders.
    """
    from PIL import Image

    rng = np.random.default_rng(0)
    chosen = rng.choice(len(dataset.files), size=min(sample_count, len(dataset.files)), replace=False)
    sizes, grey, borders = [], True, []
    for index in chosen:
        try:
            with Image.open(dataset.files[index]) as image:
                sizes.append(image.size)
                if image.mode not in ("L", "1", "I;16", "I", "LA"):
                    grey = False
                pixels = np.asarray(image.convert("L"), dtype=np.float32)
                borders.append(np.median(np.concatenate([pixels[0], pixels[-1], pixels[:, 0], pixels[:, -1]])))
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
            continue  # unreadable files are reported by feature extraction
    if not sizes:
        raise DatasetError(f"none of {len(chosen)} sampled images under {dataset.root} could be opened")
    width, height = Counter(sizes).most_common(1)[0][0]
    scale = min(1.0, 64 / max(width, height))
    background = ("dark" if np.median(borders) < 128 else "light") if grey else None
    return ImageConfig(
        image_size=(max(MIN_INPUT_SIZE, round(height * scale)), max(MIN_INPUT_SIZE, round(width * scale))),
        channels=1 if grey else 3,
        background=background,
    )


SILENCE_CLASS = "_silence_"  # Speech Commands' class of background-noise crops


def silence_training_files(dataset: Dataset, train_indices: Sequence[int]) -> list[Path]:
    """The training split's files of the `_silence_` class (none when there is no such class)."""
    if SILENCE_CLASS not in dataset.class_names:
        return []
    silence = dataset.class_names.index(SILENCE_CLASS)
    return [dataset.files[i] for i in train_indices if dataset.labels[i] == silence]


def _noise_bank(dataset: Dataset, config: AudioConfig, silence_files: Sequence[Path] = ()) -> list[np.ndarray]:
    """Decoded noise waveforms: `_background_noise_` files, then the given `_silence_` training clips."""
    bank = []
    for path in [*dataset.background_noise_files, *silence_files]:
        try:
            bank.append(decode_audio(path, config.sample_rate, max_seconds=600.0))
        except InputError:
            continue
    return bank


def _augmented_audio(
    dataset: Dataset, train_indices: list[int], config: AudioConfig, train_config: TrainConfig, progress: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Spectrograms (n, time, n_mels) of `augment_copies` waveform variants per training clip, and labels."""
    rng = np.random.default_rng(train_config.seed + 1)
    windows = load_examples([dataset.files[i] for i in train_indices], config, spectrograms=False, progress=progress)
    labels = np.asarray([dataset.labels[train_indices[k]] for k in windows.kept])
    silence_files = silence_training_files(dataset, train_indices) if train_config.noise_from_silence else []
    noise_bank = _noise_bank(dataset, config, silence_files)
    variants, variant_labels = [], []
    for _ in range(train_config.augment_copies):
        batch = np.stack([waveform_variant(rng, window, config, noise_bank) for window in windows.arrays])
        variants.append(log_mel_spectrogram(batch, config))
        variant_labels.append(labels)
    if not variants:
        return np.zeros((0, config.n_frames, config.n_mels), np.float32), np.zeros(0, np.int64)
    return np.concatenate(variants), np.concatenate(variant_labels)


class _Batches:
    """A keras.utils.PyDataset factory: shuffled, augmented, one-hot batches."""

    @staticmethod
    def create(features, labels, n_classes, train_config: TrainConfig, preprocessing):
        import keras

        class Batches(keras.utils.PyDataset):
            def __init__(self):
                super().__init__()
                self.rng = np.random.default_rng(train_config.seed + 2)
                self.order = self.rng.permutation(len(features))

            def __len__(self):
                return int(np.ceil(len(features) / train_config.batch_size))

            def __getitem__(self, index):
                rows = self.order[index * train_config.batch_size : (index + 1) * train_config.batch_size]
                batch = features[rows]
                if train_config.augment:
                    if isinstance(preprocessing, AudioConfig):
                        if train_config.frequency_warp > 0:
                            batch = warp_frequencies(self.rng, batch, preprocessing, train_config.frequency_warp)
                        if train_config.time_stretch > 0:
                            batch = stretch_time(self.rng, batch, preprocessing.floor_db, train_config.time_stretch)
                        batch = spec_augment(self.rng, batch, preprocessing.floor_db)
                    else:
                        batch = jitter_images(
                            self.rng,
                            batch,
                            train_config.horizontal_flip,
                            train_config.rotation_degrees,
                            train_config.zoom,
                        )
                        if train_config.random_erasing > 0:
                            batch = erase_patches(self.rng, batch, train_config.random_erasing)
                batch = batch.astype(np.float32, copy=False)
                targets = np.eye(n_classes, dtype=np.float32)[labels[rows]]
                if train_config.augment and train_config.mixup > 0:
                    batch, targets = mix_up(self.rng, batch, targets, train_config.mixup)
                return batch, targets

            def on_epoch_end(self):
                self.order = self.rng.permutation(len(features))

        return Batches()


def _as_model_input(features: np.ndarray) -> np.ndarray:
    """(batch, time, n_mels) spectrograms gain a channel axis; images pass through."""
    return features[..., None] if features.ndim == 3 else features


def train(
    data_dir: str | Path,
    out_dir: str | Path,
    kind: str | None = None,
    train_config: TrainConfig | None = None,
    preprocessing: AudioConfig | ImageConfig | None = None,
    force: bool = False,
    command: str | None = None,
    group_pattern: str | None = None,
    progress: bool = True,
    cache_dir: Path | None = None,
    extra_train_dirs: Sequence[str | Path] = (),
    extra_folder_classes: dict[str, str] | None = None,
) -> Path:
    """Train the CNN on `data_dir/<class>/<files>` and write a bundle to `out_dir`.

    Args:
        data_dir: class-folder dataset.
        out_dir: bundle folder (refused if it exists, unless force, or if it is inside a data folder).
        kind: "audio" or "image"; None detects it from the files.
        train_config: the recipe; defaults to TrainConfig().
        preprocessing: AudioConfig or ImageConfig; None uses AudioConfig() or one inferred from the images.
        force: replace an existing bundle.
        command: the command line recorded in the metadata.
        group_pattern: regex whose first group is the speaker in a file name (keeps speakers in one split).
        progress: show progress bars.
        cache_dir: feature cache folder (default: ~/.cache/onepipe).
        extra_train_dirs: more class-folder datasets (e.g. synthetic speech) used for training only, never
            for validation or test; folders named after classes of `data_dir` are used, others ignored.
        extra_folder_classes: {folder: class} for extra folders named otherwise (e.g. {"zero": "0"}).

    Returns:
        The bundle folder.
    """
    train_config = train_config or TrainConfig()
    out_dir = check_bundle_target(out_dir, force)  # before the training, not after it
    for folder in (data_dir, *extra_train_dirs):
        if out_dir.is_relative_to(Path(folder).resolve()):
            raise InputError(
                f"--out {out_dir} is inside the data folder {folder}, where the bundle would become a class "
                "of the next run; write it elsewhere (e.g. models/NAME)"
            )
    started = time.time()
    dataset = find_dataset(data_dir, kind)
    unknown = sorted(set((extra_folder_classes or {}).values()) - set(dataset.class_names))
    if unknown:
        raise InputError(
            f"extra folders are mapped to {', '.join(unknown)}, which {'is' if len(unknown) == 1 else 'are'} not "
            f"a class of {dataset.root} ({_first_names(dataset.class_names)})"
        )
    if preprocessing is None:
        preprocessing = AudioConfig() if dataset.kind == "audio" else infer_image_config(dataset)
    _check_preprocessing(dataset, preprocessing)
    if dataset.other_kind_files:
        other = "image" if dataset.kind == "audio" else "audio"
        left_out = ", ".join(f"{name}/ ({count})" for name, count in dataset.other_kind_files.items())
        print(f"left out the {other} files of this {dataset.kind} dataset: {left_out}")
    if dataset.looks_split_into_sets:
        training_set = next((name for name in dataset.class_names if name.startswith("train")), dataset.class_names[0])
        print(
            f"note: the classes are {', '.join(dataset.class_names)}, each holding folders; if these are sets "
            f"rather than classes (root/<set>/<class>/), stop and give one set, e.g. {dataset.root / training_set}"
        )
    splits, validating = _split(dataset, train_config, group_pattern)
    extraction = extract_features(dataset.files, preprocessing, cache_dir=cache_dir, progress=progress)
    arrays = _split_arrays(extraction, splits, np.asarray(dataset.labels))
    if len(arrays["train"][0]) == 0 or (validating and len(arrays["validation"][0]) == 0):
        raise DatasetError(f"no readable files left in the training or validation split of {dataset.root}")
    train_features, train_labels, extra_summary = _training_set(
        dataset,
        splits["train"],
        arrays["train"],
        preprocessing,
        train_config,
        extra_train_dirs,
        extra_folder_classes or {},
        cache_dir,
        progress,
    )

    import keras  # after every check of the input, so a mistake is reported at once

    keras.utils.set_random_seed(train_config.seed)
    n_classes = len(dataset.class_names)
    input_shape = _as_model_input(train_features[:1]).shape[1:]
    mean, variance = _input_statistics(train_features, train_config.seed)
    model = _compile(
        build_model(input_shape, n_classes, mean, variance),
        train_config,
        steps=int(np.ceil(len(train_features) / train_config.batch_size)) * train_config.epochs,
    )
    batches = _Batches.create(train_features, train_labels, n_classes, train_config, preprocessing)
    history = _fit(model, batches, arrays["validation"] if validating else None, n_classes, train_config, progress)

    held_out = [(name, *arrays[name]) for name in ("test", "validation") if len(arrays[name][0])]
    serving = serving_views(preprocessing, train_config)
    floor_db = preprocessing.floor_db if isinstance(preprocessing, AudioConfig) else 0.0

    def predict(features: np.ndarray) -> np.ndarray:  # as the Predictor serves the bundle
        views = input_views(_as_model_input(features).astype(np.float32), serving, floor_db)
        return np.mean([model.predict(view, verbose=0) for view in views], axis=0)

    metrics_of = {
        name: metrics_from_predictions(labels, predict(features), dataset.class_names)
        for name, features, labels in held_out
    }
    evaluation_name = held_out[0][0] if held_out else None
    parity_features = held_out[0][1] if held_out else train_features

    serving_model = build_model(input_shape, n_classes, mean, variance)
    serving_model.set_weights(model.get_weights())  # uncompiled: the saved file carries no optimizer state
    tflite_bytes = to_tflite(serving_model)
    parity = _parity(serving_model, tflite_bytes, _as_model_input(parity_features[:32]).astype(np.float32))

    metadata: dict[str, Any] = {
        "format_version": FORMAT_VERSION,
        "name": out_dir.name,
        "kind": dataset.kind,
        "class_names": list(dataset.class_names),
        "preprocessing": to_dict(preprocessing),
        "input_shape": list(input_shape),
        "training": {
            "config": to_dict(train_config),
            "group_pattern": group_pattern,
            "command": command,
            "epochs_run": len(history["loss"]),
            "best_epoch": int(np.argmax(history["val_accuracy"])) + 1 if validating else None,
            "history": {key: [round(float(v), 5) for v in values] for key, values in history.items()},
            "seconds": round(time.time() - started, 1),
        },
        "serving": serving,
        "metrics": {
            "evaluated_on": evaluation_name,  # None: trained on every file, nothing held out
            **metrics_of,
            "keras_litert_max_abs_difference": parity,
        },
        "data": {
            "root": str(Path(data_dir).resolve()),
            "files": len(dataset.files),
            "per_class": dataset.counts(),
            "split": {name: len(indices) for name, indices in splits.items()},
            "extra_training_data": extra_summary,
            "augmented_training_examples": int(len(train_features)),
            "skipped": [{"file": f, "reason": r} for f, r in extraction.skipped],
            "other_kind_files": dataset.other_kind_files,
        },
        "versions": _versions(),
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
    }

    def write_files(folder: Path) -> None:
        serving_model.save(folder / KERAS_FILE)
        (folder / TFLITE_FILE).write_bytes(tflite_bytes)
        evaluation = metrics_of.get(evaluation_name)
        plot_report(history, evaluation, dataset.class_names, evaluation_name, folder / REPORT_FILE)

    bundle = write_bundle(out_dir, metadata, write_files, force=force)
    if extraction.skipped:
        print(f"skipped {len(extraction.skipped)} unreadable file(s); listed in {bundle / 'metadata.json'}:")
        for file, reason in extraction.skipped[:10]:
            print(f"  {file}: {reason}")
    accuracies = {f"{name}_accuracy": metrics["accuracy"] for name, metrics in metrics_of.items()}
    counts = {f"{name}_files": len(indices) for name, indices in splits.items()}  # 0 test files: no test accuracy
    print(json.dumps({"bundle": str(bundle), **accuracies, **counts}))
    return bundle


def _first_names(names: Sequence[str], limit: int = 10) -> str:
    """The first `limit` names as "a, b, c …", for messages."""
    return ", ".join(names[:limit]) + (" …" if len(names) > limit else "")


def _split(dataset: Dataset, train_config: TrainConfig, group_pattern: str | None) -> tuple[dict[str, list[int]], bool]:
    """File indices of the train, validation and test splits, and whether validation chooses the epoch.

    With --validation-percent 0 and no validation speakers named or listed, nothing validates: training
    runs every epoch on every file and keeps the last (averaged) weights, once a recipe has been chosen
    on a held-out split.
    """
    splits = split_dataset(
        dataset,
        train_config.validation_percent,
        train_config.test_percent,
        group_pattern,
        train_config.split_salt,
        train_config.validation_groups,
        train_config.test_groups,
    )
    named = set(train_config.validation_groups) | set(train_config.test_groups)
    found = {speaker_key(path, group_pattern) for path in dataset.files} if named else set()
    if not named <= found:
        raise DatasetError(
            f"no files of the speaker(s) {', '.join(sorted(named - found))} under {dataset.root}; "
            + (
                f"speakers found by --group-pattern: {_first_names(sorted(found))}"
                if group_pattern
                else f"speakers found (the part of each name before _nohash_; --group-pattern names them in other "
                f"schemes, e.g. '^[^_]+_([^_]+)_' for <digit>_<speaker>_<n>.wav): {_first_names(sorted(found))}"
            )
        )
    validating = (
        bool(splits["validation"]) or train_config.validation_percent > 0 or bool(train_config.validation_groups)
    )
    if not splits["train"] or (validating and not splits["validation"]):
        remedy = (
            "named speakers replace the hashed split: name validation speakers too (--validation-groups NAME), "
            "or pass --validation-percent 0 to train all epochs without validation"
            if train_config.test_groups and not train_config.validation_groups
            else "add files, or more speakers, or lower --validation-percent; 0 trains on every file"
        )
        raise DatasetError(
            f"{dataset.root} splits into {len(splits['train'])} training and {len(splits['validation'])} validation "
            f"files; need both ({remedy})"
        )
    return splits, validating


def _split_arrays(
    extraction: Extraction, splits: dict[str, list[int]], labels: np.ndarray
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Each split's features (n, …) and labels (n,), from the files that could be read."""
    row_of = {file_index: row for row, file_index in enumerate(extraction.kept)}
    arrays = {}
    for name, indices in splits.items():
        rows = [row_of[i] for i in indices if i in row_of]
        arrays[name] = extraction.arrays[rows], labels[extraction.kept[rows]]
    return arrays


def _training_set(
    dataset: Dataset,
    train_indices: list[int],
    train_arrays: tuple[np.ndarray, np.ndarray],
    preprocessing: AudioConfig | ImageConfig,
    train_config: TrainConfig,
    extra_train_dirs: Sequence[str | Path],
    extra_folder_classes: dict[str, str],
    cache_dir: Path | None,
    progress: bool,
) -> tuple[np.ndarray, np.ndarray, dict[str, dict[str, int]]]:
    """The training split plus the extra training folders (folders named otherwise read as the class
    `extra_folder_classes` gives) and waveform variants: features, labels, and the class counts taken from
    each extra folder."""
    features, labels = [train_arrays[0]], [train_arrays[1]]
    extra_summary = {}
    for extra_dir in extra_train_dirs:
        extra = find_dataset(extra_dir, dataset.kind, list(dataset.class_names), extra_folder_classes)
        if not extra.files:
            raise DatasetError(
                f"no class folder of {extra_dir} matches a class of {dataset.root} "
                f"({_first_names(dataset.class_names)}) "
                f"with {dataset.kind} files"
            )
        extraction = extract_features(extra.files, preprocessing, cache_dir=cache_dir, progress=progress)
        features.append(extraction.arrays)
        labels.append(np.asarray(extra.labels, dtype=np.int64)[extraction.kept])
        extra_summary[str(Path(extra_dir).resolve())] = extra.counts()
    if dataset.kind == "audio" and train_config.augment and train_config.augment_copies > 0:
        variants, variant_labels = _augmented_audio(dataset, train_indices, preprocessing, train_config, progress)
        features.append(variants)
        labels.append(variant_labels)
    return np.concatenate(features), np.concatenate(labels), extra_summary


def _input_statistics(features: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and variance of the model inputs, from up to 20,000 training examples."""
    subset = np.random.default_rng(seed).permutation(len(features))[:20000]
    sample = _as_model_input(features[np.sort(subset)]).astype(np.float32)
    channel_axes = tuple(range(sample.ndim - 1))
    return sample.mean(axis=channel_axes), sample.var(axis=channel_axes) + 1e-6


def _fit(
    model,
    batches,
    validation: tuple[np.ndarray, np.ndarray] | None,
    n_classes: int,
    train_config: TrainConfig,
    progress: bool,
) -> dict[str, list[float]]:
    """Train the compiled model; returns Keras's per-epoch history.

    With validation data (features, labels), training stops early and the model ends with the weights of
    the best validation epoch; without, it runs every epoch and keeps the last weights (or their moving
    average with --weight-averaging).
    """
    import keras

    if validation is None:
        return model.fit(batches, epochs=train_config.epochs, verbose=1 if progress else 0).history
    with tempfile.TemporaryDirectory() as scratch:
        checkpoint = Path(scratch) / "best.weights.h5"
        callbacks = [
            # validate and checkpoint the averaged weights (swapped in at each epoch's end)
            *([keras.callbacks.SwapEMAWeights(swap_on_epoch=True)] if train_config.weight_averaging else []),
            keras.callbacks.ModelCheckpoint(
                checkpoint, monitor="val_accuracy", save_best_only=True, save_weights_only=True
            ),
            keras.callbacks.EarlyStopping(monitor="val_accuracy", patience=train_config.patience),
        ]
        history = model.fit(
            batches,
            validation_data=(
                _as_model_input(validation[0]).astype(np.float32),
                np.eye(n_classes, dtype=np.float32)[validation[1]],
            ),
            epochs=train_config.epochs,
            verbose=1 if progress else 0,
            callbacks=callbacks,
        )
        model.load_weights(checkpoint)
    return history.history


def _compile(model, train_config: TrainConfig, steps: int):
    import keras

    schedule = keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=train_config.learning_rate / 10,
        decay_steps=max(1, steps),
        warmup_target=train_config.learning_rate,
        warmup_steps=max(1, steps // 20),
    )
    model.compile(
        optimizer=keras.optimizers.AdamW(
            learning_rate=schedule,
            weight_decay=train_config.weight_decay,
            use_ema=train_config.weight_averaging,
            ema_momentum=0.995,
        ),
        loss=keras.losses.CategoricalCrossentropy(label_smoothing=train_config.label_smoothing),
        metrics=["accuracy"],
    )
    return model


def _parity(model, tflite_bytes: bytes, inputs: np.ndarray) -> float:
    """Largest absolute difference between Keras and LiteRT probabilities on the same inputs."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=tflite_bytes)
    input_index = interpreter.get_input_details()[0]["index"]
    interpreter.resize_tensor_input(input_index, list(inputs.shape))
    interpreter.allocate_tensors()
    interpreter.set_tensor(input_index, inputs)
    interpreter.invoke()
    litert = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
    return float(np.max(np.abs(litert - model.predict(inputs, verbose=0))))


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    versions = {"python": platform.python_version()}
    for package in (
        "onepipe",
        "tensorflow-cpu",
        "tensorflow",
        "keras",
        "ai-edge-litert",
        "numpy",
        "scipy",
        "av",
        "pillow",
    ):
        try:
            versions[package] = version(package)
        except PackageNotFoundError:
            continue
    return versions


def _check_preprocessing(dataset: Dataset, preprocessing: AudioConfig | ImageConfig) -> None:
    """InputError when the preprocessing is for the other kind of data, or makes inputs too small for the CNN."""
    if isinstance(preprocessing, AudioConfig) != (dataset.kind == "audio"):
        asked = "audio" if isinstance(preprocessing, AudioConfig) else "image"
        raise InputError(
            f"{dataset.root} holds {dataset.kind} files, but the options given are for {asked} "
            f"(such as {'--sample-rate' if asked == 'audio' else '--image-size'}); drop them (or, for a folder that "
            f"also holds {asked} files, pass --kind {asked})"
        )
    height, width = feature_shape(preprocessing)[:2]
    if min(height, width) < MIN_INPUT_SIZE:
        what = (
            f"{height} frames × {width} mel bands (longer --clip-seconds, shorter --hop-length or more --n-mels)"
            if isinstance(preprocessing, AudioConfig)
            else f"{height} × {width} pixels (a larger --image-size)"
        )
        raise InputError(
            f"the model's input would be {what}; the CNN needs at least {MIN_INPUT_SIZE} × {MIN_INPUT_SIZE}"
        )


def train_config_with(**overrides: Any) -> TrainConfig:
    """TrainConfig() with the given fields replaced (None values are ignored)."""
    return dataclasses.replace(TrainConfig(), **{k: v for k, v in overrides.items() if v is not None})
