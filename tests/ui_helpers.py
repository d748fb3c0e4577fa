"""Helpers for the dashboard tests: media as a browser sends or plays them, and the Chromium check.

The `ui_models` fixture lives in conftest.py; Voila and Chromium's flags in benchmarks/browser_harness.py.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from benchmarks.browser_harness import CHROMIUM


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


def require_chromium(module: bool = False) -> None:
    """Skip a browser test (or a whole module) where Debian's chromium is missing, except on CI, which must
    run them all."""
    if Path(CHROMIUM).exists():
        return
    if os.environ.get("CI"):
        pytest.fail(f"{CHROMIUM} is not installed; `make chromium` installs Debian's package", pytrace=False)
    pytest.skip(f"{CHROMIUM} is not installed", allow_module_level=module)


# Console errors that say only that the page could not reach the internet (the tests resolve no names).
HARMLESS_ERRORS = (
    re.compile(r"Failed to load resource: net::ERR_(NAME_NOT_RESOLVED|INTERNET_DISCONNECTED|CONNECTION)"),
)


class BrowserPage:
    """A dashboard page in its own browser context, with microphone and camera allowed, loaded until Predict
    shows, and the console errors it logged."""

    def __init__(self, browser, url: str, timeout_ms: float, **context_options):
        self.context = browser.new_context(**context_options)
        self.context.grant_permissions(["microphone", "camera"])
        self.page = self.context.new_page()
        self.errors: list[str] = []
        self.page.on("console", lambda m: m.type == "error" and self.errors.append(m.text))
        self.page.on("pageerror", lambda e: self.errors.append(f"page error: {e}"))
        self.page.goto(url)
        self.page.wait_for_selector(".onepipe-predict", timeout=timeout_ms)

    def serious_errors(self) -> list[str]:
        """The console errors other than HARMLESS_ERRORS."""
        return [e for e in self.errors if not any(p.search(e) for p in HARMLESS_ERRORS)]

    def close(self) -> None:
        self.context.close()
