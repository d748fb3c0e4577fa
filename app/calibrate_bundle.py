"""`python -m app calibrate`: give a bundle its calibration (app.calibration) and familiarity threshold
(app.familiarity) after training, from labelled files it did not train on, or copied from a bundle of the same
recipe whose held-out split they were fitted on.

Where the files come from:
- DATA_DIR is the bundle's own training folder: its held-out split, recomputed from the split settings the
  metadata records (test, else validation, as training reports); refused when it trained on every file there.
- DATA_DIR is another folder: every file of the bundle's classes in it; refused when the bundle trained on it (or
  on a folder it holds or lies in, app.evaluate.training_data_under).
- `--from OTHER`: OTHER's "calibration" and "familiarity" sections, when OTHER has the same kind, classes,
  preprocessing and serving views (how a final bundle trained on every file takes them from its measured run),
  and its familiarity threshold is of probabilities (one of inner features belongs to OTHER's own model).
- `--from RUN RUN …`: fitted anew on the held-out files of several measured runs together (app.pooled_calibration).

`--familiarity` chooses the threshold's statistic: by default, for pictures with enough files of every class and
a model that outputs its inner features, the distance in those features (app.training.trust.feature_familiarity);
else the largest calibrated probability.

Only metadata.json and report.png (redrawn with the reliability diagram when the files are there to draw it)
change; the model files stay as they are and every sha256 in metadata.json stays true. The bundle is rewritten
in a staging copy swapped into place (app.staging), so a failure leaves it as it was.

Example:
    python -m app calibrate models/my-digits data/my-digits        # its held-out split
    python -m app calibrate models/final-digits --from models/measured-digits
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from app.bundle import read_metadata
from app.bundle_schema import validate_metadata
from app.class_folders import Dataset, find_dataset, split_dataset
from app.config import preprocessing_from_metadata, to_dict, train_config_from_dict
from app.errors import BundleError, DatasetError
from app.evaluate import log_skipped, served_in_batches, training_data_under
from app.familiarity import FEATURE_STATISTIC, STATISTIC
from app.features import extract_features
from app.hashing import file_digest
from app.paths import METADATA_FILE, REPORT_FILE, TFLITE_FILE
from app.predict import Predictor
from app.staging import replace_when_complete
from app.training.held_out import HELD_OUT_SPLITS
from app.training.trust import FEATURE_MIN_FILES_PER_CLASS, FEATURE_STATISTIC_KINDS, MIN_FILES, fit_trust
from app.views import serving_from_metadata

logger = logging.getLogger(__name__)

TRUST_SECTIONS = ("calibration", "familiarity")


FAMILIARITY_CHOICES = ("auto", STATISTIC, FEATURE_STATISTIC)


def calibrate_on_data(
    bundle_dir: str | Path, data_dir: str | Path, progress: bool = True, familiarity: str = "auto"
) -> dict[str, Any]:
    """Fit the bundle's calibration and familiarity threshold on labelled files of `data_dir` it did not train on
    (see the module's docstring for which) and write them into its metadata.json.

    Args:
        familiarity: the statistic of the familiarity threshold, one of FAMILIARITY_CHOICES: "auto" (the inner
            features for pictures where the model outputs them and every class has FEATURE_MIN_FILES_PER_CLASS
            files, else the top probability), or one named.

    Returns:
        summary(…) of the sections written.

    Raises:
        DatasetError: no such files, fewer than app.training.trust.MIN_FILES readable ones, files it trained on, or
            too few of a class for the feature statistic asked for.
        BundleError: the bundle cannot be loaded, or its model has no inner features for the statistic asked for.
    """
    bundle_dir, data_dir = Path(bundle_dir), Path(data_dir)
    predictor = Predictor.load(bundle_dir)
    files, labels, fitted_on = unseen_files(predictor.metadata, data_dir)
    extraction = extract_features(files, predictor.config, progress=progress)
    log_skipped(extraction.skipped)
    if len(extraction.kept) < MIN_FILES:
        raise DatasetError(
            f"{len(extraction.kept)} readable file(s) in the {fitted_on}; calibration is fitted on at least {MIN_FILES}"
        )
    raw, inner = served_in_batches(predictor, extraction.arrays)
    kept_labels = labels[extraction.kept]
    if familiarity == FEATURE_STATISTIC:
        check_feature_statistic(bundle_dir, inner, kept_labels, len(predictor.class_names))
    elif familiarity == STATISTIC or predictor.kind not in FEATURE_STATISTIC_KINDS:
        inner = None  # fit_trust then fits the top probability's threshold
    sections = fit_trust(raw, kept_labels, fitted_on, inner)
    write_trust(bundle_dir, sections)
    return summary(bundle_dir, sections)


def check_feature_statistic(bundle_dir: Path, inner: np.ndarray | None, labels: np.ndarray, n_classes: int) -> None:
    """Refuse a feature statistic that cannot be fitted: a model without inner features, or a class with fewer than
    FEATURE_MIN_FILES_PER_CLASS files."""
    if inner is None:
        raise BundleError(
            f"{bundle_dir / TFLITE_FILE} outputs probabilities only, not the inner features {FEATURE_STATISTIC} "
            "measures: train the bundle again with this version of OnePipe, or use --familiarity max_score"
        )
    fewest = int(np.bincount(labels, minlength=n_classes).min())
    if fewest < FEATURE_MIN_FILES_PER_CLASS:
        raise DatasetError(
            f"{FEATURE_STATISTIC} is fitted on at least {FEATURE_MIN_FILES_PER_CLASS} files of every class; a class "
            f"has {fewest} here"
        )


def unseen_files(metadata: dict[str, Any], data_dir: Path) -> tuple[list[Path], np.ndarray, str]:
    """The files of `data_dir` the bundle did not train on, their labels (in the bundle's class order) and what
    they are in words ("test split of digits", "files of new-digits").

    Raises:
        DatasetError: the bundle trained on every file of its own folder, or on `data_dir` (or a folder it holds or
            lies in), or no file of its classes is there.
    """
    dataset = find_dataset(data_dir, metadata["kind"], class_names=list(metadata["class_names"]))
    root = (metadata.get("data") or {}).get("root")
    if root and Path(root).resolve() == data_dir.resolve():
        split, indices = held_out_split(dataset, metadata)
        if not indices:
            raise DatasetError(
                f"the bundle trained on every file of {data_dir}: none is held out to calibrate on; give another "
                "folder of labelled files, or copy the calibration of the bundle of its measured run "
                "(calibrate BUNDLE --from OTHER_BUNDLE)"
            )
        fitted_on = f"{split} split of {data_dir.resolve().name}"
    else:
        trained = training_data_under(metadata, data_dir)
        if trained:
            overlap = "" if Path(trained) == data_dir.resolve() else f", and {data_dir} holds or lies in that folder"
            raise DatasetError(
                f"the bundle trained on {trained}{overlap}: calibrated on files it learned from, it would look surer "
                "than it is; give its own training folder (its held-out split is used) or labelled files it never saw"
            )
        indices = list(range(len(dataset.files)))
        fitted_on = f"files of {data_dir.resolve().name}"
    if not indices:
        raise DatasetError(f"no files of the bundle's classes under {data_dir}")
    labels = np.asarray(dataset.labels)[indices]
    return [dataset.files[i] for i in indices], labels, fitted_on


def recorded_splits(dataset: Dataset, metadata: dict[str, Any]) -> dict[str, list[int]]:
    """{"train", "validation", "test": file indices} of the bundle's own training folder, recomputed from the split
    settings its metadata records."""
    training = metadata.get("training") or {}
    config = train_config_from_dict(training.get("config") or {})
    return split_dataset(
        dataset,
        config.validation_percent,
        config.test_percent,
        training.get("group_pattern"),
        config.split_salt,
        tuple(config.validation_groups),
        tuple(config.test_groups),
    )


def held_out_split(dataset: Dataset, metadata: dict[str, Any]) -> tuple[str, list[int]]:
    """The split of the bundle's own training folder that training reported (test, else validation), recomputed
    from the metadata's split settings, and its file indices; ("test", []) when every file trained."""
    splits = recorded_splits(dataset, metadata)
    return next(((name, splits[name]) for name in HELD_OUT_SPLITS if splits[name]), (HELD_OUT_SPLITS[0], []))


def calibrate_from(bundle_dir: str | Path, other_dir: str | Path) -> dict[str, Any]:
    """Copy the calibration and familiarity threshold of `other_dir`, a bundle of the same recipe, into
    `bundle_dir`'s metadata.json, recording where they came from.

    Returns:
        summary(…) of the sections written.

    Raises:
        BundleError: either bundle cannot be read, `other_dir` has no calibration, or the two differ in kind,
            classes, preprocessing or serving views.
    """
    bundle_dir, other_dir = Path(bundle_dir), Path(other_dir)
    metadata, other = read_metadata(bundle_dir), read_metadata(other_dir)
    if bundle_dir.resolve() == other_dir.resolve():
        raise BundleError(f"--from {other_dir} is the bundle itself; expected another bundle of the same recipe")
    missing = [section for section in TRUST_SECTIONS if section not in other]
    if missing:
        raise BundleError(
            f"{other_dir} has no {' or '.join(missing)} to copy (it trained on every file, or held out too few); "
            "calibrate it first"
        )
    if other["familiarity"].get("statistic") == FEATURE_STATISTIC:
        raise BundleError(
            f"{other_dir}'s familiarity threshold measures distances in its own model's inner features, which "
            f"another model does not share; calibrate {bundle_dir} on labelled files it did not train on instead"
        )
    differences = recipe_differences(metadata, other)
    if differences:
        raise BundleError(
            f"{other_dir} is not of the same recipe as {bundle_dir}, so its calibration does not apply: "
            + "; ".join(differences)
        )
    sections = {section: dict(other[section]) for section in TRUST_SECTIONS}
    for section in sections.values():
        fitted_on = str(section.get("fitted_on", "held-out files"))
        section["fitted_on"] = f"{fitted_on} split of {other_dir.name}" if fitted_on in HELD_OUT_SPLITS else fitted_on
        section["copied_from"] = other_dir.name
    write_trust(bundle_dir, sections)
    return summary(bundle_dir, sections)


def recipe_differences(metadata: dict[str, Any], other: dict[str, Any]) -> list[str]:
    """What makes two bundles' scores incomparable, in words: kind, class names (and their order), preprocessing
    (defaults filled in) and serving views; [] when they are alike."""
    differences = [
        f"{key}: {metadata.get(key)} here, {other.get(key)} there"
        for key in ("kind", "class_names")
        if metadata.get(key) != other.get(key)
    ]
    if differences:
        return differences
    mine, theirs = to_dict(preprocessing_from_metadata(metadata)), to_dict(preprocessing_from_metadata(other))
    differences += [
        f"preprocessing.{field}: {mine[field]} here, {theirs.get(field)} there"
        for field in mine
        if mine[field] != theirs.get(field)
    ]
    views = serving_from_metadata(metadata, metadata["kind"]), serving_from_metadata(other, other["kind"])
    if views[0] != views[1]:
        differences.append(f"serving: {views[0]} here, {views[1]} there")
    return differences


def write_trust(bundle_dir: Path, sections: dict[str, dict[str, Any]]) -> None:
    """Replace the bundle's calibration and familiarity sections with `sections`, and redraw its report.png with
    the reliability diagram when the sections carry one and the metadata its training history; everything else is
    copied byte for byte. The bundle is rebuilt in a staging folder and swapped into place."""
    bundle_dir = bundle_dir.resolve()
    metadata = {**read_metadata(bundle_dir), **sections}
    validate_metadata(metadata, bundle_dir / METADATA_FILE)
    with replace_when_complete(bundle_dir) as staging:
        shutil.copytree(bundle_dir, staging, dirs_exist_ok=True, symlinks=True)
        if "reliability" in sections["calibration"] and redraw_report(metadata, staging / REPORT_FILE):
            metadata["files"] = {**metadata["files"], REPORT_FILE: file_digest(staging / REPORT_FILE)}
        (staging / METADATA_FILE).write_text(json.dumps(metadata, indent=2) + "\n")
    logger.info("wrote the calibration and familiarity threshold into %s", bundle_dir / METADATA_FILE)


def redraw_report(metadata: dict[str, Any], path: Path) -> bool:
    """Draw report.png from the metadata (training history, held-out metrics, calibration); False, with nothing
    drawn, when the metadata lacks the history or the bundle has no report.png to replace."""
    from app.report import plot_report

    history = (metadata.get("training") or {}).get("history") or {}
    if "loss" not in history or REPORT_FILE not in metadata.get("files", {}):
        return False
    metrics = metadata.get("metrics") or {}
    split = metrics.get("evaluated_on")
    evaluation = metrics.get(split) if split else None
    plot_report(history, evaluation, metadata["class_names"], split, path, metadata["calibration"])
    return True


def summary(bundle_dir: Path, sections: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The command's JSON line: the bundle, what the sections were fitted on, the temperature, the ECE before and
    after (and by chance alone), and the familiarity threshold with the share of the fitted files below it."""
    calibration, familiarity = sections["calibration"], sections["familiarity"]
    return {
        "bundle": str(bundle_dir),
        "fitted_on": calibration.get("fitted_on"),
        "files": calibration.get("files"),
        "temperature": calibration.get("temperature"),
        "ece_before": calibration.get("ece_before"),
        "ece_after": calibration.get("ece_after"),
        "ece_by_chance": calibration.get("ece_by_chance"),
        "familiarity_statistic": familiarity.get("statistic"),
        "familiarity_threshold": familiarity.get("threshold"),
        "share_below_on_fitted": familiarity.get("share_below_on_fitted"),
    }
