"""The dashboard's side of bundles: what the pickers show, example files, one cached Predictor per bundle.

Finding and reading bundles is app.bundle's job; this module adds what only the dashboard needs.
"""

from __future__ import annotations

import contextlib
import html
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from app import paths
from app.bundle import find_bundles
from app.config import AUDIO_EXTENSIONS, IMAGE_EXTENSIONS

_PREDICTORS: dict[tuple[str, int], object] = {}
_LOCK = threading.Lock()
SAMPLES_PER_CLASS = 6  # at most this many example files per class are offered


@dataclass(frozen=True)
class BundleInfo:
    """What the pickers show before a model is loaded."""

    name: str
    path: Path
    kind: str
    class_names: tuple[str, ...]


def list_bundle_infos(kind: str, models_dir: Path | None = None, extra_dirs: Sequence[Path] = ()) -> list[BundleInfo]:
    """Bundles of one kind ("audio" or "image") under `models_dir` (default app.paths.MODELS_DIR), and under
    `extra_dirs` (a visitor's own models, see app.ui.workspace), with their class names: those with example files
    first, then by name. Damaged bundles are left out, and so is a bundle of `extra_dirs` named as one listed before.
    """
    infos: list[BundleInfo] = []
    found: dict[str, tuple[Path, dict]] = {}  # by name: the dropdown lists names
    for folder in (models_dir or paths.MODELS_DIR, *extra_dirs):
        for bundle_dir, metadata in find_bundles(kind, folder, required=("class_names",)).items():
            found.setdefault(bundle_dir.name, (bundle_dir, metadata))
    for bundle_dir, metadata in found.values():
        try:
            class_names = tuple(str(name) for name in metadata["class_names"])
        except TypeError:  # not a list of names: a damaged bundle
            continue
        infos.append(BundleInfo(bundle_dir.name, bundle_dir, kind, class_names))
    # Bundles with example files first, so the dashboard opens on something to try.
    return sorted(infos, key=lambda info: (not sample_files(info), info.name))


def get_predictor(bundle_dir: Path):
    """The Predictor of a bundle, loaded once per bundle version (keyed by metadata.json's mtime); a retrained
    bundle is loaded afresh and its earlier version dropped.

    Raises:
        app.errors.BundleError: missing or altered model files.
    """
    from app.predict import Predictor

    bundle_dir = Path(bundle_dir).resolve()
    key = (str(bundle_dir), (bundle_dir / paths.METADATA_FILE).stat().st_mtime_ns)
    with _LOCK:
        predictor = _PREDICTORS.get(key)
        if predictor is None:
            predictor = Predictor.load(bundle_dir)
            for old_key in [old for old in _PREDICTORS if old[0] == key[0]]:  # an earlier version of this bundle
                del _PREDICTORS[old_key]
            _PREDICTORS[key] = predictor
    return predictor


def warm_up(bundle_dirs: list[Path]) -> threading.Thread:
    """Load these bundles' Predictors in a background thread, so the first Predict is fast."""

    def load() -> None:
        for bundle_dir in bundle_dirs:
            with contextlib.suppress(Exception):  # a broken bundle reports itself when the user predicts
                get_predictor(bundle_dir)

    thread = threading.Thread(target=load, name="onepipe-warm-up", daemon=True)
    thread.start()
    return thread


def sample_files(info: BundleInfo) -> dict[str, list[Path]]:
    """Example files grouped by class: real ones downloaded to DOWNLOADED_SAMPLES_DIR/<bundle>/<class>/
    first, then the bundle's own <bundle>/samples/<class>/, at most SAMPLES_PER_CLASS per class. Only
    folders named after one of the bundle's classes count (a downloaded archive also has
    `_background_noise_` and words the model does not know).

    Returns:
        {class name: [files]} sorted by class; empty when there are none.
    """
    extensions = AUDIO_EXTENSIONS if info.kind == "audio" else IMAGE_EXTENSIONS
    bundle_dir, class_names = info.path, set(info.class_names)
    groups: dict[str, list[Path]] = {}
    for root in (paths.DOWNLOADED_SAMPLES_DIR / bundle_dir.name, bundle_dir / paths.SAMPLES_FOLDER):
        if not root.is_dir():
            continue
        for class_dir in sorted(p for p in root.iterdir() if p.is_dir() and p.name in class_names):
            files = sorted(p for p in class_dir.iterdir() if p.is_file() and p.name.lower().endswith(extensions))
            groups.setdefault(class_dir.name, []).extend(files)
    return {name: files[:SAMPLES_PER_CLASS] for name, files in sorted(groups.items()) if files}


def no_samples_hint(bundle_name: str) -> str:
    """How to get example files (HTML) for a bundle that has none: `data samples` where it makes them (the shipped
    bundles but cifar10), a download where one has samples, else a samples folder of its own."""
    from app.datasets.download import DATASETS
    from app.datasets.samples import SAMPLE_MAKERS

    dataset = next((name for name, source in DATASETS.items() if source.bundle == bundle_name), None)
    ways = ["make them with <code>python -m app data samples</code>"] if bundle_name in SAMPLE_MAKERS else []
    if dataset:
        ways.append(f"fetch real ones with <code>python -m app data download {dataset} --samples</code>")
    if not ways:
        folder = html.escape(f"{paths.SAMPLES_FOLDER}/<class>/")
        ways.append(f"put a few files of each class in the bundle's <code>{folder}</code>")
    return f"No example files for <b>{html.escape(bundle_name)}</b> yet: {' or '.join(ways)}; or upload your own file."
