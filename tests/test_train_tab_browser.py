"""The Train tab in a real browser: Voila started here, Debian's Chromium driven by Playwright, the microphone and
webcam being Chromium's fake devices playing a generated tone and a still picture.

Sounds: two classes recorded with the microphone and a third uploaded, trained, the curves growing, the model used
in the Audio tab and downloaded. Pictures: a burst from the webcam and uploads, the model used in the Images tab.
Cancel during training. Bad input (a PDF among uploads, a zip whose path climbs out, an empty class, one class
only) gives messages and the page keeps working. Each test gets its own page, hence its own kernel and workspace.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest
from fixtures_data import TONE_CLASSES, shape_image, tone, write_wav
from PIL import Image
from ui_helpers import BrowserPage, require_chromium, write_y4m

from app.predict import Predictor
from benchmarks.browser_harness import CHROMIUM, CHROMIUM_ARGS, PROJECT_ROOT, fake_media_args, start_voila, stop_process

pytestmark = [pytest.mark.slow, pytest.mark.browser]
playwright_api = pytest.importorskip("playwright.sync_api")
require_chromium(module=True)

ARTIFACTS = PROJECT_ROOT / "test-artifacts"
TIMEOUT_MS = 30_000
TRAINING_TIMEOUT_MS = 240_000  # a tiny model on a busy 2-core computer
MICROPHONE_TONE = TONE_CLASSES["high"]


@pytest.fixture(scope="module")
def media(tmp_path_factory) -> dict[str, Path]:
    """The fake microphone's WAV (a high tone), the fake camera's Y4M (a circle) and files to upload."""
    folder = tmp_path_factory.mktemp("train-media")
    files = {
        "wav": write_wav(folder / "mic.wav", tone(MICROPHONE_TONE, seconds=1.0, seed=5)),
        "y4m": write_y4m(shape_image("circle", size=28, seed=1), folder / "camera.y4m"),
    }
    for n in range(6):
        files[f"low{n}"] = write_wav(folder / f"low-{n}.wav", tone(TONE_CLASSES["low"], seconds=1.0, seed=40 + n))
    for n in range(11):
        square = shape_image("square", size=28, seed=50 + n).resize((320, 240), Image.Resampling.NEAREST)
        files[f"square{n}"] = folder / f"square-{n}.png"
        square.save(files[f"square{n}"])
    return files


@pytest.fixture(scope="module")
def voila_url(ui_models, tmp_path_factory):
    workspaces = tmp_path_factory.mktemp("workspaces")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ONEPIPE_WORKSPACE", str(workspaces))  # start_voila passes the environment on
        process, url = start_voila(ui_models, log_path=tmp_path_factory.mktemp("voila") / "voila.log")
    yield url
    stop_process(process)


@pytest.fixture(scope="module")
def browser(media):
    with playwright_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=[*CHROMIUM_ARGS, *fake_media_args(microphone=media["wav"], camera=media["y4m"])],
        )
        yield browser
        browser.close()


class Page(BrowserPage):
    """A dashboard page with its Train tab open, and its console errors."""

    def __init__(self, browser, url: str):
        super().__init__(browser, url, TIMEOUT_MS, viewport={"width": 1200, "height": 1000}, accept_downloads=True)
        self.train = self.open("Train")

    def open(self, name: str):
        self.page.get_by_role("tab", name=name).click()
        panel = self.page.locator(".onepipe-tab:visible")
        panel.wait_for(timeout=TIMEOUT_MS)
        return panel

    def text(self, css: str) -> str:
        return self.train.locator(css).inner_text()

    def wait_for_text(self, css: str, text: str, timeout: int = TIMEOUT_MS) -> None:
        self.train.locator(css, has_text=text).first.wait_for(timeout=timeout)

    def rename(self, index: int, name: str) -> None:
        box = self.train.locator(".onepipe-class-name input").nth(index)
        box.fill(name)
        box.press("Enter")
        self.target(name).wait_for(timeout=TIMEOUT_MS)

    def target(self, name: str):
        """The class chooser's button of the class `name`."""
        return self.train.locator(".onepipe-target").get_by_role("button", name=name, exact=True)

    def choose(self, name: str) -> None:
        self.target(name).click()

    def count(self, index: int) -> str:
        return self.train.locator(".onepipe-count").nth(index).inner_text()

    def wait_for_count(self, index: int, count: int, timeout: int = TIMEOUT_MS) -> None:
        self.page.wait_for_function(
            "([i, n]) => { const e = document.querySelectorAll('.onepipe-train .onepipe-count')[i];"
            " return e && parseInt(e.textContent) >= n; }",
            arg=[index, count],
            timeout=timeout,
        )

    def upload(self, css: str, *paths: Path, panel=None) -> None:
        with self.page.expect_file_chooser() as chooser:
            (panel or self.train).locator(css).click()
        chooser.value.set_files([str(path) for path in paths])

    def wait_for_rows(self, count: int) -> None:
        self.page.wait_for_function(
            "(n) => document.querySelectorAll('.onepipe-train .onepipe-class-row').length === n",
            arg=count,
            timeout=TIMEOUT_MS,
        )

    def set_epochs(self, epochs: int) -> None:
        self.train.locator(".onepipe-advanced").get_by_text("Advanced").click()
        box = self.train.locator(".onepipe-epochs input")
        box.fill(str(epochs))
        box.press("Enter")

    def epochs_drawn(self) -> int:
        value = self.train.locator(".onepipe-curves").get_attribute("data-epochs")
        return int(value or 0)


