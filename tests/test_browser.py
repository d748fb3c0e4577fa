"""The dashboard in a real browser: Voila started here, Debian's Chromium driven by Playwright.

The microphone and webcam are Chromium's fake devices playing a generated tone and a Y4M still of a
sample picture, so the recording and snapshot paths run end to end.
"""

from __future__ import annotations

import base64
import io
from pathlib import Path

import numpy as np
import pytest
from fixtures_data import TONE_CLASSES, tone, write_wav
from PIL import Image
from ui_helpers import BrowserPage, require_chromium, write_y4m

from app.predict import Predictor
from benchmarks.browser_harness import CHROMIUM, CHROMIUM_ARGS, PROJECT_ROOT, fake_media_args, start_voila, stop_process

pytestmark = [pytest.mark.slow, pytest.mark.browser]
playwright_api = pytest.importorskip("playwright.sync_api")
require_chromium(module=True)  # fails on CI, which must test the dashboard in a real browser

ARTIFACTS = PROJECT_ROOT / "test-artifacts"
TIMEOUT_MS = 30_000
# Harmless in the browser console: the CDN font stylesheet (no name resolves in the tests), and version notes
# of shared modules.
MIC_CLASS, CAMERA_INDEX = "high", 0


@pytest.fixture(scope="module")
def media(tmp_path_factory, ui_models) -> dict[str, Path]:
    """The fake microphone's WAV and the fake camera's Y4M (a gallery picture, scaled up to 320×240)."""
    folder = tmp_path_factory.mktemp("media")
    wav = write_wav(folder / "mic.wav", tone(TONE_CLASSES[MIC_CLASS], seconds=1.0, seed=123))
    picture = sorted((ui_models / "shapes" / "samples").glob("*/*.png"))[CAMERA_INDEX]
    y4m = write_y4m(Image.open(picture), folder / "camera.y4m")
    return {"wav": wav, "y4m": y4m, "picture": picture}


@pytest.fixture(scope="module")
def voila_url(ui_models, tmp_path_factory):
    process, url = start_voila(ui_models, log_path=tmp_path_factory.mktemp("voila") / "voila.log")
    yield url
    stop_process(process)


@pytest.fixture(scope="module")
def playwright():
    with playwright_api.sync_playwright() as instance:  # one per thread: every browser here comes from it
        yield instance


@pytest.fixture(scope="module")
def browser(playwright, media):
    browser = playwright.chromium.launch(
        executable_path=CHROMIUM,
        args=[
            *CHROMIUM_ARGS,
            *fake_media_args(microphone=media["wav"], camera=media["y4m"]),
            "--autoplay-policy=no-user-gesture-required",
        ],
    )
    yield browser
    browser.close()


class Dashboard(BrowserPage):
    """A loaded dashboard page and its console errors."""

    def __init__(self, browser, url: str):
        super().__init__(browser, url, TIMEOUT_MS, viewport={"width": 1200, "height": 900})

    def tab(self, name: str):
        self.page.get_by_role("tab", name=name).click()
        panel = self.page.locator(".onepipe-tab:visible")
        panel.wait_for(timeout=TIMEOUT_MS)
        return panel

    def result(self, tab, css: str = ".onepipe-top-label") -> str:
        element = tab.locator(f".onepipe-result {css}")
        element.wait_for(timeout=TIMEOUT_MS)
        return element.inner_text().strip()

    def wait_for_change(self, tab, previous: str) -> None:
        """Wait until this tab's result panel HTML differs from `previous`."""
        element = tab.locator(".onepipe-result .widget-html-content").element_handle()
        self.page.wait_for_function("([e, old]) => e.innerHTML !== old", arg=[element, previous], timeout=TIMEOUT_MS)

    def result_html(self, tab) -> str:
        return tab.locator(".onepipe-result .widget-html-content").inner_html()


@pytest.fixture
def dashboard(browser, voila_url):
    page = Dashboard(browser, voila_url)
    yield page
    page.close()


def upload(page, tab, path: Path) -> None:
    with page.expect_file_chooser() as chooser:
        tab.locator(".onepipe-upload").click()
    chooser.value.set_files(str(path))


