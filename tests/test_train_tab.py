"""The Train tab without a browser: classes, examples from every source, limits and bad input, the training process
(its events, errors and Cancel), and a real training run whose model reaches the Audio tab and the download.

The browser values are set as the browser sets them (recordings, snapshots, FileUpload values); the slow tests
train tiny models with `python -m app train` in a process of its own, as the tab does.
"""

from __future__ import annotations

import html
import io
import json
import os
import re
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
import scipy.io.wavfile
from fixtures_data import TONE_CLASSES, shape_image, tone, write_wav
from PIL import Image
from test_ui import upload_value, wait_until
from ui_helpers import webm_opus

from app.errors import InputError
from app.ui import build_dashboard
from app.ui.common import MAX_UPLOAD_BYTES
from app.ui.curves import curves_html
from app.ui.example_store import check_class_name
from app.ui.training_process import TrainingRun, remove_unfinished
from app.ui.training_recipe import (
    DEFAULTS,
    DONOR_EPOCHS,
    HOLD_OUT_MIN,
    Donor,
    Recipe,
    audio_options,
    find_donor,
    held_out_listing,
    held_out_positions,
)
from app.ui.workspace import Workspace

ROOT = Path(__file__).resolve().parent.parent


def wav_bytes(frequency: float, seed: int = 0, seconds: float = 1.0) -> bytes:
    """A tone as the bytes of a 16 kHz PCM16 WAV file; frequency 0: silence."""
    samples = tone(frequency, seconds=seconds, seed=seed) if frequency else np.zeros(int(16000 * seconds), np.float32)
    buffer = io.BytesIO()
    scipy.io.wavfile.write(buffer, 16000, (samples * 32767).astype(np.int16))
    return buffer.getvalue()


def png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def zip_of(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def uploads(*files: tuple[str, bytes]) -> tuple[dict, ...]:
    """A FileUpload value of several files."""
    return tuple(item for name, data in files for item in upload_value(name, data))


@pytest.fixture
def dashboard(tmp_path):
    return build_dashboard(tmp_path / "models", workspace=Workspace.create(tmp_path / "visitors"))


@pytest.fixture
def tab(dashboard):
    return dashboard.open_train_tab()


def message(collector) -> str:
    """The collector's message as the visitor reads it."""
    return html.unescape(re.sub(r"<[^>]+>", "", collector.message.value))


# --- classes -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("", "needs a name"),
        ("   ", "needs a name"),
        ("a/b", "cannot contain /"),
        ("back\\slash", "cannot contain \\"),
        ("what?", "cannot contain ?"),
        ("..", "cannot name a class"),
        (".hidden", "cannot name a class"),
        ("_background_noise_", "cannot name a class"),
        ("x" * 41, "at most 40"),
        ("tab\there", "control characters"),
        ("CAT", "already a class named"),
    ],
)
def test_class_names_are_checked(name, expected):
    with pytest.raises(InputError, match=None) as error:
        check_class_name(name, ["cat", "dog"])
    assert expected in str(error.value)


def test_good_class_names_are_kept_trimmed():
    assert check_class_name("  chat noir ", ["cat"]) == "chat noir"
    assert check_class_name("数字 7", []) == "数字 7"


def test_the_tab_is_built_when_first_opened(dashboard):
    assert dashboard.tabs.titles == ("Audio", "Images", "Train")
    assert dashboard.train is None and dashboard.train_box.children == ()
    dashboard.tabs.selected_index = 2  # what a click on the title does
    tab = dashboard.train
    assert tab is not None and dashboard.train_box.children == (tab,)
    assert dashboard.open_train_tab() is tab  # built once
    assert tab.kind.value == "audio" and [c.name for c in tab.store.classes] == ["Class 1", "Class 2"]
    assert tab.try_box.layout.display == "none"  # nothing to try yet


