"""A spoken digit said into the dashboard's microphone: eSpeak NG speaks "seven" (offline), Chromium's fake
microphone plays it, the Audio tab records it as WebM/Opus and the shipped spoken-digits bundle answers 7."""

from __future__ import annotations

import pytest
from ui_helpers import require_chromium

from app.audio import resample
from benchmarks.browser_harness import PROJECT_ROOT, start_voila, stop_process
from benchmarks.microphone import MICROPHONE_RATE, microphone_file, record_in_dashboard

pytestmark = [pytest.mark.slow, pytest.mark.browser]
playwright_api = pytest.importorskip("playwright.sync_api")
require_chromium(module=True)

BUNDLE = PROJECT_ROOT / "models" / "spoken-digits"  # the shipped bundle, whatever ONEPIPE_MODELS_DIR says


def test_a_spoken_digit_through_the_microphone_is_recognised(tmp_path):
    from app.datasets.synth import Voice, engine

    if not (BUNDLE / "metadata.json").is_file():
        pytest.skip(f"no bundle at {BUNDLE}")
    speaker = engine()
    speech = speaker.speak("seven", Voice(language="en-us", variant="m1"), seed=0)
    speech = resample(speech, speaker.sample_rate, MICROPHONE_RATE)
    microphone = microphone_file(0.5 * speech / abs(speech).max(), tmp_path / "seven.wav")
    models = tmp_path / "models"
    models.mkdir()
    (models / BUNDLE.name).symlink_to(BUNDLE)
    process, url = start_voila(models, log_path=tmp_path / "voila.log")
    try:
        with playwright_api.sync_playwright() as playwright:
            label = record_in_dashboard(playwright, url, microphone)
    finally:
        stop_process(process)
    assert label == "7"
