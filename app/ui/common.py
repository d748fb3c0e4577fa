"""Pieces both tabs share: the model picker, upload checks and the timed predict-and-show step."""

from __future__ import annotations

import html
import logging
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import ipywidgets as widgets

from app import paths
from app.errors import InputError, UndecodableError
from app.sources import describe_source
from app.ui.bundles import BundleInfo, get_predictor, list_bundle_infos
from app.ui.render import image_png, spectrogram_png
from app.ui.result_panel import ResultPanel

MAX_UPLOAD_BYTES = 20 * 1024 * 1024  # the browser sends larger files as empty (see styles.UPLOAD_GUARD_JS)
TOP_K = 5
log = logging.getLogger("onepipe.ui")


def section(title: str, *children: widgets.Widget, hint: str = "") -> widgets.VBox:
    """A titled block of controls."""
    header = f'<div class="onepipe-section-title">{html.escape(title)}</div>'
    if hint:
        header += f'<div class="onepipe-hint">{hint}</div>'
    box = widgets.VBox([widgets.HTML(header), *children])
    box.add_class("onepipe-section")
    return box


class ModelPicker(widgets.VBox):
    """A dropdown of bundles of one kind and the chosen bundle's classes."""

    def __init__(self, infos: Sequence[BundleInfo], on_change: Callable[[BundleInfo | None], None]):
        self.infos = {info.name: info for info in infos}
        self.dropdown = widgets.Dropdown(
            options=list(self.infos), description="Model", layout=widgets.Layout(width="320px")
        )
        self.classes = widgets.HTML()
        super().__init__([self.dropdown, self.classes])
        self.add_class("onepipe-model-picker")
        self._on_change = on_change
        self.dropdown.observe(self._changed, "value")
        self._show_classes()

    @property
    def info(self) -> BundleInfo | None:
        """The chosen bundle, or None when there is none."""
        return self.infos.get(self.dropdown.value) if self.dropdown.value else None

    def _show_classes(self) -> None:
        info = self.info
        if info is None:
            self.classes.value = ""
            return
        chips = "".join(f'<span class="onepipe-chip">{html.escape(name)}</span>' for name in info.class_names)
        self.classes.value = f'<div class="onepipe-classes"><span>{len(info.class_names)} classes:</span>{chips}</div>'

    def _changed(self, change: dict[str, Any]) -> None:
        self._show_classes()
        self._on_change(self.info)

    def refresh(self, infos: Sequence[BundleInfo], select: str | None = None) -> None:
        """List `infos` instead, choosing the bundle named `select` (else keeping the choice if it is still listed);
        the tab hears of the choice once."""
        previous = self.dropdown.value
        self.infos = {info.name: info for info in infos}
        self.dropdown.unobserve(self._changed, "value")
        try:
            self.dropdown.options = list(self.infos)
            chosen = select if select in self.infos else previous
            self.dropdown.value = chosen if chosen in self.infos else next(iter(self.infos), None)
        finally:
            self.dropdown.observe(self._changed, "value")
        self._changed({"new": self.dropdown.value})


def read_upload(value: Sequence[dict[str, Any]]) -> tuple[str, bytes]:
    """Name and bytes of the first file of an ipywidgets 8 FileUpload value.

    Raises:
        InputError: larger than MAX_UPLOAD_BYTES, or only partly received.
    """
    item = value[0]
    name = str(item.get("name") or "upload")
    size = int(item.get("size") or 0)
    content = item.get("content")
    data = bytes(content) if content is not None else b""
    limit_mb = MAX_UPLOAD_BYTES / 2**20
    if max(size, len(data)) > MAX_UPLOAD_BYTES:
        raise InputError(f"'{name}' is {max(size, len(data)) / 2**20:.1f} MB; uploads are limited to {limit_mb:.0f} MB")
    if size and len(data) != size:
        raise InputError(f"only {len(data):,} of the {size:,} bytes of '{name}' arrived; please upload it again")
    return name, data


def call_later(seconds: float, callback: Callable[[], None]) -> threading.Timer:
    """Run `callback` after `seconds` on a timer thread (widget changes made there reach the browser)."""
    timer = threading.Timer(seconds, callback)
    timer.daemon = True
    timer.start()
    return timer


def predict_into(
    panel: ResultPanel, bundle_dir: Path, source: Any, source_name: str, undecodable_message: str | None = None
) -> list[dict[str, Any]] | None:
    """Predict `source` with the bundle's Predictor and show the result (or a friendly message) in `panel`.

    The time shown covers decoding, features and the model (not drawing the picture). `undecodable_message`
    replaces the decoder's message for input that is not a file the user chose (a recording).

    Returns:
        The predictions as Predictor.__call__ gives them, or None after an error.
    """
    try:
        predictor = get_predictor(bundle_dir)
        start = time.perf_counter()
        features = predictor.preprocess(source)
        probabilities, inner = predictor.served(features)
        predictions = predictor.postprocess(probabilities, top_k=TOP_K)
        familiar = predictor.is_familiar(probabilities, inner)  # None: the bundle has no familiarity threshold
        elapsed_ms = (time.perf_counter() - start) * 1000
        if predictor.kind == "audio":
            config = predictor.config
            picture = spectrogram_png(features)
            caption = (
                f"Log-mel spectrogram the model heard: {features.shape[0]} frames × {features.shape[1]} mel bands, "
                f"{config.clip_seconds:g} s (low pitches at the bottom)"
            )
        else:
            picture = image_png(features)
            height, width, channels = features.shape
            caption = f"The image as the model saw it: {width}×{height} px, {'grey' if channels == 1 else 'colour'}"
    except Exception as error:  # every failure becomes a short message in the panel
        log.info("prediction failed for %s: %r", source_name, error)
        if isinstance(error, UndecodableError) and undecodable_message:
            panel.show_message(undecodable_message)
            return None
        if isinstance(error, InputError) and isinstance(source, (bytes, bytearray, memoryview)):
            # messages about uploads and recordings name the file, not "14,512 bytes"
            error = InputError(str(error).replace(describe_source(source), f"'{source_name}'", 1))
        panel.show_error(error)
        return None
    panel.show_predictions(
        predictions,
        picture,
        caption,
        elapsed_ms,
        source_name,
        pixelated=predictor.kind == "image",
        explain=lambda: predictor.explain(source, label=predictions[0]["label"]),  # only if the user asks
        familiar=familiar,
    )
    return predictions