def test_add_rename_and_remove_classes(tab):
    collector = tab.collector
    collector.add_class_button.click()
    assert [c.name for c in tab.store.classes] == ["Class 1", "Class 2", "Class 3"]
    assert collector.target.value == tab.store.classes[2].id  # the new class is chosen
    row = collector.rows[0]
    row.name.value = "clap"
    assert tab.store.classes[0].name == "clap" and collector.target.options[0][0] == "clap"
    row.name.value = "Class 2"  # taken
    assert "already a class named" in message(collector) and row.name.value == "clap"
    assert tab.store.classes[0].name == "clap"
    row.name.value = "a/b"
    assert "cannot contain /" in message(collector) and row.name.value == "clap"

    collector.add_examples(tab.store.classes[0].id, [("a.wav", wav_bytes(440), "")], "upload")
    row.remove.click()  # it has an example: asks again
    assert row.remove.description == "Sure?" and len(tab.store.classes) == 3
    row.remove.click()
    assert [c.name for c in tab.store.classes] == ["Class 2", "Class 3"]
    assert not any(tab.workspace.examples_dir.glob("audio/*/*.wav"))  # its file went with it
    collector.rows[1].remove.click()  # empty: at once
    assert [c.name for c in tab.store.classes] == ["Class 2"]


def test_at_most_twenty_classes(tab):
    collector = tab.collector
    for _ in range(18):
        collector.add_class_button.click()
    assert len(tab.store.classes) == 20 and collector.add_class_button.disabled
    collector.new_class()
    assert "20 classes is the most" in message(collector) and len(tab.store.classes) == 20


# --- examples ------------------------------------------------------------------------------------------------


def test_several_uploads_at_once_good_and_bad(tab):
    collector = tab.collector
    class_id = collector.target.value
    collector.upload.value = uploads(
        ("one.wav", wav_bytes(440, 1)),
        ("two.webm", webm_opus(tone(440, seconds=1.0, seed=2))),
        ("paper.pdf", b"%PDF-1.4\n" + b"0" * 3000),
        ("empty.wav", b""),
        ("quiet.wav", wav_bytes(0.0)),
    )
    assert tab.store.counts()["Class 1"] == 2 and tab.store.find(class_id).examples[0].file.suffix == ".wav"
    text = message(collector)
    assert "Added 2 uploads to" in text and "paper.pdf" in text and "expected audio" in text
    assert "empty.wav" in text and "silent" in text and "3,009 bytes" not in text  # the files are named
    assert collector.upload.value == ()  # memory freed; the same files can be chosen again
    assert [slot.layout.display for slot in collector.slots[:3]] == [None, None, "none"]
    assert (
        "onepipe-example-" in collector.gallery_style.value
        and "data:image/png;base64," in collector.gallery_style.value
    )


def test_uploads_over_the_caps_give_a_message(tab):
    collector = tab.collector
    too_large = ("big.wav", b"", MAX_UPLOAD_BYTES + 1)
    left_out = ("late.wav", b"", 12 * 2**20)  # the browser sent it empty: the files chosen together passed the cap
    collector.upload.value = tuple(
        item for name, data, size in (too_large, left_out) for item in upload_value(name, data, size=size)
    )
    text = message(collector)
    assert "limited to 20 MB" in text and "'late.wav' was not sent" in text and "fewer at a time" in text
    assert tab.store.counts()["Class 1"] == 0


def test_microphone_takes_in_a_row_go_to_the_chosen_class(tab, monkeypatch):
    from app.ui import media_inputs

    monkeypatch.setattr(media_inputs, "TAKE_SECONDS", 0.05)
    collector, microphone = tab.collector, tab.microphone
    second = tab.store.classes[1]
    collector.target.value = second.id
    collector.takes.value = 5
    collector.record_button.value = True
    assert microphone.recorder.recording is True and "Take 1 of 5" in collector.device_status.value
    recording = webm_opus(tone(TONE_CLASSES["low"], seconds=1.2, seed=3))
    for take in range(5):
        assert wait_until(lambda: microphone.recorder.recording is False or microphone.recorder.audio.value == b"")
        microphone.recorder.audio.value = recording  # what the browser sends when each take stops
        assert wait_until(lambda t=take: len(second.examples) == t + 1)
    assert tab.store.counts() == {"Class 1": 0, "Class 2": 5}
    assert [e.label for e in second.examples] == [f"recording {n}" for n in range(1, 6)]
    assert wait_until(
        lambda: collector.record_button.value is False and "Record" in collector.record_button.description
    )
    assert not microphone.busy


