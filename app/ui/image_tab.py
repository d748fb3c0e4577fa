"""The Images tab: pick a model, click an example or upload or take a webcam snapshot, and predict."""

from __future__ import annotations

import html
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import ipywidgets as widgets
from ipywebrtc import CameraStream, ImageRecorder

from app.config import IMAGE_EXTENSIONS
from app.ui.bundles import BundleInfo, no_samples_hint, sample_files
from app.ui.common import MAX_UPLOAD_BYTES, ModelPicker, PredictTab, predict_into, section
from app.ui.render import data_uri, thumbnail_png

GALLERY_PER_CLASS = 2  # thumbnails per class in the gallery
CAMERA_CONSTRAINTS = {"audio": False, "video": {"width": 320, "height": 240}}
SNAPSHOT_TIMEOUT_S = 8.0  # no frame after this long: the camera is missing or blocked
NO_CAMERA_MESSAGE = (
    "No picture came from the camera. This browser may have no camera, or may be blocking it: allow the camera "
    "(the icon in the address bar), then press Snapshot again; or upload a photo."
)


class ImageTab(PredictTab):
    """Model picker, a clickable gallery, upload, webcam snapshot and the result panel."""

    kind = "image"
    no_example_message = "Click an example picture first."

    def __init__(self, models_dir: Path | None = None, extra_models_dirs: Sequence[Path] = ()):
        super().__init__(models_dir, extra_models_dirs)
        self.thumbnails: list[widgets.Button] = []
        self.thumbnail_files: list[tuple[str, Path]] = []
        self.camera: CameraStream | None = None
        self.recorder: ImageRecorder | None = None
        if not self.infos:
            return
        self.picker = ModelPicker(self.infos, self._model_changed)

        self.gallery_style = widgets.HTML()
        self.gallery = widgets.Box()
        self.gallery.add_class("onepipe-gallery")
        self.samples_hint = widgets.HTML()
        self.selected = widgets.HTML(layout=widgets.Layout(margin="0 12px 0 0"))
        self.selected.add_class("onepipe-preview")
        self.predict_button = widgets.Button(description="Predict", button_style="primary")
        self.predict_button.add_class("onepipe-predict")
        self.predict_button.on_click(lambda _: self.predict_current())

        self.upload = self.make_upload("Upload image", IMAGE_EXTENSIONS, "image/*")

        self.camera_button = widgets.ToggleButton(description="Start camera")
        self.camera_button.add_class("onepipe-camera-toggle")
        self.camera_button.observe(self._camera_toggled, "value")
        self.snapshot_button = widgets.Button(description="Snapshot", button_style="primary", disabled=True)
        self.snapshot_button.add_class("onepipe-snapshot")
        self.snapshot_button.on_click(lambda _: self.take_snapshot())
        self.camera_box = widgets.Box()

        self.lay_out(
            section(
                "Examples",
                self.gallery_style,
                self.gallery,
                self.samples_hint,
                widgets.HBox([self.selected, self.predict_button], layout=widgets.Layout(align_items="center")),
                hint="Click a picture, then press Predict.",
            ),
            section(
                "Upload",
                self.upload,
                hint=f"A photo or drawing: png, jpeg, gif, bmp, webp, tiff… up to {MAX_UPLOAD_BYTES // 2**20} MB. "
                "Phone photos in any orientation work.",
            ),
            section(
                "Webcam",
                widgets.HBox([self.camera_button, self.snapshot_button]),
                self.camera_box,
                hint="Start the camera, hold something up, press Snapshot.",
            ),
        )
        self._model_changed(self.picker.info)

    def _model_changed(self, info: BundleInfo | None) -> None:
        self.result.show_message("Click an example, upload a picture or take a snapshot.", "info")
        self.current = None
        samples = sample_files(info) if info else {}
        prefix = f"onepipe-thumb-{uuid.uuid4().hex[:8]}"
        rules, buttons = [], []
        self.thumbnail_files = []  # the files shown, in button order
        for class_name, path, uri in _readable_thumbnails(samples):
            index = len(self.thumbnail_files)
            self.thumbnail_files.append((class_name, path))
            rules.append(f".{prefix}-{index} {{ background-image: url({uri}); }}")
            button = widgets.Button(description=class_name, tooltip=f"{class_name}/{path.name}")
            button.add_class("onepipe-thumb")
            button.add_class(f"{prefix}-{index}")
            button.on_click(lambda _, i=index: self.select_sample(i))
            buttons.append(button)
        self.gallery_style.value = "<style>" + "\n".join(rules) + "</style>"
        self.thumbnails = buttons
        self.gallery.children = buttons
        hint = "" if buttons or info is None else no_samples_hint(info.name)
        self.samples_hint.value = f'<div class="onepipe-hint">{hint}</div>' if hint else ""
        self.predict_button.disabled = not buttons
        self.selected.value = ""
        if buttons:
            self.select_sample(0)

    def select_sample(self, index: int) -> None:
        """Choose the gallery picture at `index` (as a click does)."""
        class_name, path = self.thumbnail_files[index]
        for i, button in enumerate(self.thumbnails):
            (button.add_class if i == index else button.remove_class)("onepipe-selected")
        self.current = (f"{class_name}/{path.name}", path)
        self.selected.value = (
            f'<div class="onepipe-hint">Selected: <b>{html.escape(class_name)}/{html.escape(path.name)}</b></div>'
        )

    def _camera_toggled(self, change: dict[str, Any]) -> None:
        if change["new"]:
            self.camera = CameraStream(constraints=CAMERA_CONSTRAINTS)
            self.camera.add_class("onepipe-camera")
            self.recorder = ImageRecorder(stream=self.camera, format="png")
            self.recorder.image.observe(self._snapshot_taken, "value")
            self.camera_box.children = [self.camera]
            self.camera_button.description = "Stop camera"
            self.snapshot_button.disabled = False
        else:
            self.device_answered()
            self.camera_box.children = []
            for widget in (self.recorder, self.camera):
                if widget is not None:
                    widget.close()  # closing the stream model stops the camera in the browser
            self.camera = self.recorder = None
            self.camera_button.description = "Start camera"
            self.snapshot_button.disabled = True

    def take_snapshot(self) -> None:
        """Ask the browser for one camera frame; it is predicted when it arrives."""
        if self.recorder is None:
            self.result.show_message("Start the camera first.", "info")
            return
        self.result.show_message("Taking a snapshot…", "busy")
        self.clear_media(self.recorder.image)  # a still scene sends the same bytes again
        self.await_device(SNAPSHOT_TIMEOUT_S, NO_CAMERA_MESSAGE)
        self.recorder.recording = False
        self.recorder.recording = True

    def _snapshot_taken(self, change: dict[str, Any]) -> None:
        if self.clearing or self.bundle is None:
            return
        self.device_answered()
        data = bytes(change["new"] or b"")
        if not data:
            self.result.show_message("The snapshot is empty: no picture came from the camera.")
            return
        predict_into(self.result, self.bundle.path, data, "webcam snapshot")


def _readable_thumbnails(samples: dict[str, list[Path]]):
    """(class name, file, PNG data URI) for up to GALLERY_PER_CLASS readable files of each class; a sample
    that cannot be read is skipped and the next one shown."""
    for class_name, files in samples.items():
        shown = 0
        for path in files:
            if shown == GALLERY_PER_CLASS:
                break
            try:
                uri = data_uri(thumbnail_png(path))
            except Exception:
                continue
            shown += 1
            yield class_name, path, uri