class PredictTab(widgets.VBox):
    """What both tabs share: bundles of one kind in a picker, controls beside the result panel, Predict
    on the chosen example, and uploads. Subclasses build their controls and call `lay_out`."""

    kind = ""  # "audio" or "image"
    no_example_message = "Pick an example first."

    def __init__(self, models_dir: Path | None = None, extra_models_dirs: Sequence[Path] = ()):
        super().__init__()
        self.add_class("onepipe-tab")
        self.models_dir = Path(models_dir or paths.MODELS_DIR)
        self.extra_models_dirs = [Path(folder) for folder in extra_models_dirs]  # a visitor's own models
        self.result = ResultPanel()
        self.current: tuple[str, Any] | None = None  # (name shown, source) that Predict uses
        self.infos = list_bundle_infos(self.kind, self.models_dir, self.extra_models_dirs)
        self.picker: ModelPicker | None = None
        self._waiting_lock = threading.Lock()
        self._waiting: threading.Timer | None = None  # while a device is awaited
        self._clearing = False
        if not self.infos:
            self.children = [widgets.HTML(no_models_message(self.kind, self.models_dir))]

    @property
    def bundle(self) -> BundleInfo | None:
        """The chosen bundle, or None when there is none."""
        return self.picker.info if self.picker else None

    def refresh_models(self, extra_models_dir: Path | None = None, select: str | None = None) -> bool:
        """List the bundles again (also those of `extra_models_dir` from now on) and choose the one named `select`.
        Returns False when this tab has no picker (it had no bundle at all): build a new tab then."""
        if extra_models_dir is not None and Path(extra_models_dir) not in self.extra_models_dirs:
            self.extra_models_dirs.append(Path(extra_models_dir))
        self.infos = list_bundle_infos(self.kind, self.models_dir, self.extra_models_dirs)
        if self.picker is None:
            return False
        self.picker.refresh(self.infos, select)
        return True

    def await_device(self, seconds: float, message: str) -> None:
        """Show `message` unless device_answered() is called within `seconds`: a camera or microphone that
        is missing or blocked is reported only in the browser's console, and nothing ever arrives."""
        with self._waiting_lock:
            if self._waiting:
                self._waiting.cancel()

            def give_up() -> None:
                with self._waiting_lock:
                    if self._waiting is timer:  # not answered, nor replaced by a newer wait
                        self._waiting = None
                        self.result.show_message(message)

            timer = self._waiting = call_later(seconds, give_up)

    def device_answered(self) -> None:
        """What await_device waits for arrived (or is no longer awaited)."""
        with self._waiting_lock:
            if self._waiting:
                self._waiting.cancel()
                self._waiting = None

    def clear_media(self, widget: widgets.Widget) -> None:
        """Empty a recorder's value, so the next one counts as new even if its bytes are the same (a still
        camera); the observers ignore this change (see `clearing`)."""
        self._clearing = True
        try:
            widget.value = b""
        finally:
            self._clearing = False

    @property
    def clearing(self) -> bool:
        """True while clear_media empties a recorder."""
        return self._clearing

    def make_upload(self, description: str, extensions: Sequence[str], mime: str) -> widgets.FileUpload:
        """The upload button; a chosen file is predicted at once."""
        upload = widgets.FileUpload(accept=",".join(extensions) + f",{mime}", multiple=False, description=description)
        upload.add_class("onepipe-upload")
        upload.observe(self._uploaded, "value")
        return upload

    def lay_out(self, *sections: widgets.Widget) -> None:
        """The picker and sections on the left, the result panel on the right."""
        controls = widgets.VBox([self.picker, *sections])
        controls.add_class("onepipe-controls")
        columns = widgets.Box([controls, self.result])
        columns.add_class("onepipe-columns")
        self.children = [columns]

    def predict_current(self) -> list[dict[str, Any]] | None:
        """Predict the chosen example."""
        if self.bundle is None or self.current is None:
            self.result.show_message(self.no_example_message, "info")
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
            self.upload.value = ()  # free the memory; the same file can be chosen again


def no_models_message(kind: str, models_dir: Path) -> str:
    """HTML telling how to get a bundle of a kind."""
    return (
        f'<div class="onepipe-message onepipe-error">No {kind} models in <code>{html.escape(str(models_dir))}</code>. '
        f"Train one with <code>python -m app train DATA_DIR --out models/NAME</code>.</div>"
    )