def test_one_take_until_stop_and_a_silent_microphone(tab, monkeypatch):
    from app.ui import media_inputs

    monkeypatch.setattr(media_inputs, "MIN_TAKE_SECONDS", 0.0)
    monkeypatch.setattr(media_inputs, "ANSWER_TIMEOUT_S", 0.3)
    collector, microphone = tab.collector, tab.microphone
    collector.record_button.value = True
    collector.record_button.value = False  # Stop
    assert wait_until(lambda: microphone.recorder.recording is False)
    microphone.recorder.audio.value = webm_opus(tone(900.0, seconds=1.0))
    assert tab.store.counts()["Class 1"] == 1 and collector.record_button.value is False
    collector.record_button.value = True
    collector.record_button.value = False  # and the browser never answers
    assert wait_until(lambda: media_inputs.NO_MICROPHONE_MESSAGE in message(collector))
    assert collector.record_button.value is False and not microphone.busy


def test_webcam_snapshot_and_burst(tab, monkeypatch):
    from app.ui import media_inputs

    monkeypatch.setattr(media_inputs, "BURST_INTERVAL_S", 0.0)
    tab.kind.value = "image"
    assert (tab.epochs.value, tab.batch_size.value, tab.learning_rate.value) == (60, 8, 0.005)  # pictures' recipe
    assert tab.speech.layout.display == "none" and tab.try_snapshot.layout.display is None
    collector, camera = tab.collector, tab.camera
    assert collector.snapshot_button.disabled
    collector.camera_button.value = True
    assert camera.on and not collector.snapshot_button.disabled
    frame = png_bytes(shape_image("circle", size=28, seed=3).resize((320, 240)).convert("RGBA"))
    collector.snapshot_button.click()
    assert camera.recorder.recording is True
    camera.recorder.image.value = frame  # the browser's PNG
    assert tab.store.counts()["Class 1"] == 1
    collector.burst_button.click()
    for count in range(2, 12):
        assert wait_until(lambda: camera.recorder.image.value == b"")  # asked for the next frame
        camera.recorder.image.value = frame  # a still camera: the same bytes each time
        assert wait_until(lambda c=count: tab.store.counts()["Class 1"] == c)
    assert not camera.busy and "Added 1 snapshot to" in message(collector)
    black = png_bytes(Image.new("RGBA", (320, 240), (0, 0, 0, 255)))  # a camera not ready yet
    collector.snapshot_button.click()
    camera.recorder.image.value = black
    assert "one flat colour" in message(collector) and tab.store.counts()["Class 1"] == 11
    collector.camera_button.value = False
    assert not camera.on and collector.snapshot_button.disabled and camera.box.children == ()


def test_the_gallery_plays_and_removes_an_example(tab):
    collector = tab.collector
    class_id = collector.target.value
    collector.add_examples(class_id, [(f"{n}.wav", wav_bytes(440, n), "") for n in range(3)], "upload")
    collector.slots[1].click()
    assert collector.selected is tab.store.find(class_id).examples[1]
    assert collector.player.value == collector.selected.file.read_bytes() and collector.player_box.children
    assert "onepipe-selected" in collector.slots[1]._dom_classes and not collector.remove_button.disabled
    collector.remove_button.click()
    assert [e.label for e in tab.store.find(class_id).examples] == ["0.wav", "2.wav"]
    assert collector.selected is None and collector.remove_button.disabled and not collector.player_box.children
    assert tab.store.usage.bytes == sum(e.size for e in tab.store.find(class_id).examples)


def test_limits_per_class_and_per_visitor(tab, monkeypatch):
    from app.ui import example_store

    collector = tab.collector
    class_id = collector.target.value
    monkeypatch.setattr(example_store, "MAX_EXAMPLES_PER_CLASS", 2)
    collector.add_examples(class_id, [(f"{n}.wav", wav_bytes(440, n), "") for n in range(3)], "upload")
    assert tab.store.counts()["Class 1"] == 2 and "the most one class can have" in message(collector)
    other = tab.store.classes[1].id
    tab.store.usage.limit = tab.store.usage.bytes + 10_000  # nearly full
    collector.add_examples(other, [("big.wav", wav_bytes(440, seconds=2.0), "")], "upload")
    assert "limit is 0 MB per visitor" in message(collector) and tab.store.counts()["Class 2"] == 0


