"""The Images tab: pick a model, click an example or upload or take a webcam snapshot, and predict."""

from __future__ import annotations

import html
import uuid
from pathlib import Path
from typing import Any

import ipywidgets as widgets
from ipywebrtc import CameraStream, ImageRecorder

from app import paths
from app.config import IMAGE_EXTENSIONS
from app.errors import InputError
from app.ui.bundles import BundleInfo, list_bundle_infos, no_samples_hint, sample_files
from app.ui.common import MAX_UPLOAD_BYTES, ModelPicker, no_models_message, predict_into, read_upload, section
from app.ui.render import data_uri, thumbnail_png
from app.ui.result_panel import ResultPanel

GALLERY_PER_CLASS = 2  # thumbnails per class in the gallery
CAMERA_CONSTRAINTS = {"audio": False, "video": {"width": 320, "height": 240}}


class ImageTab(widgets.VBox):
    """Model picker, a clickable gallery, upload, webcam snapshot and the result panel."""

    def __init__(self, models_dir: Path | None = None):
        super().__init__()
        self.add_class("onepipe-tab")
        self.models_dir = Path(models_dir or paths.MODELS_DIR)
        self.result = ResultPanel()
        self.current: tuple[str, Any] | None = None
        self.thumbnails: list[widgets.Button] = []
        self.thumbnail_files: list[tuple[str, Path]] = []
        self.camera: CameraStream | None = None
        self.recorder: ImageRecorder | None = None
        infos = list_bundle_infos("image", self.models_dir)
        if not infos:
            self.picker = None
            self.children = [widgets.HTML(no_models_message("image", self.models_dir))]
            return
        self.picker = ModelPicker(infos, self._model_changed)

        self.gallery_style = widgets.HTML()
        self.gallery = widgets.Box()
        self.gallery.add_class("onepipe-gallery")
        self.samples_hint = widgets.HTML()
        self.selected = widgets.HTML(layout=widgets.Layout(margin="0 12px 0 0"))
        self.selected.add_class("onepipe-preview")
        self.predict_button = widgets.Button(description="Predict", button_style="primary")
        self.predict_button.add_class("onepipe-predict")
        self.predict_button.on_click(lambda _: self.predict_current())

        self.upload = widgets.FileUpload(
            accept=",".join(IMAGE_EXTENSIONS) + ",image/*", multiple=False, description="Upload image"
        )
        self.upload.add_class("onepipe-upload")
        self.upload.observe(self._uploaded, "value")

        self.camera_button = widgets.ToggleButton(description="Start camera")
        self.camera_button.add_class("onepipe-camera-toggle")
        self.camera_button.observe(self._camera_toggled, "value")
        self.snapshot_button = widgets.Button(description="Snapshot", button_style="primary", disabled=True)
        self.snapshot_button.add_class("onepipe-snapshot")
        self.snapshot_button.on_click(lambda _: self.take_snapshot())
        self.camera_box = widgets.Box()

        controls = widgets.VBox(
            [
                self.picker,
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
            ]
        )
        controls.add_class("onepipe-controls")
        columns = widgets.Box([controls, self.result])
        columns.add_class("onepipe-columns")
        self.children = [columns]
        self._model_changed(self.picker.info)

    @property
    def bundle(self) -> BundleInfo | None:
        """The chosen image bundle."""
        return self.picker.info if self.picker else None

    def _model_changed(self, info: BundleInfo | None) -> None:
        self.result.show_message("Click an example, upload a picture or take a snapshot.", "info")
        self.current = None
        samples = sample_files(info.path, "image") if info else {}
        self.thumbnail_files = [(name, f) for name, files in samples.items() for f in files[:GALLERY_PER_CLASS]]
        prefix = f"onepipe-thumb-{uuid.uuid4().hex[:8]}"
        rules, buttons = [], []
        for index, (class_name, path) in enumerate(self.thumbnail_files):
            try:
                uri = data_uri(thumbnail_png(path))
            except Exception:
                continue
            rules.append(f".{prefix}-{index} {{ background-image: url({uri}); }}")
            button = widgets.Button(description=class_name, tooltip=f"{class_name}/{path.name}")
            button.add_class("onepipe-thumb")
            button.add_class(f"{prefix}-{index}")
            button.on_click(lambda _, i=index: self.select_sample(i))
            buttons.append(button)
        self.gallery_style.value = "<style>" + "\n".join(rules) + "</style>"
        self.thumbnails = buttons
        self.gallery.children = buttons
        self.samples_hint.value = "" if buttons else f'<div class="onepipe-hint">{no_samples_hint(info.name)}</div>'
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

    def predict_current(self) -> list[dict[str, Any]] | None:
        """Predict the selected gallery picture."""
        if self.bundle is None or self.current is None:
            self.result.show_message("Click an example picture first.", "info")
            return None
        name, source = self.current
        return predict_into(self.result, self.bundle.path, source, name)

    def _uploaded(self, change: dict[str, Any]) -> None:
        if not change["new"] or self.bundle is None:
            return
        try:
            name, data = read_upload(change["new"])
        except InputError as error:
            self.result.show_error(error)
        else:
            predict_into(self.result, self.bundle.path, data, name)
        finally:
            self.upload.value = ()

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
        self.recorder.recording = False
        self.recorder.recording = True

    def _snapshot_taken(self, change: dict[str, Any]) -> None:
        data = bytes(change["new"] or b"")
        if self.bundle is None:
            return
        if not data:
            self.result.show_message("The snapshot is empty: no picture came from the camera.")
            return
        predict_into(self.result, self.bundle.path, data, "webcam snapshot")