def test_tabs_render_predict_and_screenshots(dashboard, ui_models):
    ARTIFACTS.mkdir(exist_ok=True)
    audio = dashboard.tab("Audio")
    assert audio.locator(".onepipe-chip").all_inner_texts() == sorted(TONE_CLASSES)
    # a sample clip → Predict → the Predictor's label for that clip
    audio.locator(".onepipe-clips button").nth(1).click()
    before = dashboard.result_html(audio)
    audio.locator(".onepipe-predict").click()
    dashboard.wait_for_change(audio, before)
    clip = sorted((ui_models / "tones" / "samples" / "high").iterdir())[1]
    expected = Predictor.load(ui_models / "tones")(clip)
    assert dashboard.result(audio) == expected[0]["label"] == "high"
    assert len(audio.locator(".onepipe-bar-row").all()) == 3
    assert "ms" in dashboard.result(audio, ".onepipe-ms")
    dashboard.page.screenshot(path=str(ARTIFACTS / "dashboard-audio.png"), full_page=True)

    images = dashboard.tab("Images")
    thumbnails = images.locator(".onepipe-thumb")
    assert thumbnails.count() == 6
    thumbnails.nth(4).click()
    images.locator(".onepipe-thumb.onepipe-selected").wait_for(timeout=TIMEOUT_MS)
    images.locator(".onepipe-predict").click()
    label = dashboard.result(images)
    picture = sorted((ui_models / "shapes" / "samples").glob("*/*.png"))
    chosen = next(p for p in picture if p.parent.name == "square")
    assert label == Predictor.load(ui_models / "shapes")(chosen)[0]["label"] == "square"
    dashboard.page.screenshot(path=str(ARTIFACTS / "dashboard-images.png"), full_page=True)
    assert dashboard.serious_errors() == []


def test_microphone_records_and_predicts(dashboard, media, ui_models):
    audio = dashboard.tab("Audio")
    before = dashboard.result_html(audio)
    audio.locator(".onepipe-record").click()
    audio.get_by_text("Recording…").wait_for(timeout=TIMEOUT_MS)
    dashboard.page.wait_for_timeout(1500)
    audio.locator(".onepipe-record").click()
    dashboard.wait_for_change(audio, before)
    label = dashboard.result(audio)
    assert label == Predictor.load(ui_models / "tones")(media["wav"])[0]["label"] == MIC_CLASS
    assert "your recording" in dashboard.result(audio, ".onepipe-source")
    audio.locator(".onepipe-recorder audio").wait_for(timeout=TIMEOUT_MS)
    assert dashboard.serious_errors() == []


def test_webcam_snapshot_label_equals_the_predictor_on_that_frame(dashboard, media, ui_models):
    ARTIFACTS.mkdir(exist_ok=True)
    images = dashboard.tab("Images")
    images.locator(".onepipe-camera-toggle").click()
    images.locator(".onepipe-camera video").wait_for(timeout=TIMEOUT_MS)
    dashboard.page.wait_for_function(
        "() => { const v = document.querySelector('.onepipe-camera video'); return v && v.videoWidth > 0; }",
        timeout=TIMEOUT_MS,
    )
    images.locator(".onepipe-snapshot").click()
    label = dashboard.result(images)
    assert "webcam snapshot" in dashboard.result(images, ".onepipe-source")
    # The panel shows the exact model input; the Predictor on it gives the label shown.
    source = images.locator(".onepipe-result img.onepipe-picture").get_attribute("src")
    frame = np.asarray(Image.open(io.BytesIO(base64.b64decode(source.split(",", 1)[1]))))
    predictor = Predictor.load(ui_models / "shapes")
    probabilities = predictor.predict_features(frame[:, :, None] if frame.ndim == 2 else frame)
    assert label == predictor.postprocess(probabilities)[0]["label"]
    assert frame.shape == predictor.config.input_shape[:2] + (() if frame.ndim == 2 else (frame.shape[2],))
    dashboard.page.screenshot(path=str(ARTIFACTS / "dashboard-webcam.png"), full_page=True)
    # The fake camera shows a still picture, so the second snapshot's bytes equal the first's: still answered.
    panel = images.locator(".onepipe-result .widget-html-content").element_handle()
    dashboard.page.evaluate(
        """(panel) => { window.panelChanges = 0;
            new MutationObserver(() => window.panelChanges++).observe(panel, {childList: true, subtree: true}); }""",
        panel,
    )
    images.locator(".onepipe-snapshot").click()
    dashboard.page.wait_for_function(
        "() => window.panelChanges >= 2 && document.querySelector('.onepipe-tab:not([hidden]) .onepipe-top-label')",
        timeout=TIMEOUT_MS,
    )
    assert dashboard.result(images) == label
    images.locator(".onepipe-camera-toggle").click()
    images.locator(".onepipe-camera video").wait_for(state="detached", timeout=TIMEOUT_MS)
    assert dashboard.serious_errors() == []