def test_a_zip_of_class_folders(tab):
    collector = tab.collector
    members = {
        f"sounds/{name}/{n}.wav": wav_bytes(frequency, n) for name, frequency in TONE_CLASSES.items() for n in range(3)
    }
    members["sounds/README.md"] = b"my sounds"
    members["__MACOSX/sounds/._x.wav"] = b"junk"
    members["sounds/low/cover.png"] = png_bytes(Image.linear_gradient("L"))
    collector.zip_upload.value = upload_value("sounds.zip", zip_of(members))
    assert tab.store.counts() == {"Class 1": 0, "Class 2": 0, "low": 3, "mid": 3, "high": 3}
    text = message(collector)
    assert "Added 9 examples from sounds.zip" in text and "new classes: high, low, mid" in text
    assert "sounds/low/cover.png: a picture, not a sound" in text and "README.md: not in a class folder" in text
    # a second zip adds to the classes of the same name, letter case aside
    collector.zip_upload.value = upload_value("more.zip", zip_of({"LOW/9.wav": wav_bytes(300, 9)}))
    assert tab.store.counts()["low"] == 4 and len(tab.store.classes) == 5


def test_bad_zips_add_nothing(tab, tmp_path):
    collector = tab.collector
    climbing = zip_of({"good/1.wav": wav_bytes(440), "../../outside.wav": wav_bytes(440)})
    collector.zip_upload.value = upload_value("evil.zip", climbing)
    text = message(collector)
    assert "evil.zip holds the member" in text and "outside" in text and "nothing was extracted" in text
    assert tab.store.counts() == {"Class 1": 0, "Class 2": 0}
    assert not list(tmp_path.rglob("outside.wav"))

    pictures = zip_of({"cats/1.png": png_bytes(Image.linear_gradient("L"))})
    collector.zip_upload.value = upload_value("cats.zip", pictures)
    assert "holds pictures" in message(collector) and "choose Pictures" in message(collector)
    collector.zip_upload.value = upload_value("notes.zip", b"PK but not really a zip")
    assert "not a readable tar or zip archive" in message(collector)
    many = zip_of({f"class{n}/1.wav": wav_bytes(440) for n in range(20)})
    collector.zip_upload.value = upload_value("many.zip", many)
    assert "more than 20" in message(collector) and len(tab.store.classes) == 2
    assert tab.store.counts() == {"Class 1": 0, "Class 2": 0}


def test_train_refuses_empty_and_single_classes_with_a_message(tab):
    tab.train_button.click()
    assert "at least 2 examples" in tab.status.value and "Class 1" in tab.status.value and tab.run is None
    first = tab.store.classes[0].id
    tab.collector.add_examples(first, [(f"{n}.wav", wav_bytes(440, n), "") for n in range(3)], "upload")
    tab.collector.rows[1].remove.click()  # the empty class
    tab.train_button.click()
    assert "at least 2 classes" in tab.status.value and tab.run is None
    assert not tab.train_button.disabled  # the tab keeps working


def test_the_plan_says_what_is_held_out(tab):
    first, second = (c.id for c in tab.store.classes)
    tab.collector.add_examples(first, [(f"{n}.wav", wav_bytes(440, n), "") for n in range(HOLD_OUT_MIN)], "upload")
    assert "Every one will train" in tab.plan.value
    tab.collector.add_examples(second, [(f"{n}.wav", wav_bytes(900, n), "") for n in range(HOLD_OUT_MIN)], "upload")
    assert "4 of them will be held out to score the model and stop training at its best" in tab.plan.value
    tab.early_stopping.value = False
    assert tab.plan.value.endswith("4 of them will be held out to score the model.</div>")
    held = tab._held_out(tab.store)
    assert {class_id: len(ids) for class_id, ids in held.items()} == {first: 2, second: 2}
    written = tab.store.write_dataset(tab.workspace.runs_dir / "check", held)
    assert written == {"Class 1": 10, "Class 2": 10}
    listed = (tab.workspace.runs_dir / "check" / "validation_list.txt").read_text().splitlines()
    assert len(listed) == 4 and all((tab.workspace.runs_dir / "check" / name).is_file() for name in listed)


