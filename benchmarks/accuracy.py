"""Accuracy of every shipped bundle on the matching folders under DATA_ROOT, as JSON.

Each bundle is evaluated with `app.evaluate.evaluate_bundle` (the LiteRT model on the bundle's own
preprocessing) on DATA_ROOT/<folder>; bundles or folders that do not exist are skipped (said on stderr).

By default every file of the folder counts. `--held-out` keeps only the files the bundle did not train
on: its validation and test split of that folder, recomputed with `app.class_folders.split_dataset` from the
bundle's metadata (training config: validation/test percent and split salt; group_pattern). `--split`
chooses another part, and `--salt`, `--validation-percent`, `--test-percent`, `--group-pattern`
override the metadata's values. The split is only honest when DATA_ROOT/<folder> holds the data the
bundle was trained on (`same_data_as_training` in the output); `extra_training_data` says the bundle learned
from every file of the folder (as `--extra-train-data`), so no figure on it is unseen.

`--as-recordings` (audio bundles) also scores each clip the way the microphone delivers it: placed at a
random point in 2.5 s of quiet room noise, 15 dB quieter, at 48 kHz, through the WebM/Opus encoder
browsers use, then decoded and windowed by the Predictor (`recording_accuracy` in the output).

Usage:
    python benchmarks/accuracy.py DATA --held-out --as-recordings
    python benchmarks/accuracy.py DATA --split test --models-dir models

Prints {bundle: {accuracy, per_class, count, data, split, ...}}.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np

from app.audio import decode_audio
from app.bundle import read_metadata
from app.class_folders import find_dataset, split_dataset
from app.config import train_config_from_dict
from app.errors import OnePipeError
from app.evaluate import evaluate_bundle
from app.noise import BROADBAND_KINDS, make_noise
from app.predict import Predictor
from app.training.augment import encode_webm_opus

# bundle name under --models-dir → folder name under DATA_ROOT
BUNDLE_FOLDERS = {
    "speech-commands": "speech_commands",
    "spoken-digits": "fsdd",
    "mnist": "mnist",
    "cifar10": "cifar10",
}
SPLIT_CHOICES = ("all", "train", "validation", "test", "held-out")


def split_settings(metadata: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """validation_percent, test_percent, salt and group_pattern: the bundle's training values unless overridden."""
    train_config = train_config_from_dict(metadata.get("training", {}).get("config", {}))
    settings = {
        "validation_percent": train_config.validation_percent,
        "test_percent": train_config.test_percent,
        "salt": train_config.split_salt,
        "validation_groups": list(train_config.validation_groups),
        "test_groups": list(train_config.test_groups),
        "group_pattern": metadata.get("training", {}).get("group_pattern"),
    }
    settings.update({key: value for key, value in overrides.items() if value is not None})
    return settings


def split_files(
    data_dir: Path, metadata: dict[str, Any], split: str, settings: dict[str, Any]
) -> list[tuple[str, Path]]:
    """(class name, file) of the chosen split of data_dir, using the bundle's classes."""
    dataset = find_dataset(data_dir, metadata["kind"], class_names=list(metadata["class_names"]))
    splits = split_dataset(
        dataset,
        settings["validation_percent"],
        settings["test_percent"],
        settings["group_pattern"],
        settings["salt"],
        tuple(settings.get("validation_groups", ())),
        tuple(settings.get("test_groups", ())),
    )
    names = ("validation", "test") if split == "held-out" else (split,)
    indices = sorted(i for name in names for i in splits[name])
    return [(dataset.class_names[dataset.labels[i]], dataset.files[i]) for i in indices]


def training_overlap(metadata: dict[str, Any], data_dir: Path) -> dict[str, bool]:
    """same_data_as_training: the bundle's recorded data root is data_dir (its split then says what it never saw);
    extra_training_data: data_dir was among its --extra-train-data folders (it learned from every file of it)."""
    recorded = metadata.get("data") or {}
    here = data_dir.resolve()
    root, extra = recorded.get("root"), recorded.get("extra_training_data") or {}
    return {
        "same_data_as_training": bool(root) and Path(root).resolve() == here,
        "extra_training_data": any(Path(folder).resolve() == here for folder in extra),
    }


def link_subset(files: Sequence[tuple[str, Path]], root: Path) -> Path:
    """A class-folder tree of symbolic links to `files` (names kept), for evaluate_bundle."""
    for index, (class_name, path) in enumerate(files):
        target = root / class_name / f"{index:07d}-{path.name}"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.symlink_to(path.resolve())
    return root


def evaluate_one(
    bundle_dir: Path, data_dir: Path, split: str, overrides: dict[str, Any], progress: bool
) -> dict[str, Any]:
    """Metrics of one bundle on data_dir (or one split of it)."""
    metadata = read_metadata(bundle_dir)
    result: dict[str, Any] = {"data": str(data_dir), "split": split, **training_overlap(metadata, data_dir)}
    if split == "all":
        metrics = evaluate_bundle(bundle_dir, data_dir, progress=progress)
    else:
        settings = split_settings(metadata, overrides)
        files = split_files(data_dir, metadata, split, settings)
        result["split_settings"] = settings
        if not files:
            everything_trained = not settings["validation_percent"] and not settings["test_percent"]
            reason = ": the bundle trained on every file of it" if everything_trained else ""
            raise OnePipeError(f"the {split} split of {data_dir} is empty with {settings}{reason}")
        with tempfile.TemporaryDirectory(prefix="onepipe-accuracy-") as scratch:
            metrics = evaluate_bundle(bundle_dir, link_subset(files, Path(scratch)), progress=progress)
    return {
        "accuracy": metrics["accuracy"],
        "count": metrics["count"],
        "per_class": metrics["per_class"],
        **result,
        "skipped_files": len(metrics.get("skipped", [])),
        "ignored_folders": metrics.get("ignored_folders", []) if split == "all" else [],
        "confusion_matrix": metrics["confusion_matrix"],
        "class_names": metrics["class_names"],
    }


