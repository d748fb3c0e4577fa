"""The Audio tab: pick a model, listen to examples, record from the microphone or upload, and predict."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import ipywidgets as widgets
from ipywebrtc import AudioRecorder, CameraStream

from app.config import AUDIO_EXTENSIONS
from app.ui.bundles import BundleInfo, no_samples_hint, sample_files
from app.ui.common import MAX_UPLOAD_BYTES, ModelPicker, PredictTab, call_later, predict_into, section

RECORD_LABEL, STOP_LABEL = "● Record", "■ Stop"
MIN_RECORDING_S = 1.0  # a quicker Stop is delayed: the browser needs a moment to start, and a word needs one
RECORDING_TIMEOUT_S = 8.0  # no recording this long after Stop: the microphone is missing or blocked
NO_MICROPHONE_MESSAGE = (
    "No recording came from the browser. It may have no microphone, or may be blocking it: allow the microphone "
    "(the icon in the address bar) and record again; or upload a clip."
)
UNREADABLE_RECORDING_MESSAGE = (
    "The recording could not be read: it probably stopped before any sound was captured. Press Record, say one "
    "word, then press Stop."
)


class AudioTab(PredictTab):
    """Model picker, example clips with a player, microphone, upload and the result panel."""

    kind = "audio"
    no_example_message = "Pick an example clip first."

    def __init__(self, models_dir: Path | None = None, extra_models_dirs: Sequence[Path] = ()):
        super().__init__(models_dir, extra_models_dirs)
        self.samples: dict[str, list[Path]] = {}
        if not self.infos:
            return
        self.picker = ModelPicker(self.infos, self._model_changed)

        self.class_dropdown = widgets.Dropdown(description="Class", layout=widgets.Layout(width="220px"))
        self.clip_buttons = widgets.ToggleButtons(style={"button_width": "44px"})
        self.clip_buttons.add_class("onepipe-clips")
        self.player = widgets.Audio(format="wav", autoplay=False, controls=True, layout=widgets.Layout(width="300px"))
        self.samples_hint = widgets.HTML()
        self.predict_button = widgets.Button(description="Predict", button_style="primary")
        self.predict_button.add_class("onepipe-predict")
        self.class_dropdown.observe(self._class_changed, "value")
        self.clip_buttons.observe(self._clip_changed, "value")
        self.predict_button.on_click(lambda _: self.predict_current())

        self.camera = CameraStream(constraints={"audio": True, "video": False})
        self.recorder = AudioRecorder(stream=self.camera, format="webm", layout=widgets.Layout(display="none"))
        self.recorder.add_class("onepipe-recorder")
        self.recorder.audio.observe(self._recorded, "value")
        self.record_button = widgets.ToggleButton(description=RECORD_LABEL, button_style="danger")
        self.record_button.add_class("onepipe-record")
        self.record_status = widgets.HTML(
            '<span class="onepipe-status">Say one word; it is predicted when you stop.</span>'
        )
        self.record_button.observe(self._record_toggled, "value")
        self._recording_since = 0.0  # time.monotonic() when Record was pressed
        self._takes = 0  # Record presses so far: a delayed Stop acts only on the take it was pressed in
        self._take_lock = threading.Lock()

        self.upload = self.make_upload("Upload audio", AUDIO_EXTENSIONS, "audio/*")

        self.lay_out(
            section(
                "Examples",
                widgets.HBox([self.class_dropdown, self.clip_buttons]),
                self.samples_hint,
                widgets.HBox([self.player, self.predict_button], layout=widgets.Layout(align_items="center")),
                hint="Pick a class and a clip, listen, then press Predict.",
            ),
            section(
                "Microphone",
                widgets.HBox([self.record_button, self.record_status], layout=widgets.Layout(align_items="center")),
                self.recorder,
                hint="Your browser asks for the microphone the first time you press Record.",
            ),
            section(
                "Upload",
                self.upload,
                hint=f"A short clip: wav, flac, ogg, mp3, m4a, webm… up to {MAX_UPLOAD_BYTES // 2**20} MB.",
            ),
        )
        self._model_changed(self.picker.info)

    def _model_changed(self, info: BundleInfo | None) -> None:
        self.samples = sample_files(info) if info else {}
        self.result.show_message("Pick an example clip, record or upload, and the prediction appears here.", "info")
        self.current = None
        hint = "" if self.samples or info is None else no_samples_hint(info.name)
        self.samples_hint.value = f'<div class="onepipe-hint">{hint}</div>' if hint else ""
        self.class_dropdown.options = list(self.samples)
        # Open on a real word rather than a special class such as _silence_ or _unknown_.
        words = [name for name in self.samples if not name.startswith("_")]
        self.class_dropdown.value = next(iter(words or self.samples), None)
        has_samples = bool(self.samples)
        self.class_dropdown.layout.display = self.clip_buttons.layout.display = None if has_samples else "none"
        self.player.layout.display = None if has_samples else "none"
        self.predict_button.disabled = not has_samples
        self._class_changed()

    def _class_changed(self, change: dict[str, Any] | None = None) -> None:
        files = self.samples.get(self.class_dropdown.value, [])
        self.clip_buttons.options = [(str(i + 1), i) for i in range(len(files))]
        self.clip_buttons.tooltips = [f.name for f in files]
        self.clip_buttons.value = 0 if files else None
        self._clip_changed()

    def _clip_changed(self, change: dict[str, Any] | None = None) -> None:
        files = self.samples.get(self.class_dropdown.value, [])
        index = self.clip_buttons.value
        if not files or index is None:
            return
        path = files[index]
        self.current = (f"{self.class_dropdown.value}/{path.name}", path)
        self.player.format = path.suffix.lstrip(".").lower()
        try:
            self.player.value = path.read_bytes()
        except OSError as error:
            self.result.show_message(f"Cannot read the example {path.name}: {error.strerror or error}", "error")

    def select_sample(self, class_name: str, index: int = 0) -> None:
        """Choose an example clip as a user would (for tests and the benchmark)."""
        self.class_dropdown.value = class_name
        self.clip_buttons.value = index

    def _record_toggled(self, change: dict[str, Any]) -> None:
        if change["new"]:
            with self._take_lock:  # a Stop still delayed from the last take no longer applies
                self._takes += 1
                self.record_button.description, self.record_button.button_style = STOP_LABEL, "warning"
                self.record_status.value = (
                    '<span class="onepipe-status">Recording… say one word, then press Stop.</span>'
                )
                self.device_answered()
                self.clear_media(self.recorder.audio)
                self._recording_since = time.monotonic()
                self.recorder.recording = True
        else:
            self.record_button.description, self.record_button.button_style = RECORD_LABEL, "danger"
            take = self._takes
            remaining = MIN_RECORDING_S - (time.monotonic() - self._recording_since)
            if remaining > 0:
                self.record_status.value = '<span class="onepipe-status">Recording a moment longer…</span>'
                call_later(remaining, lambda: self._stop_recording(take))
            else:
                self._stop_recording(take)

    def _stop_recording(self, take: int) -> None:
        """Stop the browser's recorder for `take`; the recording arrives in `_recorded`, or a message says why not."""
        with self._take_lock:
            if take != self._takes:  # Record was pressed again meanwhile: that take goes on
                return
            self.record_status.value = '<span class="onepipe-status">Processing the recording…</span>'
            self.await_device(RECORDING_TIMEOUT_S, NO_MICROPHONE_MESSAGE)
            self.recorder.recording = False

    def _recorded(self, change: dict[str, Any]) -> None:
        if self.clearing or self.bundle is None:
            return
        self.device_answered()
        data = bytes(change["new"] or b"")
        self.recorder.layout.display = None
        self.record_status.value = '<span class="onepipe-status">Recorded. Press Record to try again.</span>'
        if not data:
            self.result.show_message("The recording is empty: no sound arrived from the microphone.")
            return
        predict_into(self.result, self.bundle.path, data, "your recording", UNREADABLE_RECORDING_MESSAGE)
