"""Headless tests of the dashboard widgets: build them in Python, click, set values as the browser would."""

from __future__ import annotations

import base64
import io
import json
import re
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from fixtures_data import TONE_CLASSES, shape_image, tone, write_wav
from PIL import Image
from ui_helpers import webm_opus

from app.predict import Predictor
from app.ui import build_dashboard
from app.ui.common import MAX_UPLOAD_BYTES

ROOT = Path(__file__).resolve().parent.parent


def upload_value(name: str, data: bytes, mime: str = "", size: int | None = None) -> tuple[dict, ...]:
    """What ipywidgets 8 FileUpload.value holds after the browser sends one file."""
    return (
        {
            "name": name,
            "type": mime,
            "size": len(data) if size is None else size,
            "content": memoryview(data),
            "last_modified": datetime(2024, 1, 1, tzinfo=UTC),
        },
    )


def picture_of(panel) -> np.ndarray:
    """The picture in the result panel, decoded from its data URI."""
    match = re.search(r'src="data:image/png;base64,([^"]+)"', panel.view.value)
    assert match, "no picture in the result panel"
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(match.group(1)))))


def assert_same_predictions(shown: list[dict], expected: list[dict]) -> None:
    assert [p["label"] for p in shown] == [p["label"] for p in expected]
    assert np.allclose([p["score"] for p in shown], [p["score"] for p in expected], atol=1e-6)


@pytest.fixture
def dashboard(ui_models):
    return build_dashboard(ui_models)


@pytest.fixture(scope="module")
def tone_predictor(ui_models) -> Predictor:
    return Predictor.load(ui_models / "tones")


@pytest.fixture(scope="module")
def shape_predictor(ui_models) -> Predictor:
    return Predictor.load(ui_models / "shapes")


def test_layout_lists_bundles_classes_and_tabs(dashboard):
    assert dashboard.tabs.titles == ("Audio", "Images", "Train")
    assert list(dashboard.audio.picker.dropdown.options) == ["tones", "tones-bare"]
    assert list(dashboard.images.picker.dropdown.options) == ["shapes"]
    for name in TONE_CLASSES:
        assert f">{name}</span>" in dashboard.audio.picker.classes.value
    assert list(dashboard.audio.class_dropdown.options) == sorted(TONE_CLASSES)
    assert len(dashboard.images.thumbnails) == 6  # two per class
    assert dashboard.audio.result.level == "info" and dashboard.images.result.level == "info"


def test_every_audio_sample_shows_the_predictors_output(dashboard, tone_predictor):
    tab = dashboard.audio
    for class_name in tab.class_dropdown.options:
        for index, path in enumerate(tab.samples[class_name]):
            tab.select_sample(class_name, index)
            assert tab.player.value == path.read_bytes()
            tab.predict_button.click()
            expected = tone_predictor(path)
            assert_same_predictions(tab.result.predictions, expected)
            assert f'class="onepipe-top-label">{expected[0]["label"]}<' in tab.result.view.value
            assert tab.result.view.value.count("onepipe-bar-row") == len(expected)
            assert tab.result.elapsed_ms is not None and tab.result.elapsed_ms > 0
            # the spectrogram the model saw: n_mels rows, n_frames columns
            assert picture_of(tab.result).shape == (
                tone_predictor.config.n_mels,
                tone_predictor.config.n_frames,
                3,
            )
        # generated tones are easy: the trained model gets the examples right
        assert tab.result.predictions[0]["label"] == class_name


def test_gallery_click_then_predict_shows_the_image_the_model_saw(dashboard, shape_predictor):
    tab = dashboard.images
    for index, button in enumerate(tab.thumbnails):
        button.click()
        path = tab.thumbnail_files[index][1]
        assert "onepipe-selected" in button._dom_classes
        assert sum("onepipe-selected" in b._dom_classes for b in tab.thumbnails) == 1
        tab.predict_button.click()
        assert_same_predictions(tab.result.predictions, shape_predictor(path))
        features = shape_predictor.preprocess(path)
        assert np.array_equal(picture_of(tab.result), features[:, :, 0])


def test_an_unreadable_sample_is_left_out_of_the_gallery(ui_models, tmp_path):
    shutil.copytree(ui_models / "shapes", tmp_path / "shapes")
    first_class = sorted(p for p in (tmp_path / "shapes" / "samples").iterdir())[0]
    (first_class / "0-broken.png").write_bytes(b"not a png")  # sorts first in its class
    tab = build_dashboard(tmp_path).images
    assert len(tab.thumbnails) == len(tab.thumbnail_files) == 6
    assert all(path.name != "0-broken.png" for _, path in tab.thumbnail_files)
    for index, button in enumerate(tab.thumbnails):
        button.click()
        class_name, path = tab.thumbnail_files[index]
        assert tab.current == (f"{class_name}/{path.name}", path)
        assert [("onepipe-selected" in b._dom_classes) for b in tab.thumbnails] == [
            i == index for i in range(len(tab.thumbnails))
        ]