def test_recipe_options():
    assert held_out_positions(HOLD_OUT_MIN - 1) == []
    assert held_out_positions(10) == [2, 7] and held_out_positions(20) == [2, 7, 12, 17]
    assert len(held_out_positions(500)) == 100
    arguments = Recipe(epochs=5, batch_size=8, learning_rate=0.001).arguments("audio", holding_out=False)
    assert arguments[:6] == ["--epochs", "5", "--batch-size", "8", "--learning-rate", "0.001"]
    assert "--validation-percent" in arguments and arguments[arguments.index("--validation-percent") + 1] == "0"
    assert "--time-stretch" in arguments and "--rotation" not in arguments
    pictures = DEFAULTS["image"]
    assert not pictures.early_stopping and held_out_listing(pictures) == "testing_list.txt"
    split = pictures.arguments("image", holding_out=True)
    assert split[split.index("--test-percent") + 1] == "20" and "--patience" not in split
    assert held_out_listing(DEFAULTS["audio"]) == "validation_list.txt"
    speech = Recipe(speech=True)
    assert "--subtract-band-mean" in speech.arguments("audio", holding_out=True)
    assert "--subtract-band-mean" not in speech.arguments("image", holding_out=True)
    assert "--subtract-band-mean" not in Recipe().arguments("audio", holding_out=True)
    assert "--init-from" not in Recipe().arguments("audio", holding_out=True)
    donor = Donor(Path("models/speech-commands"), ("--sample-rate", "16000", "--subtract-band-mean"))
    started = Recipe(donor=donor).arguments("audio", holding_out=True)
    assert started[-5:] == ["--sample-rate", "16000", "--subtract-band-mean", "--init-from", "models/speech-commands"]
    with pytest.raises(ValueError):
        Recipe(epochs=0)


def test_the_donor_is_a_shipped_bundle_whose_preprocessing_options_can_give(tmp_path):
    from app import paths

    shipped = find_donor(paths.MODELS_DIR, "audio")
    assert shipped is not None and shipped.bundle == paths.MODELS_DIR / "speech-commands"
    assert "--subtract-band-mean" in shipped.options and shipped.options[:2] == ("--sample-rate", "16000")
    assert find_donor(paths.MODELS_DIR, "image") is None and find_donor(tmp_path, "audio") is None
    (tmp_path / "speech-commands").mkdir()
    (tmp_path / "speech-commands" / "metadata.json").write_text("{}")
    assert find_donor(tmp_path, "audio") is None  # unreadable: trained from scratch
    eight_khz = {"sample_rate": 8000, "clip_seconds": 1.0, "n_fft": 256, "hop_length": 80, "n_mels": 40,
                 "f_min": 20.0, "f_max": 3800.0, "top_db": 80.0, "subtract_band_mean": False}  # fmt: skip
    assert audio_options(eight_khz) == [
        "--sample-rate", "8000", "--clip-seconds", "1", "--n-fft", "256", "--hop-length", "80", "--n-mels", "40",
    ]  # fmt: skip
    assert audio_options({**eight_khz, "top_db": 60.0}) is None and audio_options({"n_fft": "x"}) is None


def test_sounds_start_from_the_shipped_speech_model_unless_cleared(tmp_path, monkeypatch):
    from app import paths
    from app.ui import train_tab
    from app.ui.train_tab import TrainTab

    commands: list[list[str]] = []

    class RecordedRun(TrainingRun):  # runs a process that fails at once instead of training
        def __init__(self, command, *args, **kwargs):
            commands.append(command)
            super().__init__([sys.executable, "-c", "raise SystemExit(1)"], *args, **kwargs)

    monkeypatch.setattr(train_tab, "TrainingRun", RecordedRun)
    tab = TrainTab(paths.MODELS_DIR, workspace=Workspace.create(tmp_path / "visitors"))
    assert tab.start_from.value and tab.start_from.layout.display is None and tab.epochs.value == DONOR_EPOCHS
    for example_class, frequency in zip(tab.store.classes, (440, 900), strict=True):
        tab.collector.add_examples(example_class.id, [(f"{n}.wav", wav_bytes(frequency, n), "") for n in range(3)], "")
    tab.start_training()
    assert tab.run.wait(60)
    command = commands[-1]
    assert command[command.index("--init-from") + 1] == str(paths.MODELS_DIR / "speech-commands")
    assert "--subtract-band-mean" in command
    tab.start_from.value = False
    assert tab.epochs.value == DEFAULTS["audio"].epochs
    tab.start_training()
    assert tab.run.wait(60) and "--init-from" not in commands[-1]
    tab.kind.value = "image"
    assert tab.start_from.layout.display == "none"


