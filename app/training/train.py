"""Training: a class-folder dataset in, a bundle out (model.keras, model.tflite, metadata.json, report.png).

`train` reads as the recipe; each step lives in its own module of app.training: scan, splits, features
(app.features), training_set (with variants), fit (with batches, augmentation_policy and the training loop, which
distribute spreads over devices and machines and checkpoints makes resumable), held_out, trust (calibration and
familiarity threshold), export, metadata, and the
atomic write (app.bundle). Files left out or skipped are logged as warnings, progress at
INFO (and sent as app.training.events to a program that watches); the result says where the bundle went and how it
scored.

Example:
    >>> import tempfile
    >>> from pathlib import Path
    >>> from PIL import Image
    >>> from app.config import TrainConfig
    >>> from app.training.train import train
    >>> scratch = tempfile.TemporaryDirectory()
    >>> root = Path(scratch.name)
    >>> for name, pixel in (("dark", 0), ("light", 255)):
    ...     (root / "data" / name).mkdir(parents=True)
    ...     for n in range(8):
    ...         image = Image.new("L", (12, 12), pixel)
    ...         image.putpixel((n, n), 255 - pixel)  # a dot: images of one flat colour are skipped
    ...         image.save(root / "data" / name / f"{n}.png")
    >>> recipe = TrainConfig(epochs=1, batch_size=4, validation_percent=0, test_percent=0)  # every file trains
    >>> result = train(root / "data", root / "bundle", train_config=recipe, progress=False, cache_dir=root / "cache")
    >>> sorted(path.name for path in result.bundle.iterdir())
    ['metadata.json', 'model.keras', 'model.tflite', 'report.png']
    >>> result.summary["train_files"], result.summary["test_files"]  # nothing held out: no accuracy to report
    (16, 0)
    >>> scratch.cleanup()
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from app.bundle import write_bundle
from app.config import AudioConfig, ImageConfig, TrainConfig
from app.paths import METADATA_FILE
from app.training.checkpoints import open_checkpoints, run_key
from app.training.distill import check_teacher
from app.training.distribute import start_distribution
from app.training.events import emit
from app.training.held_out import evaluated_split, held_out_inner_features, held_out_metrics, held_out_probabilities
from app.training.init_from import check_source
from app.training.inputs import StoredExtraction, extract_to_store, held_out_arrays, split_examples
from app.training.metadata import build_metadata
from app.training.scan import check_out_dir, scan
from app.training.splits import check_readable, split_files
from app.training.training_set import build_training_set
from app.training.trust import trust_on_held_out
from app.views import serving_views

logger = logging.getLogger(__name__)

SKIPPED_LISTED = 10  # unreadable files named in the log; metadata.json lists them all


@dataclass(frozen=True)
class TrainResult:
    """Where the bundle went, and the summary the CLI prints as one JSON line: {"bundle": path,
    "<split>_accuracy": 0–1 for each held-out split, "<split>_files": count for each split}."""

    bundle: Path
    summary: dict[str, Any]


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
    resume: bool = False,
    distribute: str = "none",
    init_from: str | Path | None = None,
    distill_from: str | Path | None = None,
) -> TrainResult:
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
        progress: show progress (bars on a terminal, else log lines).
        cache_dir: feature cache folder (default: ~/.cache/onepipe).
        extra_train_dirs: more class-folder datasets (e.g. synthetic speech) used for training only, never
            for validation or test; folders named after classes of `data_dir` are used, others ignored.
        extra_folder_classes: {folder: class} for extra folders named otherwise (e.g. {"zero": "0"}).
        resume: continue a killed run of the same data and recipe from its last completed epoch
            (app.training.checkpoints); without, a run starts afresh.
        distribute: "none", "mirrored" (every local GPU) or "multi-worker" (one process per machine, TF_CONFIG);
            see app.training.distribute. Only the chief (worker 0) writes the bundle.
        init_from: a bundle whose trained layers the model starts from (app.training.init_from; refused unless
            its kind, preprocessing and input shape are this run's); None: from scratch.
        distill_from: a bundle (usually trained with network "teacher") whose answers make up part of each
            training target (app.training.distill; refused unless its kind, classes and preprocessing but the image
            size are this run's); None: the labels alone.

    Returns:
        The bundle folder and the run's summary (see TrainResult).
    """
    train_config, extra_folder_classes = train_config or TrainConfig(), extra_folder_classes or {}
    out_dir = check_out_dir(out_dir, [data_dir, *extra_train_dirs], force)  # before the training, not after it
    distribution = start_distribution(distribute, train_config.batch_size)  # before any other TensorFlow op
    started = time.time()
    emit("phase", phase="scanning")
    dataset, preprocessing = scan(data_dir, kind, preprocessing, extra_folder_classes)
    splits, validating = split_files(dataset, train_config, group_pattern)
    source = check_source(init_from, dataset.kind, preprocessing) if init_from is not None else None
    teacher = None
    if distill_from is not None:
        teacher = check_teacher(distill_from, dataset.kind, preprocessing, dataset.class_names)
    taught_by = teacher.summary(train_config) if teacher else None
    key = run_key(
        dataset, splits, preprocessing, train_config, group_pattern, extra_train_dirs, extra_folder_classes,
        distribution, source.summary() if source else None, taught_by,
    )  # fmt: skip
    checkpoints = open_checkpoints(out_dir, resume, distribution.worker_index, key)  # refuses another run's
    emit("phase", phase="features", files=len(dataset.files), classes=list(dataset.class_names))
    splits_read = {**splits, "train": distribution.shard_files(splits["train"])}  # every held-out file, on each
    extraction = extract_files(dataset.files, splits_read, preprocessing, cache_dir, progress)
    arrays = split_examples(extraction, splits_read, np.asarray(dataset.labels))  # training split: on disk
    check_readable(arrays, validating, dataset)
    training_set = build_training_set(
        dataset, splits_read["train"], arrays["train"], preprocessing, train_config, extra_train_dirs,
        extra_folder_classes, cache_dir, progress, extraction.readable_keys(), distribution.shard_files,
    )  # fmt: skip

    emit("phase", phase="loading")
    from app.training.export import export_model, write_model_files  # Keras: only once the input passed every check
    from app.training.fit import fit_model

    held_out = held_out_arrays(arrays)
    validation = held_out["validation"] if validating else None
    emit("phase", phase="fitting", epochs=train_config.epochs, examples=len(training_set.features))
    fitted = fit_model(
        training_set, validation, len(dataset.class_names), preprocessing, train_config, progress,
        distribution, checkpoints, source, teacher,
    )  # fmt: skip
    if not distribution.is_chief:  # the chief writes the bundle; this worker waits until it has, and is done
        log_skipped(extraction.skipped, None)  # of its share of the training files, which the chief did not read
        checkpoints.finish(distribution)
        return TrainResult(out_dir, {"bundle": str(out_dir), "worker": distribution.worker_index, "written_by": 0})
    serving = serving_views(preprocessing, train_config)
    emit("phase", phase="evaluating")
    scored = held_out_probabilities(fitted.model, held_out, serving, preprocessing)
    metrics = held_out_metrics(scored, dataset.class_names)
    evaluated_on = evaluated_split(metrics)
    inner = held_out_inner_features(fitted.model, held_out, evaluated_on, serving, preprocessing, dataset.kind)
    trust = trust_on_held_out(scored, evaluated_on, inner)  # calibration and familiarity threshold, {} if too few
    emit("phase", phase="exporting")
    exported = export_model(fitted, held_out[evaluated_on][0] if evaluated_on else training_set.features)
    metadata = build_metadata(
        name=out_dir.name, dataset=dataset, preprocessing=preprocessing, train_config=train_config,
        group_pattern=group_pattern, command=command, splits=splits, skipped=extraction.skipped,
        training_set=training_set, fitted=fitted, serving=serving, metrics=metrics, parity=exported.parity,
        trust=trust, seconds=time.time() - started,
    )  # fmt: skip
    metadata["training"]["init_from"] = source.summary() if source else None  # the bundle it started from
    metadata["training"]["distilled_from"] = taught_by  # the bundle that taught it
    emit("phase", phase="saving")
    write_files = partial(
        write_model_files, exported, fitted.history, metrics, dataset.class_names, calibration=trust.get("calibration")
    )
    bundle = write_bundle(out_dir, metadata, write_files, force=force)
    checkpoints.finish(distribution)  # nothing left to resume
    log_skipped(extraction.skipped, bundle / METADATA_FILE)
    return TrainResult(bundle, summarise(bundle, metrics, splits))


