"""`python -m app calibrate BUNDLE --from RUN RUN …`: calibrate a bundle that trained on every file on the held-out
files of several measured runs of its recipe, pooled.

One measured run holds out a few hundred files, and on a few hundred files the expected calibration error cannot
be told from chance (app.calibration.ece_by_chance). Runs that hold out other files (another `--split-salt`, other
`--test-groups`) each score their own held-out files, validation and test, with their own model; the temperature
and the familiarity threshold (of the top calibrated probability: inner features are each model's own) are then
fitted on all those scores together. The calibration section also gives `ece_cross_fitted`: the ECE of every
run's files calibrated with a temperature fitted on the other runs' files only, so no file is scored with a
temperature it helped to fit.

Example:
    python -m app calibrate models/speech-commands --from runs/speech-commands runs/speech-commands-2
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from app.bundle import read_metadata
from app.calibrate_bundle import recipe_differences, recorded_splits, summary, write_trust
from app.calibration import apply_temperature, expected_calibration_error, fit_temperature
from app.class_folders import find_dataset
from app.errors import BundleError, DatasetError
from app.evaluate import log_skipped, served_in_batches
from app.features import extract_features
from app.predict import Predictor
from app.training.trust import MIN_FILES, fit_trust


def calibrate_from_runs(
    bundle_dir: str | Path, run_dirs: Sequence[str | Path], data_dir: str | Path | None = None, progress: bool = True
) -> dict[str, Any]:
    """Fit `bundle_dir`'s calibration and familiarity threshold on the pooled held-out files of `run_dirs` and
    write them into its metadata.json.

    Args:
        run_dirs: two or more bundles of the same recipe (kind, classes, preprocessing, views) as `bundle_dir`,
            trained on one folder with files held out.
        data_dir: where that folder is now; None: where each run recorded it.

    Returns:
        summary(…) of the sections written, plus ece_cross_fitted and the files of each run.

    Raises:
        BundleError: fewer than two runs, the bundle among them, a run of another recipe.
        DatasetError: a run's folder is missing or held nothing out, or fewer than MIN_FILES readable files in all.
    """
    bundle_dir, runs = Path(bundle_dir), [Path(run) for run in run_dirs]
    metadata = read_metadata(bundle_dir)
    check_runs(bundle_dir, metadata, runs)
    scored = [held_out_scores(run, Path(data_dir) if data_dir else None, progress) for run in runs]
    probabilities = np.concatenate([rows for rows, _ in scored])
    labels = np.concatenate([run_labels for _, run_labels in scored])
    if len(labels) < MIN_FILES:
        raise DatasetError(f"{len(labels)} readable held-out file(s) in all; calibration needs at least {MIN_FILES}")
    fitted_on = f"held-out files of {len(runs)} measured runs"  # which ones: "pooled_from"
    sections = fit_trust(probabilities, labels, fitted_on)
    sections["calibration"]["ece_cross_fitted"] = cross_fitted_ece(scored)
    files_of_each = {str(run): len(run_labels) for run, (_, run_labels) in zip(runs, scored, strict=True)}
    for section in sections.values():
        section["pooled_from"] = files_of_each
    write_trust(bundle_dir, sections)
    return {**summary(bundle_dir, sections), "ece_cross_fitted": sections["calibration"]["ece_cross_fitted"]}


def check_runs(bundle_dir: Path, metadata: dict[str, Any], runs: Sequence[Path]) -> None:
    """Refuse fewer than two distinct runs, the bundle itself among them, or a run of another recipe."""
    if len({run.resolve() for run in runs}) < 2:
        raise BundleError("expected two or more different measured runs to pool; with one, --from copies its sections")
    for run in runs:
        if run.resolve() == bundle_dir.resolve():
            raise BundleError(f"--from {run} is the bundle itself; expected measured runs of the same recipe")
        differences = recipe_differences(metadata, read_metadata(run))
        if differences:
            raise BundleError(f"{run} is not of the same recipe as {bundle_dir}: " + "; ".join(differences))


def held_out_scores(run: Path, data_dir: Path | None, progress: bool) -> tuple[np.ndarray, np.ndarray]:
    """(n, n_classes) probabilities `run` serves for its validation and test files, before calibration, and their
    (n,) labels in its class order; unreadable files are logged and left out."""
    predictor = Predictor.load(run)
    metadata = predictor.metadata
    recorded = (metadata.get("data") or {}).get("root")
    folder = data_dir or (Path(recorded) if recorded else None)
    if folder is None or not folder.is_dir():
        raise DatasetError(
            f"{run} trained on {folder or 'a folder it did not record'}, which is not there; "
            "give its folder as DATA_DIR"
        )
    dataset = find_dataset(folder, metadata["kind"], class_names=list(metadata["class_names"]))
    splits = recorded_splits(dataset, metadata)
    indices = sorted(splits["validation"] + splits["test"])
    if not indices:
        raise DatasetError(f"{run} trained on every file of {folder}: it holds none out to calibrate on")
    extraction = extract_features([dataset.files[i] for i in indices], predictor.config, progress=progress)
    log_skipped(extraction.skipped)
    probabilities, _ = served_in_batches(predictor, extraction.arrays)
    return probabilities, np.asarray(dataset.labels, dtype=np.int64)[indices][extraction.kept]


def cross_fitted_ece(scored: Sequence[tuple[np.ndarray, np.ndarray]]) -> float:
    """The ECE (0–1) of all the runs' files, each run's calibrated with the temperature fitted on the others'."""
    calibrated, labels = [], []
    for index, (probabilities, run_labels) in enumerate(scored):
        others = [pair for other, pair in enumerate(scored) if other != index]
        temperature = fit_temperature(
            np.concatenate([rows for rows, _ in others]), np.concatenate([lab for _, lab in others])
        )
        calibrated.append(apply_temperature(np.asarray(probabilities, dtype=np.float64), temperature))
        labels.append(run_labels)
    return expected_calibration_error(np.concatenate(calibrated), np.concatenate(labels))