def test_curves_grow_with_each_epoch():
    history: dict[str, list[float]] = {}
    for epoch, (loss, accuracy) in enumerate([(1.0, 0.5), (0.6, 0.8)], start=1):
        history.setdefault("loss", []).append(loss)
        history.setdefault("accuracy", []).append(accuracy)
        drawn = curves_html(history, epochs=10)
        assert f'data-epochs="{epoch}"' in drawn and drawn.count("<polyline") == 2
    assert "held out" not in drawn
    history.update(val_loss=[0.9, None], val_accuracy=[0.5, 0.75])
    assert curves_html(history, epochs=10).count("<polyline") == 4  # a missing value is left out of its line


# --- the training process ------------------------------------------------------------------------------------


def run_script(tmp_path: Path, code: str, events: list, ends: list) -> TrainingRun:
    run = TrainingRun(
        [sys.executable, "-c", code], tmp_path / "run.log", on_event=events.append, on_end=ends.append, cwd=tmp_path
    )
    run.start()
    return run


def test_a_run_reports_its_events_and_its_summary(tmp_path):
    code = (
        "import json, sys\n"
        "print(json.dumps({'event': 'phase', 'phase': 'fitting', 'epochs': 2}))\n"
        "print('some library printed this')\n"
        "print(json.dumps({'event': 'epoch', 'epoch': 1, 'epochs': 2, 'loss': 0.5}))\n"
        "print(json.dumps({'bundle': '/x/my-sounds-1', 'validation_accuracy': 1.0}))\n"
    )
    events, ends = [], []
    run = run_script(tmp_path, code, events, ends)
    assert run.wait(30)
    assert [e["event"] for e in events] == ["phase", "epoch"]
    assert ends[0].returncode == 0 and ends[0].summary["bundle"] == "/x/my-sounds-1" and not ends[0].cancelled


def test_a_failed_run_gives_its_one_line_message(tmp_path):
    events, ends = [], []
    code = "import sys; print('error: every class needs files', file=sys.stderr); sys.exit(2)"
    assert run_script(tmp_path, code, events, ends).wait(30)
    assert ends[0].returncode == 2 and ends[0].summary is None and ends[0].message == "every class needs files"
    ends.clear()
    assert run_script(tmp_path, "import os; os.abort()", events, ends).wait(30)
    assert "stopped unexpectedly" in ends[0].message


def test_cancel_stops_the_whole_process_group_at_once(tmp_path):
    code = (
        "import json, subprocess, sys, time\n"
        "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
        "print(json.dumps({'event': 'phase', 'phase': 'fitting', 'child': child.pid}), flush=True)\n"
        "time.sleep(60)\n"
    )
    events, ends = [], []
    run = run_script(tmp_path, code, events, ends)
    assert wait_until(lambda: bool(events))
    started = time.monotonic()
    run.cancel()
    assert run.wait(10) and time.monotonic() - started < 5
    assert ends[0].cancelled and "cancelled" in ends[0].message and ends[0].summary is None
    assert wait_until(lambda: not running(events[0]["child"]), seconds=10)  # the process it started went too


def running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}").exists() and "zombie" not in Path(f"/proc/{pid}/status").read_text().lower()


def test_unfinished_bundle_folders_are_removed(tmp_path):
    bundle = tmp_path / "models" / "my-sounds-1"
    (tmp_path / "models" / ".my-sounds-1.staging-1-abcdefgh").mkdir(parents=True)
    (tmp_path / "models" / "my-sounds-10").mkdir()
    remove_unfinished(bundle)
    assert sorted(p.name for p in (tmp_path / "models").iterdir()) == ["my-sounds-10"]