def extract_files(
    files: Sequence[Path],
    splits: dict[str, list[int]],
    preprocessing: AudioConfig | ImageConfig,
    cache_dir: Path | None,
    progress: bool,
) -> StoredExtraction:
    """The features of the files the splits name (on several workers, this worker's share of the training split
    and every held-out file), as an extraction of the whole list of `files`."""
    positions = sorted({index for indices in splits.values() for index in indices})
    if len(positions) == len(files):
        return extract_to_store(files, preprocessing, cache_dir=cache_dir, progress=progress)
    chosen = [files[position] for position in positions]
    extraction = extract_to_store(chosen, preprocessing, cache_dir=cache_dir, progress=progress)
    return extraction.of_files(positions, len(files))


def log_skipped(skipped: Sequence[tuple[str, str]], listing: Path | None) -> None:
    """Log the (file, reason) pairs of unreadable files, the first SKIPPED_LISTED of them, as one warning that
    names the metadata listing them all (None: a worker's own files, listed nowhere else, all of them)."""
    if skipped:
        where = f"listed in {listing}" if listing is not None else "in this worker's share of the training files"
        shown = skipped[:SKIPPED_LISTED] if listing is not None else skipped
        lines = [f"skipped {len(skipped)} unreadable file(s); {where}:"]
        lines += [f"  {file}: {reason}" for file, reason in shown]
        logger.warning("\n".join(lines))


def summarise(bundle: Path, metrics: dict[str, dict[str, Any]], splits: dict[str, list[int]]) -> dict[str, Any]:
    """{"bundle": path, "<split>_accuracy": …, "<split>_files": …} (see TrainResult); a split without files
    has no accuracy."""
    accuracies = {f"{name}_accuracy": split_metrics["accuracy"] for name, split_metrics in metrics.items()}
    counts = {f"{name}_files": len(indices) for name, indices in splits.items()}
    return {"bundle": str(bundle), **accuracies, **counts}


def train_config_with(**overrides: Any) -> TrainConfig:
    """TrainConfig() with the given fields replaced (None values are ignored)."""
    return dataclasses.replace(TrainConfig(), **{k: v for k, v in overrides.items() if v is not None})