def test_audio_upload_good_file(dashboard, tone_predictor, tmp_path):
    path = write_wav(tmp_path / "high.wav", tone(TONE_CLASSES["high"], seed=99))
    tab = dashboard.audio
    tab.upload.value = upload_value("high.wav", path.read_bytes(), "audio/wav")
    assert_same_predictions(tab.result.predictions, tone_predictor(path))
    assert tab.result.predictions[0]["label"] == "high"
    assert "high.wav" in tab.result.view.value
    assert tab.upload.value == ()  # cleared, so the same file can be chosen again


@pytest.mark.parametrize(
    ("name", "data", "size", "expected"),
    [
        ("report.pdf", b"%PDF-1.4\n" + b"x" * 2000, None, "expected audio"),
        ("empty.wav", b"", None, "0-byte"),
        ("huge.wav", b"", 200 * 2**20, "limited to 20 MB"),
        ("cut.wav", b"RIFF1234", 50_000, "arrived"),
        ("noise.mp3", bytes(range(256)) * 40, None, "expected audio"),
    ],
)
def test_audio_upload_bad_files_give_a_message(dashboard, name, data, size, expected):
    tab = dashboard.audio
    tab.upload.value = upload_value(name, data, size=size)
    assert tab.result.level == "error"
    assert expected in tab.result.message
    if expected == "expected audio":  # the file is named, not counted in bytes
        assert f"'{name}'" in tab.result.message and "bytes" not in tab.result.message, tab.result.message
    assert "Traceback" not in tab.result.view.value
    # the dashboard keeps working
    tab.predict_button.click()
    assert tab.result.level == "result"


def test_upload_just_over_the_cap_is_refused(dashboard):
    tab = dashboard.images
    tab.upload.value = upload_value("big.png", b"\0" * (MAX_UPLOAD_BYTES + 1))
    assert tab.result.level == "error" and "limited to 20 MB" in tab.result.message


def test_image_upload_good_and_bad(dashboard, shape_predictor, tmp_path):
    tab = dashboard.images
    # a large photo-like picture, dark ink on white, rotated by EXIF: still predicted like the Predictor
    photo = shape_image("square", size=28, seed=5, dark_background=False).resize((900, 1200))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° on display
    buffer = io.BytesIO()
    photo.convert("RGB").save(buffer, format="JPEG", exif=exif)
    tab.upload.value = upload_value("photo.jpg", buffer.getvalue(), "image/jpeg")
    assert tab.result.level == "result"
    assert_same_predictions(tab.result.predictions, shape_predictor(buffer.getvalue()))
    for name, data, expected in [
        ("broken.png", b"\x89PNG\r\n\x1a\n" + b"\0" * 100, "expected an image"),
        ("notes.txt", b"hello, world", "expected an image"),
        ("empty.png", b"", "0-byte"),
    ]:
        tab.upload.value = upload_value(name, data)
        assert tab.result.level == "error", name
        assert expected in tab.result.message, (name, tab.result.message)


def wait_until(condition, seconds: float = 30.0) -> bool:
    """Poll `condition` (a timer thread changes the widgets) until it holds or `seconds` pass (generous for a
    loaded machine: it returns as soon as the condition holds)."""
    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.02)
    return condition()


def test_microphone_recording_is_predicted_when_it_stops(dashboard, tone_predictor, monkeypatch):
    from app.ui import audio_tab

    monkeypatch.setattr(audio_tab, "MIN_RECORDING_S", 2.0)  # ample, even on a loaded machine
    tab = dashboard.audio
    tab.record_button.value = True
    assert tab.recorder.recording is True and "Stop" in tab.record_button.description
    tab.record_button.value = False  # at once: the recorder goes on to MIN_RECORDING_S
    assert tab.recorder.recording is True and "a moment longer" in tab.record_status.value
    assert wait_until(lambda: tab.recorder.recording is False)
    assert "Processing" in tab.record_status.value
    recording = webm_opus(tone(TONE_CLASSES["low"], seconds=1.5, seed=7))
    tab.recorder.audio.value = recording  # what the browser sends when MediaRecorder stops
    assert tab.result.level == "result"
    assert_same_predictions(tab.result.predictions, tone_predictor(recording))
    assert tab.result.predictions[0]["label"] == "low"
    tab.record_button.value = True  # a second recording of the very same bytes is news too
    tab.record_button.value = False
    assert wait_until(lambda: tab.recorder.recording is False)
    tab.result.show_message("waiting")
    tab.recorder.audio.value = recording
    assert tab.result.level == "result"