# --- real training runs (slow) -------------------------------------------------------------------------------


def log_of(tab) -> str:
    """The status and the end of the training run's log, for a failure's message."""
    return f"{tab.status.value}\n{tab.run.log_path.read_text(errors='replace')[-3000:]}"


def collect_tones(tab, per_class: int = HOLD_OUT_MIN) -> None:
    """Three tone classes of `per_class` uploads each."""
    collector = tab.collector
    collector.add_class_button.click()
    for example_class, (name, frequency) in zip(list(tab.store.classes), TONE_CLASSES.items(), strict=True):
        tab.store.rename_class(example_class.id, name)
        clips = [(f"{name}-{n}.wav", wav_bytes(frequency, seed=n), "") for n in range(per_class)]
        collector.add_examples(example_class.id, clips, "upload")
    collector.refresh()


@pytest.mark.slow
def test_training_in_the_tab_makes_a_model_for_every_tab(dashboard, tmp_path):
    tab = dashboard.train or dashboard.open_train_tab()
    collect_tones(tab)
    tab.epochs.value = 4
    tab.train_button.click()
    assert tab.train_button.disabled and not tab.cancel_button.disabled
    assert tab.run.wait(300)
    assert "Model ready" in tab.status.value, log_of(tab)
    assert 'data-epochs="' in tab.curves.value and 'data-epochs="0"' not in tab.curves.value
    bundle = tab.model
    assert bundle is not None and tab.workspace.contains(bundle) and bundle.name == "my-sounds-1"
    assert sorted(p.name for p in bundle.iterdir()) == [
        "metadata.json", "model.keras", "model.tflite", "report.png", "samples",
    ]  # fmt: skip
    assert (
        not (tab.workspace.runs_dir / "1" / "data").exists() and (tab.workspace.runs_dir / "1" / "train.log").exists()
    )
    assert "per class" in tab.metrics.value and "held-out examples" in tab.metrics.value
    for example_class in tab.store.classes:  # the Audio tab's examples: the held-out ones first
        held = {example_class.examples[i].file.name for i in held_out_positions(HOLD_OUT_MIN)}
        assert held <= {path.name for path in (bundle / "samples" / example_class.name).iterdir()}

    # at once in the Audio tab (which had no models before: a new tab took its place), chosen, with examples
    audio = dashboard.audio
    assert dashboard.tabs.children[0] is audio and audio.picker.dropdown.value == "my-sounds-1"
    audio.upload.value = upload_value("mid.wav", wav_bytes(TONE_CLASSES["mid"], seed=77))
    assert audio.result.level == "result" and audio.result.predictions[0]["label"] == "mid"
    audio.predict_button.click()
    assert audio.result.level == "result"
    # and in the try-it panel
    tab.try_upload.value = upload_value("high.wav", wav_bytes(TONE_CLASSES["high"], seed=78))
    assert tab.result.predictions[0]["label"] == "high"

    # the download: a zip of the bundle that Predictor.load and `python -m app predict` take once unzipped
    tab.download_button.click()
    link = tab.download_link.value
    assert 'download="my-sounds-1.zip"' in link
    import base64

    data = base64.b64decode(re.search(r'href="data:application/zip;base64,([^"]+)"', link).group(1))
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        assert sorted(archive.namelist()) == [f"my-sounds-1/{name}" for name in (
            "metadata.json", "model.keras", "model.tflite", "report.png")]  # fmt: skip
        archive.extractall(tmp_path / "downloads")
    from app.predict import Predictor

    clip = write_wav(tmp_path / "low.wav", tone(TONE_CLASSES["low"], seed=79))
    assert Predictor.load(tmp_path / "downloads" / "my-sounds-1")(clip)[0]["label"] == "low"
    result = subprocess.run(
        [sys.executable, "-m", "app", "predict", str(tmp_path / "downloads" / "my-sounds-1"), str(clip)],
        capture_output=True, text=True, cwd=tmp_path, env=dict(os.environ, PYTHONPATH=str(ROOT)),
    )  # fmt: skip
    assert result.returncode == 0 and json.loads(result.stdout)["predictions"][0]["label"] == "low"


