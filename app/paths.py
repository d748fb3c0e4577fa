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
