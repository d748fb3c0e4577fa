"""The bundles shipped in models/: complete, small, and right on their own dashboard samples and on the
inputs users bring (a phone photo of a digit on paper, a word spoken into the browser's microphone)."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFilter

from app.bundle import read_metadata
from app.datasets import synth
from app.errors import InputError
from app.paths import PROJECT_ROOT
from app.predict import Predictor
from app.training.augment import encode_webm_opus

MODELS = PROJECT_ROOT / "models"
SHIPPED = {
    "speech-commands": ("audio", ["_silence_", "_unknown_", "down", "go", "left", "no", "off", "on", "right", "stop"]),
    "spoken-digits": ("audio", [str(d) for d in range(10)]),
    "mnist": ("image", [str(d) for d in range(10)]),
    "cifar10": ("image", ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]),
}
MAX_BUNDLE_BYTES = 5 * 1024 * 1024


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_bundle_is_complete_small_and_verified(name):
    bundle = MODELS / name
    metadata = read_metadata(bundle)
    kind, first_classes = SHIPPED[name]
    assert metadata["kind"] == kind
    assert metadata["class_names"][: len(first_classes)] == first_classes
    for key in ("preprocessing", "metrics", "data", "training", "versions", "files"):
        assert metadata[key], key
    assert metadata["training"]["command"].startswith("python -m app train")
    assert metadata["metrics"]["keras_litert_max_abs_difference"] < 1e-4
    size = sum(path.stat().st_size for path in bundle.rglob("*") if path.is_file())
    assert size <= MAX_BUNDLE_BYTES, f"{name} is {size / 1e6:.1f} MB"
    Predictor.load(bundle)  # sha256 of the served model checked


@pytest.mark.parametrize("name", ["speech-commands", "spoken-digits", "mnist"])
def test_dashboard_samples_cover_every_class_and_are_recognised(name):
    predictor = Predictor.load(MODELS / name)
    samples = sorted(path for path in predictor.samples_dir.glob("*/*") if path.is_file())
    assert {path.parent.name for path in samples} == set(predictor.class_names)
    correct = [predictor(path, top_k=1)[0]["label"] == path.parent.name for path in samples]
    # the samples show the model as it is (mistakes included), but most must be right
    assert np.mean(correct) >= 0.85, f"{name}: {np.mean(correct):.0%} of {len(samples)} samples right"


# Digits as a hand with a marker draws them: strokes in a unit box (x right, y down).
MARKER_STROKES = {
    0: [[(0.5 + 0.32 * np.sin(t), 0.5 - 0.45 * np.cos(t)) for t in np.linspace(0, 2 * np.pi, 40)]],
    1: [[(0.42, 0.2), (0.55, 0.05), (0.55, 0.95)]],
    4: [[(0.6, 0.05), (0.15, 0.65), (0.85, 0.65)], [(0.62, 0.35), (0.62, 0.95)]],
    7: [[(0.15, 0.08), (0.85, 0.08), (0.4, 0.95)]],
    3: [
        [
            (0.2, 0.15),
            (0.5, 0.05),
            (0.78, 0.18),
            (0.75, 0.38),
            (0.45, 0.5),
            (0.8, 0.62),
            (0.8, 0.85),
            (0.5, 0.95),
            (0.18, 0.85),
        ]
    ],
}


def phone_photo(digit: int, rotate_exif: bool) -> bytes:
    """A 3000×4000 JPEG of a dark marker digit on unevenly lit white paper, maybe stored sideways."""
    gradient = np.linspace(215, 245, 3000, dtype=np.float32)[None, :].repeat(4000, axis=0)
    paper = Image.fromarray(gradient.astype(np.uint8))
    draw = ImageDraw.Draw(paper)
    left, top, size = 1000, 1400, 1100
    for stroke in MARKER_STROKES[digit]:
        points = [(left + x * size * 0.8, top + y * size) for x, y in stroke]
        draw.line(points, fill=35, width=90, joint="curve")
    photo = paper.filter(ImageFilter.GaussianBlur(4)).convert("RGB")
    buffer = io.BytesIO()
    if rotate_exif:  # the camera stored it rotated and says so in EXIF (orientation 6: rotate 90° clockwise)
        exif = Image.Exif()
        exif[0x0112] = 6
        photo.rotate(90, expand=True).save(buffer, "JPEG", quality=85, exif=exif)
    else:
        photo.save(buffer, "JPEG", quality=85)
    return buffer.getvalue()


def test_a_phone_photo_of_a_dark_digit_on_paper_works_with_the_digit_model():
    predictor = Predictor.load(MODELS / "mnist")
    digits = sorted(MARKER_STROKES)
    labels = [predictor(phone_photo(d, rotate_exif=d % 2 == 1), top_k=1)[0]["label"] for d in digits]
    assert labels == [str(d) for d in digits]


def spoken(word: str, seed: int) -> np.ndarray:
    """A word said by eSpeak NG in a voice and rate of its own, (16000,) float32 at 16 kHz."""
    random = np.random.default_rng(seed)
    voice = synth.Voice("en-us", "m3", rate=160, pitch=45, pitch_range=50)
    return (
        synth.synthesize_word(word, voice, random, 16000, signal_to_noise_range=(25.0, 35.0)).astype(np.float32) / 32768
    )


@pytest.mark.parametrize("word", ["yes", "no", "left", "stop"])
def test_a_browser_recording_of_a_spoken_word_is_recognised(word):
    """The microphone path without the browser: 2.5 s at 48 kHz, quieter, through WebM/Opus."""
    predictor = Predictor.load(MODELS / "speech-commands")
    recording = np.zeros(int(2.5 * 16000), np.float32)
    recording[12000:28000] = spoken(word, seed=11) * 0.3
    assert predictor(encode_webm_opus(recording, 16000), top_k=1)[0]["label"] == word


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_recorded_metrics_are_reported(name):
    """A bundle scores its held-out split, or says it trained on every file and shows the run's curves."""
    metadata = read_metadata(MODELS / name)
    split = metadata["metrics"]["evaluated_on"]
    if split is None:
        assert metadata["data"]["split"]["validation"] == metadata["data"]["split"]["test"] == 0
        assert metadata["training"]["epochs_run"] == metadata["training"]["config"]["epochs"]
        assert 0.5 < metadata["training"]["history"]["accuracy"][-1] <= 1.0
    else:
        metrics = metadata["metrics"][split]
        assert 0.5 < metrics["accuracy"] <= 1.0 and metrics["count"] > 0, json.dumps(metrics)[:500]