@pytest.fixture
def page(browser, voila_url):
    opened = Page(browser, voila_url)
    yield opened
    opened.close()


def train_and_wait(page: Page) -> None:
    """Press Train, see the curves grow epoch by epoch, and wait until the model is ready."""
    page.train.locator(".onepipe-train-button").click()
    page.wait_for_text(".onepipe-train-status", "Epoch", timeout=TRAINING_TIMEOUT_MS)
    first = page.epochs_drawn()
    page.page.wait_for_function(
        "(n) => { const e = document.querySelector('.onepipe-train .onepipe-curves');"
        " return e && parseInt(e.dataset.epochs) > n; }",
        arg=first,
        timeout=TRAINING_TIMEOUT_MS,
    )
    assert page.train.locator(".onepipe-curves polyline").count() >= 2
    page.wait_for_text(".onepipe-train-status", "Model ready", timeout=TRAINING_TIMEOUT_MS)


def test_sounds_recorded_and_uploaded_train_a_model_for_the_audio_tab(page, media, tmp_path):
    ARTIFACTS.mkdir(exist_ok=True)
    page.rename(0, "beep")
    page.rename(1, "beep again")
    page.train.locator(".onepipe-add-class").click()
    page.rename(2, "low")
    for index, name in ((0, "beep"), (1, "beep again")):  # two classes from the microphone, five takes each
        page.choose(name)
        page.train.locator(".onepipe-takes select").select_option(label="5 takes of 1 s")
        page.train.locator(".onepipe-train-record").click()
        page.wait_for_count(index, 5, timeout=60_000)
        page.wait_for_text(".onepipe-train-record", "Record")
    page.choose("low")  # the third by upload, six files at once
    page.upload(".onepipe-train-upload", *(media[f"low{n}"] for n in range(6)))
    page.wait_for_count(2, 6)
    assert [page.count(i) for i in range(3)] == ["5 examples", "5 examples", "6 examples"]
    page.set_epochs(6)
    train_and_wait(page)
    page.page.screenshot(path=str(ARTIFACTS / "train-sounds.png"), full_page=True)

    # take it away: the zip unpacks into a bundle the Predictor loads
    page.train.locator(".onepipe-download").click()
    link = page.train.locator(".onepipe-download-link")
    link.wait_for(timeout=TIMEOUT_MS)
    with page.page.expect_download() as download:
        link.click()
    assert download.value.suggested_filename == "my-sounds-1.zip"
    saved = tmp_path / "my-sounds-1.zip"
    download.value.save_as(saved)
    zipfile.ZipFile(saved).extractall(tmp_path)
    predictor = Predictor.load(tmp_path / "my-sounds-1")
    assert predictor.class_names == ["beep", "beep again", "low"]
    assert predictor(media["low0"])[0]["label"] == "low"

    # at once in the Audio tab, chosen: the microphone gives one of the two beeps, an upload of a low tone "low"
    audio = page.open("Audio")
    assert audio.locator(".onepipe-model-picker select").input_value() == "my-sounds-1"
    before = audio.locator(".onepipe-result .widget-html-content").inner_html()
    audio.locator(".onepipe-record").click()
    page.page.wait_for_timeout(1500)
    audio.locator(".onepipe-record").click()
    audio.locator(".onepipe-source", has_text="your recording").wait_for(timeout=TIMEOUT_MS)
    assert audio.locator(".onepipe-result .widget-html-content").inner_html() != before
    assert audio.locator(".onepipe-top-label").inner_text() in ("beep", "beep again")
    upload_in(page, audio, media["low1"])
    audio.locator(".onepipe-source", has_text="low-1.wav").wait_for(timeout=TIMEOUT_MS)
    assert audio.locator(".onepipe-top-label").inner_text() == "low"
    assert page.serious_errors() == []


def upload_in(page: Page, panel, path: Path) -> None:
    with page.page.expect_file_chooser() as chooser:
        panel.locator(".onepipe-upload").click()
    chooser.value.set_files(str(path))


