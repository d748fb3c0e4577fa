"""Fixtures for the dashboard tests: a models folder with example files, and media made from them.

Import the fixtures into a test module (`from ui_fixtures import ui_models`); conftest.py stays the lead's.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

SAMPLES_PER_CLASS = 3


def add_samples(bundle_dir: Path, dataset_dir: Path, per_class: int = SAMPLES_PER_CLASS) -> None:
    """Copy the first `per_class` files of each class of a dataset into <bundle>/samples/<class>/."""
    for class_dir in sorted(p for p in dataset_dir.iterdir() if p.is_dir()):
        target = bundle_dir / "samples" / class_dir.name
        target.mkdir(parents=True, exist_ok=True)
        for path in sorted(class_dir.iterdir())[:per_class]:
            shutil.copy(path, target / path.name)


@pytest.fixture(scope="session")
def ui_models(tmp_path_factory, trained_models, tone_dataset, shape_dataset) -> Path:
    """A copy of `trained_models` (tones, shapes) with samples, plus `tones-bare`: the tone model without any."""
    models = tmp_path_factory.mktemp("ui-models") / "models"
    shutil.copytree(trained_models, models)
    add_samples(models / "tones", tone_dataset)
    add_samples(models / "shapes", shape_dataset)
    shutil.copytree(trained_models / "tones", models / "tones-bare")
    shutil.rmtree(models / "tones-bare" / "samples", ignore_errors=True)
    return models


def webm_opus(waveform: np.ndarray, sample_rate: int = 16000) -> bytes:
    """A mono float waveform encoded as WebM/Opus at 48 kHz, as a browser's MediaRecorder sends it."""
    from app.training.augment import encode_webm_opus

    return encode_webm_opus(waveform, sample_rate)


def write_y4m(image: Image.Image, path: Path, size: tuple[int, int] = (320, 240), frames: int = 10) -> Path:
    """A Y4M video (4:2:0) of one still picture, for Chromium's --use-file-for-fake-video-capture."""
    width, height = size
    frame = image.convert("RGB").resize(size, Image.Resampling.NEAREST).convert("YCbCr")
    y, cb, cr = (np.asarray(plane, dtype=np.uint8) for plane in frame.split())
    half = (width // 2, height // 2)
    u = np.asarray(Image.fromarray(cb).resize(half, Image.Resampling.BILINEAR), dtype=np.uint8)
    v = np.asarray(Image.fromarray(cr).resize(half, Image.Resampling.BILINEAR), dtype=np.uint8)
    with open(path, "wb") as handle:
        handle.write(f"YUV4MPEG2 W{width} H{height} F10:1 Ip A1:1 C420jpeg\n".encode())
        for _ in range(frames):
            handle.write(b"FRAME\n" + y.tobytes() + u.tobytes() + v.tobytes())
    return path


CHROMIUM = "/usr/bin/chromium"


def require_chromium(module: bool = False) -> None:
    """Skip a browser test (or a whole module) where Debian's chromium is missing, except on CI, which must
    run them all."""
    if Path(CHROMIUM).exists():
        return
    if os.environ.get("CI"):
        pytest.fail(f"{CHROMIUM} is not installed; `make chromium` installs Debian's package", pytrace=False)
    pytest.skip(f"{CHROMIUM} is not installed", allow_module_level=module)


CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    # Tests reach only 127.0.0.1: names (Voila's CDN font stylesheet among them) never resolve, online or not.
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
]
PROJECT_ROOT = Path(__file__).resolve().parent.parent


def fake_media_args(microphone: Path | None = None, camera: Path | None = None) -> list[str]:
    """Chromium flags that grant media access and play files as the microphone (WAV) and camera (Y4M)."""
    args = ["--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream"]
    if microphone is not None:
        args.append(f"--use-file-for-fake-audio-capture={microphone}")
    if camera is not None:
        args.append(f"--use-file-for-fake-video-capture={camera}")
    return args


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_voila(
    models_dir: Path,
    notebook: Path | None = None,
    log_path: Path | None = None,
    timeout: float = 60.0,
    cwd: Path = PROJECT_ROOT,
):
    """Start Voila on a free 127.0.0.1 port (by default from the project root, so voila.json applies).

    Returns:
        (process, base URL). Stop it with `stop_process(process)`.
    """
    import os
    import socket
    import subprocess
    import sys
    import time

    port = free_port()
    env = dict(os.environ, ONEPIPE_MODELS_DIR=str(models_dir))
    voila = Path(sys.executable).parent / "voila"
    notebook = notebook or PROJECT_ROOT / "notebooks" / "app.ipynb"
    log = open(log_path, "w") if log_path else subprocess.DEVNULL  # noqa: SIM115
    process = subprocess.Popen(
        [str(voila), "--no-browser", f"--port={port}", "--Voila.ip=127.0.0.1", str(notebook)],
        cwd=cwd,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"voila exited with code {process.returncode}; see {log_path}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=2):  # no page request: starts no kernel
                return process, url
        except OSError:
            time.sleep(0.3)
    stop_process(process)
    raise RuntimeError(f"voila did not answer on {url} within {timeout:.0f} s")


def stop_process(process) -> None:
    """Terminate a process we started, then kill it if it lingers."""
    import subprocess

    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