@pytest.mark.slow
@pytest.mark.browser
def test_speaking_into_the_dashboard_microphone(tmp_path):
    """Chromium's fake microphone plays a spoken "yes"; the dashboard on the shipped models hears "yes"."""
    playwright_api = pytest.importorskip("playwright.sync_api")
    from fixtures_data import write_wav
    from ui_helpers import require_chromium

    from benchmarks.browser_harness import CHROMIUM, CHROMIUM_ARGS, fake_media_args, start_voila, stop_process

    require_chromium()
    wav = write_wav(tmp_path / "yes.wav", np.concatenate([np.zeros(4000, np.float32), spoken("yes", seed=5)]))
    process, url = start_voila(MODELS, log_path=tmp_path / "voila.log")
    try:
        with playwright_api.sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=CHROMIUM,
                args=[*CHROMIUM_ARGS, *fake_media_args(microphone=wav)],
            )
            page = browser.new_page()
            page.goto(url)
            audio = page.locator(".onepipe-tab:visible")
            audio.locator(".onepipe-record").wait_for(timeout=60_000)
            audio.locator(".onepipe-record").click()
            audio.get_by_text("Recording…").wait_for(timeout=30_000)
            page.wait_for_timeout(1500)
            audio.locator(".onepipe-record").click()
            audio.locator(".onepipe-result .onepipe-source", has_text="your recording").wait_for(timeout=30_000)
            label = audio.locator(".onepipe-result .onepipe-top-label").inner_text().strip()
            browser.close()
    finally:
        stop_process(process)
    assert label == "yes"


def test_a_flat_image_and_a_constant_offset_are_refused_not_guessed():
    with pytest.raises(InputError, match="one flat colour; expected a picture with something in it"):
        Predictor.load(MODELS / "mnist")(Image.new("L", (28, 28), 0))
    with pytest.raises(InputError, match="silent"):
        Predictor.load(MODELS / "spoken-digits")(np.full(8000, 0.25, np.float32))  # a DC offset, no sound


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_a_calibrated_bundle_records_where_and_how_well(name):
    """A shipped bundle with calibration says what it was fitted on, and its ECE fell; its threshold flags ~5 %."""
    metadata = read_metadata(MODELS / name)
    if "calibration" not in metadata:
        pytest.skip(f"{name} carries no calibration")
    calibration, familiarity = metadata["calibration"], metadata["familiarity"]
    assert calibration["fitted_on"] and calibration["files"] >= 30
    assert calibration["ece_after"] <= calibration["ece_before"]
    assert 0.0 <= familiarity["share_below_on_fitted"] <= 0.1
    assert Predictor.load(MODELS / name).familiarity_threshold == familiarity["threshold"]