def test_pictures_from_the_webcam_and_uploads_train_a_model_for_the_images_tab(page, media):
    ARTIFACTS.mkdir(exist_ok=True)
    page.train.locator(".onepipe-kind button", has_text="Pictures").click()
    page.train.locator(".onepipe-train-camera").wait_for(timeout=TIMEOUT_MS)
    page.rename(0, "circle")
    page.rename(1, "square")
    page.choose("circle")
    page.train.locator(".onepipe-train-camera").click()
    page.page.wait_for_function(
        "() => { const v = document.querySelector('.onepipe-train .onepipe-camera video');"
        " return v && v.videoWidth > 0; }",
        timeout=TIMEOUT_MS,
    )
    page.train.locator(".onepipe-train-burst").click()
    page.wait_for_count(0, 10, timeout=60_000)
    page.choose("square")
    page.upload(".onepipe-train-upload", *(media[f"square{n}"] for n in range(10)))
    page.wait_for_count(1, 10)
    train_and_wait(page)  # the pictures' recipe: 10 of each, so two of each held out, and early stopping
    # the try-it panel: a snapshot of the camera, predicted by the new model
    page.train.locator(".onepipe-try-snapshot").click()
    page.train.locator(".onepipe-result .onepipe-source", has_text="webcam snapshot").wait_for(timeout=TIMEOUT_MS)
    assert page.train.locator(".onepipe-result .onepipe-top-label").inner_text() == "circle"
    page.page.screenshot(path=str(ARTIFACTS / "train-pictures.png"), full_page=True)

    images = page.open("Images")
    assert images.locator(".onepipe-model-picker select").input_value() == "my-pictures-1"
    upload_in(page, images, media["square10"])  # a square it never saw
    images.locator(".onepipe-source", has_text="square-10.png").wait_for(timeout=TIMEOUT_MS)
    assert images.locator(".onepipe-top-label").inner_text() == "square"
    assert page.serious_errors() == []


def test_cancel_during_training(page, media, tmp_path):
    archive = tmp_path / "tones.zip"
    with zipfile.ZipFile(archive, "w") as zip_file:  # three classes at once, from a zip of class folders
        for name, frequency in TONE_CLASSES.items():
            for n in range(4):
                zip_file.write(write_wav(tmp_path / f"{name}{n}.wav", tone(frequency, seed=n)), f"tones/{name}/{n}.wav")
    page.upload(".onepipe-zip-upload", archive)
    page.wait_for_text(".onepipe-collector-message", "Added 12 examples from tones.zip")
    for rows in (4, 3):  # remove the two empty classes it started with
        page.train.locator(".onepipe-remove-class").first.click()
        page.wait_for_rows(rows)
    page.set_epochs(200)
    page.train.locator(".onepipe-train-button").click()
    page.wait_for_text(".onepipe-train-status", "Epoch", timeout=TRAINING_TIMEOUT_MS)
    page.train.locator(".onepipe-cancel").click()
    page.wait_for_text(".onepipe-train-status", "cancelled", timeout=10_000)
    assert page.train.locator(".onepipe-train-button").is_enabled()
    assert page.train.locator(".onepipe-download").is_hidden()  # no model to try or take away
    assert page.serious_errors() == []


def test_bad_input_gives_messages_and_the_page_keeps_working(page, media, tmp_path):
    ARTIFACTS.mkdir(exist_ok=True)
    pdf = tmp_path / "paper.pdf"
    pdf.write_bytes(b"%PDF-1.4\n" + b"0" * 5000)
    page.upload(".onepipe-train-upload", media["low0"], pdf)
    page.wait_for_text(".onepipe-collector-message", "paper.pdf")
    text = page.text(".onepipe-collector-message")
    assert "Added 1 upload" in text and "expected audio" in text

    climbing = tmp_path / "climbing.zip"
    with zipfile.ZipFile(climbing, "w") as zip_file:
        zip_file.write(media["low1"], "good/1.wav")
        zip_file.write(media["low2"], "../../outside.wav")
    page.upload(".onepipe-zip-upload", climbing)
    page.wait_for_text(".onepipe-collector-message", "points outside")
    assert page.train.locator(".onepipe-class-row").count() == 2  # nothing was added

    page.train.locator(".onepipe-train-button").click()  # Class 1 has one example, Class 2 none
    page.wait_for_text(".onepipe-train-status", "at least 2 examples")
    page.train.locator(".onepipe-remove-class").nth(1).click()  # the empty class goes at once
    page.wait_for_rows(1)
    page.train.locator(".onepipe-train-button").click()
    page.wait_for_text(".onepipe-train-status", "at least 2 classes")
    page.page.screenshot(path=str(ARTIFACTS / "train-bad-input.png"), full_page=True)

    audio = page.open("Audio")  # the page keeps working
    before = audio.locator(".onepipe-result .widget-html-content").inner_html()
    audio.locator(".onepipe-predict").click()
    page.page.wait_for_function(
        "(old) => document.querySelector('.onepipe-tab:not([hidden]) .onepipe-result .widget-html-content')"
        ".innerHTML !== old",
        arg=before,
        timeout=TIMEOUT_MS,
    )
    assert audio.locator(".onepipe-top-label").inner_text() in TONE_CLASSES
    assert page.serious_errors() == []
