"""Paths that come from the package, never from the working directory (Voila runs in notebooks/)."""

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
# ONEPIPE_MODELS_DIR points the dashboard at other bundles (the tests use it).
MODELS_DIR = Path(os.environ.get("ONEPIPE_MODELS_DIR") or PROJECT_ROOT / "models")
# Real sample sets downloaded by `python -m app data download` for the dashboard (not committed).
DOWNLOADED_SAMPLES_DIR = PROJECT_ROOT / "data" / "samples"

METADATA_FILE = "metadata.json"
KERAS_FILE = "model.keras"
TFLITE_FILE = "model.tflite"
REPORT_FILE = "report.png"
SAMPLES_FOLDER = "samples"


def list_bundles(kind: str | None = None, models_dir: Path = MODELS_DIR) -> list[Path]:
    """Bundle folders under `models_dir` (those with a metadata.json), optionally of one kind. Hidden
    folders are left out: they are a bundle being written, or one left behind by an interrupted write.

    Args:
        kind: "audio" or "image" to keep only that kind; None keeps all.
        models_dir: where to look.

    Returns:
        Bundle folders sorted by name.
    """
    import json

    bundles = []
    for metadata_path in sorted(Path(models_dir).glob(f"*/{METADATA_FILE}")):
        if metadata_path.parent.name.startswith("."):
            continue
        try:
            bundle_kind = json.loads(metadata_path.read_text())["kind"]
        except (OSError, ValueError, KeyError, TypeError):  # a damaged bundle is left out, not fatal
            continue
        if kind is None or bundle_kind == kind:
            bundles.append(metadata_path.parent)
    return bundles