def test_record_again_during_a_delayed_stop_keeps_recording(dashboard, monkeypatch):
    from app.ui import audio_tab, common

    timers = []

    def call_later(seconds, callback):  # the real timer, kept so that the test can wait for it to fire
        timers.append(common.call_later(seconds, callback))
        return timers[-1]

    monkeypatch.setattr(audio_tab, "MIN_RECORDING_S", 0.3)
    monkeypatch.setattr(audio_tab, "call_later", call_later)
    tab = dashboard.audio
    tab.record_button.value = True
    tab.record_button.value = False  # Stop at once: delayed by 0.3 s
    tab.record_button.value = True  # and Record again before that
    assert len(timers) == 1
    timers[0].join()  # the delayed Stop has fired, and found a newer take
    assert tab.recorder.recording is True and "Recording…" in tab.record_status.value
    tab.record_button.value = False
    assert wait_until(lambda: tab.recorder.recording is False)


def test_silent_empty_and_unreadable_recordings_give_a_message(dashboard):
    from app.ui.audio_tab import UNREADABLE_RECORDING_MESSAGE

    tab = dashboard.audio
    tab.recorder.audio.value = webm_opus(np.zeros(16000, dtype=np.float32))
    assert tab.result.level == "error" and "silent" in tab.result.message
    tab.recorder.audio.value = b""  # the browser sent a recording without data
    assert tab.result.level == "error" and "empty" in tab.result.message
    tab.recorder.audio.value = webm_opus(tone(440.0, seconds=1.0))[:300]  # stopped before any sound was kept
    assert tab.result.level == "error" and tab.result.message == UNREADABLE_RECORDING_MESSAGE


def test_a_missing_or_blocked_microphone_or_camera_is_reported(dashboard, monkeypatch):
    from app.ui import audio_tab, image_tab

    monkeypatch.setattr(audio_tab, "MIN_RECORDING_S", 0.0)
    monkeypatch.setattr(audio_tab, "RECORDING_TIMEOUT_S", 0.2)
    monkeypatch.setattr(image_tab, "SNAPSHOT_TIMEOUT_S", 2.0)  # the "busy" check below comes first, even if slow
    tab = dashboard.audio
    tab.record_button.value = True
    tab.record_button.value = False  # and the browser never sends anything
    assert wait_until(lambda: tab.result.message == audio_tab.NO_MICROPHONE_MESSAGE)
    images = dashboard.images
    images.camera_button.value = True
    images.snapshot_button.click()
    assert images.result.level == "busy"
    assert wait_until(lambda: images.result.message == image_tab.NO_CAMERA_MESSAGE)
    images.camera_button.value = False


def test_webcam_snapshot_is_predicted(dashboard, shape_predictor):
    tab = dashboard.images
    assert tab.snapshot_button.disabled
    tab.camera_button.value = True
    assert tab.camera is not None and tab.camera.constraints["video"] and not tab.camera.constraints["audio"]
    assert not tab.snapshot_button.disabled
    tab.snapshot_button.click()
    assert tab.recorder.recording is True and tab.result.level == "busy"
    frame = shape_image("circle", size=28, seed=3).resize((320, 240)).convert("RGBA")
    buffer = io.BytesIO()
    frame.save(buffer, format="PNG")
    tab.recorder.image.value = buffer.getvalue()  # the browser's PNG snapshot
    assert_same_predictions(tab.result.predictions, shape_predictor(buffer.getvalue()))
    tab.snapshot_button.click()  # a still camera sends the very same bytes again: predicted again
    assert tab.result.level == "busy"
    tab.recorder.image.value = buffer.getvalue()
    assert_same_predictions(tab.result.predictions, shape_predictor(buffer.getvalue()))
    tab.camera_button.value = False
    assert tab.camera is None and tab.snapshot_button.disabled and tab.camera_box.children == ()


def test_a_damaged_bundle_gives_a_message_and_the_others_keep_working(ui_models, tmp_path):
    import shutil

    models = Path(shutil.copytree(ui_models, tmp_path / "models"))
    (models / "tones" / "model.tflite").write_bytes(b"damaged on disk")
    damaged = build_dashboard(models)
    tab = damaged.audio
    assert tab.picker.dropdown.value == "tones"
    tab.predict_button.click()
    assert tab.result.level == "error" and "does not match the sha256" in tab.result.message
    assert "Traceback" not in tab.result.view.value
    tab.picker.dropdown.value = "tones-bare"  # an intact bundle in the same dashboard
    tab.upload.value = upload_value("low.wav", write_wav(tmp_path / "low.wav", tone(TONE_CLASSES["low"])).read_bytes())
    assert tab.result.level == "result" and tab.result.predictions[0]["label"] == "low"