@pytest.mark.slow
def test_cancel_during_training_leaves_no_model(tab):
    collect_tones(tab, per_class=4)
    tab.epochs.value = 200
    tab.train_button.click()
    assert wait_until(lambda: "Epoch" in tab.status.value or not tab.run.running, seconds=240)
    assert "Epoch" in tab.status.value, log_of(tab)
    started = time.monotonic()
    tab.cancel_button.click()
    assert tab.run.wait(30) and time.monotonic() - started < 10
    assert "cancelled" in tab.status.value and not tab.train_button.disabled and tab.cancel_button.disabled
    assert tab.model is None and list(tab.workspace.models_dir.iterdir()) == []
    assert "trainer" not in json.loads((tab.workspace.root / "owner.json").read_text())


@pytest.mark.slow
def test_the_kernel_never_imports_tensorflow_while_a_model_trains(tmp_path):
    """The whole flow in a fresh process, as a dashboard kernel runs it: TensorFlow stays in the training process."""
    clips = [write_wav(tmp_path / f"{name}.wav", tone(TONE_CLASSES[name])) for name in ("low", "high")]
    code = f"""
import sys
sys.path[:0] = [{str(ROOT / "tests")!r}, {str(ROOT)!r}]
from pathlib import Path
from app.ui import build_dashboard
from app.ui.workspace import Workspace
dashboard = build_dashboard(Path({str(tmp_path / "models")!r}), workspace=Workspace.create(Path({str(tmp_path)!r})))
tab = dashboard.open_train_tab()
for example_class, clip in zip(tab.store.classes, {[str(path) for path in clips]!r}):
    tab.collector.add_examples(example_class.id, [(clip, open(clip, "rb").read(), "")] * 3, "upload")
tab.epochs.value = 2
tab.train_button.click()
assert tab.run.wait(300) and tab.model is not None, tab.status.value
tab.predict(open({str(clips[0])!r}, "rb").read(), "low.wav")
assert tab.result.level == "result", tab.result.message
print(sorted(m for m in sys.modules if m.split(".")[0] in ("tensorflow", "keras")))
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT / "notebooks")
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().splitlines()[-1] == "[]"


@pytest.mark.slow
def test_train_progress_jsonl_on_the_command_line(tmp_path, capsys):
    from app.cli import main

    for name, frequency in TONE_CLASSES.items():
        for n in range(4):
            write_wav(tmp_path / "data" / name / f"{n}.wav", tone(frequency, seed=n))
    argv = ["train", str(tmp_path / "data"), "--out", str(tmp_path / "model"), "--epochs", "2", "--progress", "jsonl"]
    assert main([*argv, "--validation-percent", "0", "--test-percent", "0"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    events = [line for line in lines if "event" in line]
    assert [e["phase"] for e in events if e["event"] == "phase"] == [
        "scanning", "features", "loading", "fitting", "evaluating", "exporting", "saving",
    ]  # fmt: skip
    epochs = [e for e in events if e["event"] == "epoch"]
    assert [e["epoch"] for e in epochs] == [1, 2] and all({"loss", "accuracy", "eta_seconds"} <= set(e) for e in epochs)
    assert "event" not in lines[-1] and lines[-1]["bundle"] == str((tmp_path / "model").resolve())


def test_the_benchmark_script_makes_its_data(tmp_path):
    """benchmarks/train_tab.py (run by hand, it needs a browser and minutes): its generated examples are what the
    tab takes, and it reads a process's peak memory."""
    import importlib.util

    import psutil

    spec = importlib.util.spec_from_file_location("benchmark_train_tab", ROOT / "benchmarks" / "train_tab.py")
    benchmark = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(benchmark)
    sounds = benchmark.write_tones(tmp_path / "sounds", per_class=2)
    pictures = benchmark.write_snapshots(tmp_path / "pictures", per_class=2)
    assert [len(files) for files in sounds.values()] == [2, 2, 2] and len(pictures) == 3
    assert Image.open(pictures["circle"][0]).size == (320, 240) and Image.open(pictures["circle"][0]).mode == "RGBA"
    assert benchmark.peak_rss_mb(psutil.Process()) > 10
