"""Familiarity flag of the shipped bundles: the share of inputs like their training data that it flags (target
≤ 5 % within two standard errors) and of inputs unlike it that it flags (targets below), as JSON.

Per bundle (each skipped, said on stderr, when its bundle or data is missing):

- mnist: unseen = the validation split of mnist/ (thresholds are fitted on the test split, as training fits
  them); unlike = cifar10/, target ≥ 90 % flagged.
- cifar10: unseen = a fixed sample of the folder of cifar10/ and cifar10_train/ it did not train on (of its own
  held-out split when it trained on both), half to fit, half to measure; unlike = mnist/, ≥ 90 %.
- spoken-digits: unseen = the held-out speaker of a measured run (runs/digits-* or spoken-digits-*), half of
  the clips to fit, half to measure; unlike = Speech Commands clips of words that are not digits, ≥ 70 %
  (its `_silence_` noise is reported too).
- speech-commands: unseen = the validation split of its measured run runs/speech-commands (the test split to
  fit); unlike = fsdd/ (spoken digits, which its `_unknown_` class partly covers): reported, no target.

Bundles trained on every file of their folder (cifar10 excepted: the other CIFAR-10 folder is unseen) are measured on
unseen files through their measured run (in `--runs-dir`, default runs/), the same recipe with files held out;
the unlike shares are given for the shipped bundle (`flagged`) and for the measured run
(`flagged_by_measured_run`).

The threshold (and the temperature the scores are calibrated with) is the bundle's own, from the "familiarity"
and "calibration" sections of its metadata.json, when it has them (`threshold_source`: "metadata"); otherwise
both are fitted here on the fitting part, as training fits them (app.training.trust.fit_trust), and applied to
the shipped bundle and its measured run alike (`threshold_source`: "fitted here"). `alternatives` compares the
candidate statistics of app.familiarity.STATISTICS on the same probabilities, each with its threshold and
temperature fitted here on the fitting part, and the distance to the nearest class centre in the model's inner
features (`mahalanobis`, centres on every other fitting file, the threshold on the rest) where the model outputs
them. Thresholds are only ever fitted on files like the training data.
A threshold from metadata.json may have been fitted on the very files measured here (spoken-digits: its run's
whole held-out speaker; cifar10 when fitted on the folder measured here): the share is then about 5 % by
construction, and `alternatives.statistics.max_score_calibrated` gives it for a threshold fitted on the other part.

Usage:
    python benchmarks/familiarity.py --data DATA   # holds speech_commands/ fsdd/ mnist/ cifar10/ cifar10_train/
    python benchmarks/familiarity.py --data DATA --limit 500 --bundles mnist cifar10

Prints {bundle: {statistic, threshold, threshold_source, in_distribution, out_of_distribution, targets, met, …}}.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

PROJECT_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT_ROOT))

import numpy as np  # noqa: E402

from app.bundle import read_metadata  # noqa: E402
from app.calibrate_bundle import recipe_differences  # noqa: E402
from app.calibration import apply_temperature, fit_temperature  # noqa: E402
from app.class_folders import data_files, find_dataset  # noqa: E402
from app.errors import OnePipeError  # noqa: E402
from app.evaluate import served_in_batches  # noqa: E402
from app.familiarity import (  # noqa: E402
    FEATURE_STATISTIC,
    STATISTIC,
    STATISTICS,
    familiarity_scores,
    feature_scores,
    fit_threshold,
)
from app.features import extract_features  # noqa: E402
from app.predict import Predictor  # noqa: E402
from app.training.trust import FEATURE_MIN_FILES_PER_CLASS, SHARE_BELOW, feature_familiarity, fit_trust  # noqa: E402
from benchmarks.accuracy import split_files, split_settings  # noqa: E402

BUNDLES = ("mnist", "cifar10", "spoken-digits", "speech-commands")
DIGIT_WORDS = {"zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"}
IN_DISTRIBUTION_TARGET = 0.05  # at most this share of unseen inputs like the training data is flagged (± 2 SE)
Item = TypeVar("Item")


@dataclass
class Plan:
    """What to measure for one shipped bundle.

    shipped: the bundle's folder; measured: the bundle whose held-out files are unseen (a measured run, or
    `shipped` itself when it has held-out files). fit and measure: (files, labels in the bundle's class order)
    like the training data, the first to fit thresholds and temperatures on, the second to measure on.
    unlike: {name: (files, target share flagged or None)}.
    """

    shipped: Path
    measured: Path
    fit: tuple[list[Path], np.ndarray]
    measure: tuple[list[Path], np.ndarray]
    fit_description: str
    measure_description: str
    unlike: dict[str, tuple[list[Path], float | None]] = field(default_factory=dict)


def sample(items: Sequence[Item], limit: int, seed: int) -> list[Item]:
    """At most `limit` of `items`, drawn with a fixed seed, in their original order."""
    if len(items) <= limit:
        return list(items)
    chosen = set(random.Random(seed).sample(range(len(items)), limit))
    return [item for index, item in enumerate(items) if index in chosen]


def labelled(pairs: Sequence[tuple[str, Path]], class_names: Sequence[str]) -> tuple[list[Path], np.ndarray]:
    """(files, labels) from (class name, file) pairs."""
    return [path for _, path in pairs], np.array([class_names.index(name) for name, _ in pairs], np.int64)


def halves(pairs: Sequence[tuple[str, Path]]) -> tuple[list[tuple[str, Path]], list[tuple[str, Path]]]:
    """Alternate files of a sorted list: every class and speaker falls in both halves."""
    ordered = sorted(pairs, key=lambda pair: (pair[0], str(pair[1])))
    return ordered[0::2], ordered[1::2]


def held_out_parts(bundle: Path, data_dir: Path) -> dict[str, list[tuple[str, Path]]]:
    """{"validation": …, "test": …}: (class name, file) of the bundle's held-out splits of `data_dir`."""
    metadata = read_metadata(bundle)
    settings = split_settings(metadata, {})
    return {part: split_files(data_dir, metadata, part, settings) for part in ("validation", "test")}


def measured_run(runs_dir: Path, prefixes: Sequence[str], shipped: Path) -> Path | None:
    """The measured run of `shipped`: a bundle in `runs_dir` whose name starts with one of `prefixes`, of the same
    recipe (app.calibrate_bundle.recipe_differences: kind, classes, preprocessing, views), with held-out files.
    The one `shipped` copied its familiarity threshold from (or the first of those it was pooled from), if it is
    among them, else the newest; None if none."""
    metadata = read_metadata(shipped)
    candidates = []
    for folder in sorted(runs_dir.glob("*")) if runs_dir.is_dir() else []:
        if not folder.name.startswith(tuple(prefixes)) or not (folder / "metadata.json").is_file():
            continue
        try:
            run_metadata = read_metadata(folder)
        except OnePipeError:
            continue
        split = (run_metadata.get("data") or {}).get("split") or {}
        if not recipe_differences(metadata, run_metadata) and (split.get("test") or split.get("validation")):
            candidates.append(((folder / "metadata.json").stat().st_mtime, folder))
    familiarity = metadata.get("familiarity") or {}
    pooled_from = [Path(run).name for run in familiarity.get("pooled_from") or {}]
    source = familiarity.get("copied_from") or next(iter(pooled_from), None)
    named = [folder for _, folder in candidates if folder.name == source]
    return named[0] if named else (max(candidates)[1] if candidates else None)


def plan_mnist(models: Path, data: Path, runs: Path, limit: int, seed: int) -> Plan:
    shipped = models / "mnist"
    names = read_metadata(shipped)["class_names"]
    parts = held_out_parts(shipped, data / "mnist")
    return Plan(
        shipped,
        shipped,
        labelled(parts["test"], names),
        labelled(parts["validation"], names),
        "test split of mnist/",
        "validation split of mnist/",
        {"cifar10": (sample(data_files(data / "cifar10"), limit, seed), 0.90)},
    )


def plan_cifar10(models: Path, data: Path, runs: Path, limit: int, seed: int) -> Plan:
    shipped = models / "cifar10"
    metadata = read_metadata(shipped)
    names = metadata["class_names"]
    recorded = metadata.get("data") or {}
    trained_on = Path(recorded.get("root") or "").name
    extra = {Path(folder).name for folder in recorded.get("extra_training_data") or {}}
    unseen = "cifar10" if trained_on == "cifar10_train" else "cifar10_train"  # the folder it did not learn from
    if unseen in extra:  # it learned from both folders: its own held-out split is all it never saw
        parts = held_out_parts(shipped, data / trained_on)
        pairs = sample(parts["validation"] + parts["test"], 2 * limit, seed)
        where = f"of the held-out split of {trained_on}/"
    else:
        dataset = find_dataset(data / unseen, "image", class_names=names)
        chosen = sample(range(len(dataset.files)), 2 * limit, seed)
        pairs = [(names[dataset.labels[index]], dataset.files[index]) for index in chosen]
        where = f"of {unseen}/"
    fit, measure = halves(pairs)
    return Plan(
        shipped,
        shipped,
        labelled(fit, names),
        labelled(measure, names),
        f"{len(fit)} images {where}",
        f"{len(measure)} other images {where}",
        {"mnist": (sample(data_files(data / "mnist"), limit, seed), 0.90)},
    )


def plan_spoken_digits(models: Path, data: Path, runs: Path, limit: int, seed: int) -> Plan:
    shipped = models / "spoken-digits"
    names = read_metadata(shipped)["class_names"]
    run = measured_run(runs, ("digits-", "spoken-digits-"), shipped)
    if run is None:
        raise OnePipeError(f"no measured run (digits-* or spoken-digits-* with a held-out speaker) in {runs}")
    parts = held_out_parts(run, data / "fsdd")
    fit, measure = halves(parts["test"] or parts["validation"])
    commands = data / "speech_commands"
    words = [path for folder in sorted(commands.iterdir()) if folder.is_dir() and not folder.name.startswith("_")
             for path in data_files(folder)]  # fmt: skip
    other_unknown = [path for path in data_files(commands / "_unknown_") if path.name.split("_")[0] not in DIGIT_WORDS]
    return Plan(
        shipped,
        run,
        labelled(fit, names),
        labelled(measure, names),
        f"half the held-out speaker's clips of fsdd/ (measured run {run.name})",
        f"the other half (measured run {run.name})",
        {
            "speech_commands_non_digit_words": (sample(words + other_unknown, limit, seed), 0.70),
            "speech_commands_silence": (sample(data_files(commands / "_silence_"), limit, seed), None),
        },
    )


def plan_speech_commands(models: Path, data: Path, runs: Path, limit: int, seed: int) -> Plan:
    shipped = models / "speech-commands"
    names = read_metadata(shipped)["class_names"]
    run = runs / "speech-commands"
    if measured_run(runs, ("speech-commands",), shipped) != run:
        raise OnePipeError(f"no measured run with held-out speakers at {run}")
    parts = held_out_parts(run, data / "speech_commands")
    return Plan(
        shipped,
        run,
        labelled(parts["test"], names),
        labelled(parts["validation"], names),
        f"test split of speech_commands/ (measured run {run.name})",
        f"validation split of speech_commands/ (measured run {run.name})",
        {"fsdd_digits": (sample(data_files(data / "fsdd"), limit, seed), None)},
    )


PLANS: dict[str, Callable[[Path, Path, Path, int, int], Plan]] = {
    "mnist": plan_mnist,
    "cifar10": plan_cifar10,
    "spoken-digits": plan_spoken_digits,
    "speech-commands": plan_speech_commands,
}


@dataclass
class Served:
    """What a bundle serves for some files: (kept, n_classes) probabilities before calibration, (kept, width) inner
    features (None for a model without them), and the indices of the files kept (readable)."""

    rows: np.ndarray
    inner: np.ndarray | None
    kept: np.ndarray


def served(predictor: Predictor, files: Sequence[Path]) -> Served:
    """Served outputs of `files` (see Served)."""
    extraction = extract_features(files, predictor.config, progress=False)
    if len(extraction.arrays) == 0:
        return Served(np.zeros((0, len(predictor.class_names))), None, np.asarray(extraction.kept))
    rows, inner = served_in_batches(predictor, extraction.arrays)
    return Served(rows, inner, np.asarray(extraction.kept))


def scores_of(outputs: Served, temperature: float, statistic: str, gaussians: dict | None = None) -> np.ndarray:
    """Familiarity scores of served outputs under `statistic`: of the probabilities after temperature scaling, or
    of the inner features against `gaussians` (class_means and whitening) for FEATURE_STATISTIC."""
    if statistic == FEATURE_STATISTIC:
        if outputs.inner is None or gaussians is None:
            raise ValueError("the feature statistic needs a model that outputs its inner features, and class centres")
        return feature_scores(outputs.inner, gaussians) if len(outputs.inner) else np.zeros(0)
    return familiarity_scores(apply_temperature(outputs.rows, temperature), statistic)


def share_below(
    outputs: Served, temperature: float, threshold: float, statistic: str = STATISTIC, gaussians: dict | None = None
) -> float:
    """The share of inputs whose familiarity score is below the threshold."""
    if len(outputs.rows) == 0:
        return float("nan")
    return round(float(np.mean(scores_of(outputs, temperature, statistic, gaussians) < threshold)), 4)


def trust_settings(shipped: Predictor, fit: Served, labels: np.ndarray, described: str) -> dict[str, Any]:
    """statistic, temperature, threshold (and the class centres of the feature statistic) and where they come
    from: the shipped bundle's metadata, or fitted on `fit` here as training fits them."""
    familiarity = shipped.metadata.get("familiarity") or {}
    if familiarity.get("statistic") in (STATISTIC, FEATURE_STATISTIC) and "threshold" in familiarity:
        return {
            "statistic": familiarity["statistic"],
            "temperature": shipped.temperature,
            "threshold": float(familiarity["threshold"]),
            "threshold_source": "metadata",
            "threshold_fitted_on": familiarity.get("fitted_on"),
            "gaussians": familiarity if familiarity["statistic"] == FEATURE_STATISTIC else None,
        }
    sections = fit_trust(fit.rows, labels, described, fit.inner)
    fitted = sections["familiarity"]
    return {
        "statistic": fitted["statistic"],
        "temperature": sections["calibration"]["temperature"],
        "threshold": round(fitted["threshold"], 6),
        "threshold_source": "fitted here",
        "threshold_fitted_on": described,
        "gaussians": fitted if fitted["statistic"] == FEATURE_STATISTIC else None,
    }


def alternatives(fit: Served, labels: np.ndarray, measure: Served, unlike: dict[str, Served]) -> dict:
    """Every candidate statistic, with and without a temperature fitted on `fit`: threshold and shares flagged; and
    the feature statistic (class centres on every other file of `fit`, the threshold on the rest) when the model
    outputs its inner features and `fit` has FEATURE_MIN_FILES_PER_CLASS files of every class."""
    fitted_temperature = fit_temperature(fit.rows, labels)
    compared: dict[str, Any] = {}
    for statistic in STATISTICS:
        for suffix, temperature in (("", 1.0), ("_calibrated", fitted_temperature)):
            threshold = fit_threshold(scores_of(fit, temperature, statistic), SHARE_BELOW)
            compared[statistic + suffix] = {
                "threshold": round(threshold, 6),
                "in_distribution_flagged": share_below(measure, temperature, threshold, statistic),
                **{name: share_below(rows, temperature, threshold, statistic) for name, rows in unlike.items()},
            }
    n_classes = fit.rows.shape[1]
    if fit.inner is not None and np.bincount(labels, minlength=n_classes).min() >= FEATURE_MIN_FILES_PER_CLASS:
        section = feature_familiarity(fit.inner, labels, n_classes, "fitting part")
        threshold = section["threshold"]
        compared[FEATURE_STATISTIC] = {
            "threshold": round(threshold, 6),
            "in_distribution_flagged": share_below(measure, 1.0, threshold, FEATURE_STATISTIC, section),
            **{name: share_below(rows, 1.0, threshold, FEATURE_STATISTIC, section) for name, rows in unlike.items()},
        }
    return {"temperature_fitted_here": fitted_temperature, "statistics": compared}


def measure_bundle(plan: Plan) -> dict[str, Any]:
    """The JSON object of one bundle (see the module docstring)."""
    shipped = Predictor.load(plan.shipped)
    measured = shipped if plan.measured == plan.shipped else Predictor.load(plan.measured)
    fit, measure = served(measured, plan.fit[0]), served(measured, plan.measure[0])
    fit_labels = plan.fit[1][fit.kept]
    trust = trust_settings(shipped, fit, fit_labels, plan.fit_description)
    statistic, temperature, threshold = trust["statistic"], trust["temperature"], trust["threshold"]
    gaussians = trust.pop("gaussians")
    if statistic == FEATURE_STATISTIC and measured is not shipped and trust["threshold_source"] == "metadata":
        raise ValueError(f"{plan.shipped.name}'s inner features are its own: measure it on files it never saw")
    in_share = share_below(measure, temperature, threshold, statistic, gaussians)
    standard_error = float(np.sqrt(in_share * (1 - in_share) / max(len(measure.rows), 1)))
    result: dict[str, Any] = {
        **trust,
        "shipped_bundle": plan.shipped.name,
        "measured_run": None if measured is shipped else plan.measured.name,
        "in_distribution": {
            "data": plan.measure_description,
            "files": len(measure.rows),
            "flagged": in_share,
            "standard_error": round(standard_error, 4),
            "fitting_files": len(fit.rows),
        },
        "out_of_distribution": {},
        "targets": {"in_distribution_flagged_at_most": IN_DISTRIBUTION_TARGET},
        # a threshold fitted to flag 5 % of one sample flags 5 % of another give or take its sampling error
        "met": {"in_distribution": bool(in_share - 2 * standard_error <= IN_DISTRIBUTION_TARGET)},
    }
    unlike_outputs: dict[str, Served] = {}
    for name, (files, target) in plan.unlike.items():
        outputs = served(shipped, files)
        unlike_outputs[name] = outputs
        entry: dict[str, Any] = {
            "files": len(outputs.rows),
            "flagged": share_below(outputs, temperature, threshold, statistic, gaussians),
        }
        if measured is not shipped:
            run_outputs = served(measured, files)
            entry["flagged_by_measured_run"] = share_below(run_outputs, temperature, threshold, statistic, gaussians)
            unlike_outputs[name] = run_outputs  # alternatives compare statistics on one model: the measured one
        if len(outputs.rows):  # the shipped bundle's most frequent answer to these inputs
            entry["most_answered"] = shipped.class_names[int(np.bincount(outputs.rows.argmax(axis=1)).argmax())]
        result["out_of_distribution"][name] = entry
        if target is not None:
            result["targets"][f"{name}_flagged_at_least"] = target
            result["met"][name] = bool(entry["flagged"] >= target)
    result["alternatives"] = alternatives(fit, fit_labels, measure, unlike_outputs)
    return result


def run(data: Path, models: Path, runs: Path, bundles: Sequence[str], limit: int, seed: int) -> dict[str, Any]:
    """{bundle: measurements} for each of `bundles` whose bundle and data are there."""
    results: dict[str, Any] = {}
    for name in bundles:
        if not (models / name / "metadata.json").is_file():
            print(f"skipped {name}: no bundle at {models / name}", file=sys.stderr)
            continue
        try:
            plan = PLANS[name](models, data, runs, limit, seed)
            results[name] = measure_bundle(plan)
        except (OnePipeError, FileNotFoundError, ValueError) as error:
            print(f"skipped {name}: {error}", file=sys.stderr)
    return results


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="folder holding the datasets (see above)")
    default_models = Path(os.environ.get("ONEPIPE_MODELS_DIR") or PROJECT_ROOT / "models")
    parser.add_argument("--models-dir", type=Path, default=default_models, help="shipped bundles (default: models)")
    parser.add_argument("--runs-dir", type=Path, default=PROJECT_ROOT / "runs", help="measured runs (default: runs)")
    parser.add_argument("--bundles", nargs="+", choices=BUNDLES, default=list(BUNDLES), help="default: all four")
    parser.add_argument("--limit", type=int, default=2000, help="files per sampled set (default 2000)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the samples (default 0)")
    args = parser.parse_args(argv)
    if not args.data.is_dir():
        parser.error(f"--data {args.data} is not a folder")
    if args.limit < 2:
        parser.error("--limit must be at least 2")
    print(json.dumps(run(args.data, args.models_dir, args.runs_dir, args.bundles, args.limit, args.seed)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