def test_bundle_without_samples_says_how_to_get_them(dashboard):
    tab = dashboard.audio
    tab.picker.dropdown.value = "tones-bare"
    assert "put a few files of each class in the bundle's <code>samples/&lt;class&gt;/" in tab.samples_hint.value
    assert tab.predict_button.disabled and tab.class_dropdown.options == ()
    tab.picker.dropdown.value = "tones"
    assert tab.samples_hint.value == "" and not tab.predict_button.disabled


def test_the_samples_hint_suggests_the_smallest_download():
    from app.ui.bundles import no_samples_hint

    assert "data download speech-commands-test --samples" in no_samples_hint("speech-commands")  # 112 MB, not 2.3 GB
    assert "data download fsdd --samples" in no_samples_hint("spoken-digits")
    assert "python -m app data samples" in no_samples_hint("mnist")
    cifar10 = no_samples_hint("cifar10")  # nothing can be made offline: only the download is offered
    assert "data download cifar10 --samples" in cifar10 and "data samples" not in cifar10


def test_no_models_at_all(tmp_path):
    dashboard = build_dashboard(tmp_path)
    assert "No audio models" in dashboard.audio.children[0].value
    assert "No image models" in dashboard.images.children[0].value


def test_unexpected_errors_show_a_short_message(dashboard, monkeypatch):
    from app.ui import bundles

    tab = dashboard.audio
    predictor = bundles.get_predictor(tab.bundle.path)

    def broken(source):
        raise RuntimeError("internal detail that users should not see")

    monkeypatch.setattr(predictor, "preprocess", broken)
    tab.predict_button.click()
    assert tab.result.level == "error"
    assert "RuntimeError" in tab.result.message and "internal detail" not in tab.result.view.value


def test_predictors_are_cached_per_bundle(dashboard):
    from app.ui import bundles

    first = bundles.get_predictor(dashboard.audio.bundle.path)
    assert bundles.get_predictor(dashboard.audio.bundle.path) is first


def test_a_retrained_bundle_is_loaded_afresh(ui_models, tmp_path):
    import os

    from app.ui import bundles

    bundle = tmp_path / "shapes"
    shutil.copytree(ui_models / "shapes", bundle)
    first = bundles.get_predictor(bundle)
    metadata = bundle / "metadata.json"
    os.utime(metadata, ns=(metadata.stat().st_atime_ns, metadata.stat().st_mtime_ns + 10**9))  # written again
    second = bundles.get_predictor(bundle)
    assert second is not first and bundles.get_predictor(bundle) is second
    assert sum(key[0] == str(bundle.resolve()) for key in bundles._PREDICTORS) == 1  # the old one is dropped