def test_uploads_good_and_bad(dashboard, tmp_path, ui_models):
    ARTIFACTS.mkdir(exist_ok=True)
    audio = dashboard.tab("Audio")
    good = write_wav(tmp_path / "my tone.wav", tone(TONE_CLASSES["low"], seed=77))
    upload(dashboard.page, audio, good)
    audio.get_by_text("my tone.wav").wait_for(timeout=TIMEOUT_MS)
    assert dashboard.result(audio) == Predictor.load(ui_models / "tones")(good)[0]["label"] == "low"

    pdf = tmp_path / "paper.pdf"
    pdf.write_bytes(b"%PDF-1.4\n" + b"0" * 5000)
    big = tmp_path / "long recording.wav"
    big.write_bytes(b"\0" * (21 * 2**20))  # over the 20 MB cap and Tornado's default 10 MiB message limit
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    for path, expected in [(pdf, "expected audio"), (big, "limited to 20 MB"), (empty, "0-byte")]:
        before = dashboard.result_html(audio)
        upload(dashboard.page, audio, path)
        dashboard.wait_for_change(audio, before)
        assert expected in dashboard.result(audio, ".onepipe-message-text"), path.name
        if path is big:
            dashboard.page.screenshot(path=str(ARTIFACTS / "dashboard-upload-too-large.png"), full_page=True)
    # the connection survived the big file: Predict still works
    before = dashboard.result_html(audio)
    audio.locator(".onepipe-predict").click()
    dashboard.wait_for_change(audio, before)
    assert dashboard.result(audio) in TONE_CLASSES

    images = dashboard.tab("Images")
    corrupt = tmp_path / "photo.jpg"
    corrupt.write_bytes(b"\xff\xd8\xff\xe0" + b"\x13" * 300)
    before = dashboard.result_html(images)
    upload(dashboard.page, images, corrupt)
    dashboard.wait_for_change(images, before)
    assert "expected an image" in dashboard.result(images, ".onepipe-message-text")
    assert dashboard.serious_errors() == []


def test_without_a_microphone_or_camera_the_dashboard_says_so(playwright, voila_url):
    """A browser with no devices (a school PC): Stop and Snapshot end in a message, not an endless wait."""
    from app.ui.audio_tab import NO_MICROPHONE_MESSAGE
    from app.ui.image_tab import NO_CAMERA_MESSAGE

    ARTIFACTS.mkdir(exist_ok=True)
    browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
    try:
        page = Dashboard(browser, voila_url)
        audio = page.tab("Audio")
        audio.locator(".onepipe-record").click()
        page.page.wait_for_timeout(1200)
        audio.locator(".onepipe-record").click()
        audio.get_by_text(NO_MICROPHONE_MESSAGE).wait_for(timeout=TIMEOUT_MS)
        images = page.tab("Images")
        images.locator(".onepipe-camera-toggle").click()
        images.locator(".onepipe-snapshot").click()
        images.get_by_text(NO_CAMERA_MESSAGE).wait_for(timeout=TIMEOUT_MS)
        page.page.screenshot(path=str(ARTIFACTS / "dashboard-no-devices.png"), full_page=True)
        page.close()
    finally:
        browser.close()


def test_show_where_it_looked_lays_a_map_over_the_picture_in_both_tabs(dashboard):
    ARTIFACTS.mkdir(exist_ok=True)
    for name, choose in (
        ("Audio", lambda tab: tab.locator(".onepipe-clips button").nth(0).click()),
        ("Images", lambda tab: tab.locator(".onepipe-thumb").nth(0).click()),
    ):
        tab = dashboard.tab(name)
        choose(tab)
        before = dashboard.result_html(tab)
        tab.locator(".onepipe-predict").click()
        dashboard.wait_for_change(tab, before)
        dashboard.result(tab)  # the prediction is shown
        assert tab.locator(".onepipe-result img.onepipe-overlay").count() == 0
        tab.locator(".onepipe-explain-toggle input").check()
        overlay = tab.locator(".onepipe-result img.onepipe-overlay")
        overlay.wait_for(timeout=TIMEOUT_MS)
        picture = tab.locator(".onepipe-result img.onepipe-picture").bounding_box()
        box = overlay.bounding_box()
        assert box and picture and abs(box["width"] - picture["width"]) < 1.5 and abs(box["y"] - picture["y"]) < 1.5
        assert "Brighter: masking this part lowered the score of" in dashboard.result(tab, ".onepipe-legend")
        dashboard.page.screenshot(path=str(ARTIFACTS / f"dashboard-where-it-looked-{name.lower()}.png"), full_page=True)
        tab.locator(".onepipe-explain-toggle input").uncheck()
        overlay.wait_for(state="detached", timeout=TIMEOUT_MS)
    assert dashboard.serious_errors() == []
