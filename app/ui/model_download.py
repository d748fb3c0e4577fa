"""A trained bundle to take away: a .zip of its folder, offered as a download link in the page.

The zip holds `<name>/model.tflite`, `model.keras`, `metadata.json` and `report.png` (not the example files), so
that after unzipping, `Predictor.load("<name>")` and `python -m app predict <name> FILE` accept the folder. The
link carries the zip in a data URI: the dashboard's server serves no files from the visitor's workspace.

Example:
    >>> import io, json, tempfile, zipfile
    >>> from pathlib import Path
    >>> bundle = Path(tempfile.mkdtemp()) / "my-sounds-1"
    >>> bundle.mkdir()
    >>> _ = (bundle / "metadata.json").write_text(json.dumps({"kind": "audio"}))
    >>> zipfile.ZipFile(io.BytesIO(bundle_zip(bundle))).namelist()
    ['my-sounds-1/metadata.json']
"""

from __future__ import annotations

import base64
import html
import io
import zipfile
from pathlib import Path

from app.paths import KERAS_FILE, METADATA_FILE, REPORT_FILE, TFLITE_FILE

BUNDLE_FILES = (TFLITE_FILE, KERAS_FILE, METADATA_FILE, REPORT_FILE)


def bundle_zip(bundle_dir: Path) -> bytes:
    """The bundle's files (those of BUNDLE_FILES it has) zipped under a folder of the bundle's name."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name in BUNDLE_FILES:
            path = bundle_dir / name
            if path.is_file():
                archive.write(path, f"{bundle_dir.name}/{name}")
    return buffer.getvalue()


def download_link_html(bundle_dir: Path) -> str:
    """An `<a download>` link (HTML) that saves the bundle's zip as `<name>.zip`."""
    data = bundle_zip(bundle_dir)
    name = f"{bundle_dir.name}.zip"
    uri = "data:application/zip;base64," + base64.b64encode(data).decode("ascii")
    return (
        f'<a class="onepipe-download-link" download="{html.escape(name)}" href="{uri}">'
        f"⬇ Save {html.escape(name)} ({len(data) / 2**20:.1f} MB)</a>"
    )