def test_dashboard_never_imports_tensorflow(ui_models):
    code = (
        "import sys\n"
        "from app.ui import build_dashboard\n"
        f"d = build_dashboard({str(ui_models)!r})\n"
        "d.audio.predict_button.click(); d.images.predict_button.click()\n"
        "assert d.audio.result.level == 'result' and d.images.result.level == 'result'\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras')))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT / "notebooks")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_notebook_is_one_title_cell_and_one_code_cell():
    notebook = json.loads((ROOT / "notebooks" / "app.ipynb").read_text())
    kinds = [cell["cell_type"] for cell in notebook["cells"]]
    assert kinds == ["markdown", "code"]
    assert "".join(notebook["cells"][0]["source"]).startswith("# ")
    assert "".join(notebook["cells"][1]["source"]).split() == [
        "from",
        "app.ui",
        "import",
        "build_dashboard",
        "build_dashboard()",
    ]
    assert notebook["cells"][1]["outputs"] == []


def test_server_config_matches_the_upload_cap():
    config = json.loads((ROOT / "voila.json").read_text())  # Binder's postBuild copies it to the server's config
    assert config["VoilaConfiguration"]["strip_sources"] is True
    assert config["VoilaConfiguration"]["show_tracebacks"] is False
    assert config["MappingKernelManager"]["cull_idle_timeout"] > 0
    allow = config["VoilaConfiguration"]["file_allowlist"]
    assert all(re.fullmatch(pattern, "picture.png") for pattern in allow)
    assert not any(re.fullmatch(pattern, "app.ipynb") for pattern in allow)
    limit = config["Voila"]["tornado_settings"]["websocket_max_message_size"]
    assert MAX_UPLOAD_BYTES < limit <= MAX_UPLOAD_BYTES + 2 * 2**20


def test_thumbnails_show_pictures_as_the_model_sees_them():
    from app.ui.render import thumbnail_png

    def thumbnail_of(image: Image.Image) -> np.ndarray:
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
        return np.asarray(Image.open(io.BytesIO(thumbnail_png(buffer.getvalue()))))

    assert thumbnail_of(Image.new("RGBA", (20, 20), (0, 0, 0, 0))).min() == 255  # transparency over white
    ramp = Image.fromarray(np.linspace(0, 65535, 400).reshape(20, 20).astype(np.uint16))
    assert thumbnail_of(ramp).max() > 220  # 16-bit grey keeps its contrast


def test_only_sample_folders_of_the_bundles_classes_are_offered(tmp_path, monkeypatch):
    from app import paths
    from app.ui.bundles import BundleInfo, sample_files

    bundle = tmp_path / "models" / "words"
    downloaded = tmp_path / "downloaded"
    monkeypatch.setattr(paths, "DOWNLOADED_SAMPLES_DIR", downloaded)
    for folder in (
        downloaded / "words" / "yes",
        downloaded / "words" / "_background_noise_",
        bundle / "samples" / "bed",
    ):
        folder.mkdir(parents=True)
        write_wav(folder / "a.wav", tone(440, seconds=0.1))
    (bundle / "samples" / "no").mkdir()
    write_wav(bundle / "samples" / "no" / "b.wav", tone(440, seconds=0.1))
    assert sample_files(BundleInfo("words", bundle, "audio", ("no", "yes"))) == {
        "no": [bundle / "samples" / "no" / "b.wav"],
        "yes": [downloaded / "words" / "yes" / "a.wav"],
    }


def test_bundles_with_examples_are_listed_first_and_damaged_ones_left_out(tmp_path, monkeypatch):
    import json

    from app import paths
    from app.ui.bundles import list_bundle_infos

    monkeypatch.setattr(paths, "DOWNLOADED_SAMPLES_DIR", tmp_path / "downloaded")
    metadata = {"kind": "audio", "class_names": ["yes"]}
    for name in ("a-bare", "words", "broken", "pictures"):
        (tmp_path / name).mkdir()
        kind = {"pictures": "image"}.get(name, "audio")
        (tmp_path / name / "metadata.json").write_text(json.dumps({**metadata, "kind": kind}))
    (tmp_path / "broken" / "metadata.json").write_text('{"kind": "audio"')  # cut short
    (tmp_path / "words" / "samples" / "yes").mkdir(parents=True)
    write_wav(tmp_path / "words" / "samples" / "yes" / "a.wav", tone(440, seconds=0.1))
    assert [info.name for info in list_bundle_infos("audio", tmp_path)] == ["words", "a-bare"]
    assert [info.name for info in list_bundle_infos("image", tmp_path)] == ["pictures"]


def test_show_where_it_looked_in_both_tabs(dashboard, tone_predictor, shape_predictor):
    """The box appears with a prediction; ticked, it lays the Predictor's map over the picture the model saw."""
    tab = dashboard.audio
    assert tab.result.explain_toggle.layout.display == "none"  # nothing predicted yet
    tab.select_sample("high", 0)
    tab.predict_button.click()
    panel = tab.result
    assert panel.explain_toggle.layout.display is None and panel.explanation is None  # computed only when asked
    panel.explain_toggle.value = True
    expected = tone_predictor.explain(tab.current[1])
    assert panel.explanation.label == panel.predictions[0]["label"] == expected.label == "high"
    assert np.allclose(panel.explanation.map, expected.map)
    assert 'class="onepipe-overlay"' in panel.view.value and "lowered the score of <b>high</b>" in panel.view.value
    assert picture_of(panel).shape == (tone_predictor.config.n_mels, tone_predictor.config.n_frames, 3)

    tab = dashboard.images
    tab.select_sample(0)
    tab.predict_button.click()
    tab.result.explain_toggle.value = True
    assert 'class="onepipe-overlay"' in tab.result.view.value
    assert tab.result.explanation.map.shape == shape_predictor.config.image_size
    tab.upload.value = upload_value("flat.png", _flat_png(), "image/png")  # an error hides the box
    assert tab.result.level == "error" and tab.result.explain_toggle.layout.display == "none"


def _flat_png() -> bytes:
    buffer = io.BytesIO()
    Image.new("L", (28, 28), 128).save(buffer, format="PNG")
    return buffer.getvalue()