def as_recording(rng: np.random.Generator, waveform: np.ndarray, sample_rate: int) -> bytes:
    """A clip as a browser would record it: in 2.5 s of quiet noise (−65 dBFS RMS; longer clips get 0.5 s more
    than their length), 15 dB down, 48 kHz WebM/Opus."""
    kind = str(rng.choice(BROADBAND_KINDS))
    length = max(int(2.5 * sample_rate), waveform.size + sample_rate // 2)
    recording = make_noise(kind, length, rng, sample_rate) * 10 ** (-65 / 20)
    start = int(rng.integers(0, recording.size - waveform.size))  # as before for clips under 2 s
    recording[start : start + waveform.size] += waveform * 10 ** (-15 / 20)
    return encode_webm_opus(recording.astype(np.float32), sample_rate)


def recording_accuracy(bundle_dir: Path, files: Sequence[tuple[str, Path]], seed: int = 0) -> dict[str, Any]:
    """Accuracy of a bundle on `files` turned into browser-like recordings (see as_recording)."""
    predictor = Predictor.load(bundle_dir)
    rng = np.random.default_rng(seed)
    correct, count = 0, 0
    for class_name, path in files:
        waveform = decode_audio(path, 48000)
        predicted = predictor(as_recording(rng, waveform, 48000), top_k=1)[0]["label"]
        correct += predicted == class_name
        count += 1
    return {"recording_accuracy": round(correct / max(count, 1), 5), "recording_count": count}


def run(
    data_root: Path,
    models_dir: Path,
    split: str,
    overrides: dict[str, Any],
    progress: bool = False,
    as_recordings: bool = False,
) -> dict[str, Any]:
    """{bundle: metrics} for every bundle of BUNDLE_FOLDERS whose bundle and folder both exist."""
    results: dict[str, Any] = {}
    for bundle, folder in BUNDLE_FOLDERS.items():
        bundle_dir, data_dir = models_dir / bundle, data_root / folder
        if not (bundle_dir / "metadata.json").is_file():
            print(f"skipped {bundle}: no bundle at {bundle_dir}", file=sys.stderr)
            continue
        if not data_dir.is_dir():
            print(f"skipped {bundle}: no folder {data_dir}", file=sys.stderr)
            continue
        try:
            results[bundle] = evaluate_one(bundle_dir, data_dir, split, overrides, progress)
            metadata = read_metadata(bundle_dir)
            if as_recordings and metadata["kind"] == "audio":
                if split == "all":
                    dataset = find_dataset(data_dir, "audio", class_names=list(metadata["class_names"]))
                    files = [
                        (dataset.class_names[label], path)
                        for label, path in zip(dataset.labels, dataset.files, strict=True)
                    ]
                else:
                    files = split_files(data_dir, metadata, split, split_settings(metadata, overrides))
                results[bundle].update(recording_accuracy(bundle_dir, files))
        except OnePipeError as error:
            print(f"skipped {bundle}: {error}", file=sys.stderr)
    return results


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data_root", type=Path, help="folder holding speech_commands/, fsdd/, mnist/, cifar10/")
    default_models = Path(os.environ.get("ONEPIPE_MODELS_DIR") or Path(__file__).resolve().parents[1] / "models")
    parser.add_argument("--models-dir", type=Path, default=default_models, help="folder of bundles (default: models)")
    parser.add_argument("--split", choices=SPLIT_CHOICES, default="all", help="part of each folder to evaluate on")
    parser.add_argument("--held-out", action="store_true", help="same as --split held-out (validation + test)")
    parser.add_argument("--salt", help="split salt (default: the bundle's training split_salt)")
    parser.add_argument("--validation-percent", type=float, help="default: the bundle's training value")
    parser.add_argument("--test-percent", type=float, help="default: the bundle's training value")
    parser.add_argument("--group-pattern", help="speaker regex (default: the bundle's group_pattern)")
    parser.add_argument("--progress", action="store_true", help="show feature-extraction progress bars")
    parser.add_argument("--as-recordings", action="store_true", help="audio: also score browser-like recordings")
    args = parser.parse_args(argv)
    if args.held_out and args.split not in ("all", "held-out"):
        parser.error("--held-out and --split choose the same thing; give one")
    if not args.data_root.is_dir():
        parser.error(f"DATA_ROOT {args.data_root} is not a folder")
    overrides = {
        "salt": args.salt,
        "validation_percent": args.validation_percent,
        "test_percent": args.test_percent,
        "group_pattern": args.group_pattern,
    }
    split = "held-out" if args.held_out else args.split
    print(json.dumps(run(args.data_root, args.models_dir, split, overrides, args.progress, args.as_recordings)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
