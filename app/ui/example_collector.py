"""The Train tab's collecting side for one kind: the classes (add, rename, remove) and their examples, from the
microphone or webcam, uploads of several files, or a .zip of class folders; a gallery of the chosen class's
newest examples, to listen to or look at and remove.

The examples themselves, their checks and limits are app.ui.example_store's; this module is the widgets.
"""

from __future__ import annotations

import html
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import ipywidgets as widgets

from app.config import AUDIO_EXTENSIONS, IMAGE_EXTENSIONS
from app.errors import InputError
from app.ui.common import MAX_UPLOAD_BYTES, section
from app.ui.example_store import (
    KINDS,
    MAX_CLASSES,
    MAX_EXAMPLES_PER_CLASS,
    MAX_VISITOR_BYTES,
    Example,
    ExampleStore,
    LimitError,
)
from app.ui.example_zip import import_zip
from app.ui.media_inputs import Camera, Microphone
from app.ui.render import data_uri
from app.ui.upload_batches import read_uploads

GALLERY_SIZE = 24  # the newest examples of the chosen class shown
TAKE_CHOICES = (("one take, until Stop", 0), ("5 takes of 1 s", 5), ("10 takes of 1 s", 10), ("20 takes of 1 s", 20))
BURST_SIZE = 10
RECORD_LABEL, STOP_LABEL = "● Record", "■ Stop"


def message_html(text: str, level: str = "info") -> str:
    """A message line in the dashboard's style: level "error", "busy", "done" or "info"."""
    icon = {"error": "⚠️", "busy": "⏳", "done": "✅"}.get(level, "ℹ️")
    return (
        f'<div class="onepipe-message onepipe-{level}"><span class="onepipe-icon">{icon}</span>'
        f"<span class='onepipe-message-text'>{html.escape(text)}</span></div>"
    )


class ClassRow(widgets.HBox):
    """One class: its name (edit to rename), its count, and a remove button that asks again when it has examples."""

    def __init__(self, class_id: str, name: str, on_rename: Callable, on_remove: Callable):
        self.class_id = class_id
        self.name = widgets.Text(value=name, continuous_update=False, layout=widgets.Layout(width="200px"))
        self.name.add_class("onepipe-class-name")
        self.count = widgets.HTML()
        self.remove = widgets.Button(description="✕", tooltip="Remove this class", layout=widgets.Layout(width="36px"))
        self.remove.add_class("onepipe-remove-class")
        super().__init__([self.name, self.count, self.remove], layout=widgets.Layout(align_items="center"))
        self.add_class("onepipe-class-row")
        self._reverting = False
        self.name.observe(lambda change: None if self._reverting else on_rename(self, change["new"]), "value")
        self.remove.on_click(lambda _: on_remove(self))

    def show_name(self, name: str) -> None:
        """Put `name` back in the box without it counting as a rename."""
        self._reverting = True
        try:
            self.name.value = name
        finally:
            self._reverting = False

    def show_count(self, count: int) -> None:
        self.count.value = f'<span class="onepipe-count">{count} example{"s" * (count != 1)}</span>'


class ExampleCollector(widgets.VBox):
    """Classes and examples of one kind.

    Args:
        store: the examples of that kind.
        device: the Microphone (sounds) or Camera (pictures) shared with the try-it panel.
        scratch: a folder for uploaded zips while they are read.
        on_change: called after the classes or their examples changed.
    """

    def __init__(
        self,
        store: ExampleStore,
        device: Microphone | Camera,
        scratch: Path,
        on_change: Callable[[], None] = lambda: None,
    ):
        super().__init__()
        self.add_class("onepipe-collector")
        self.store, self.device, self.scratch, self.on_change = store, device, scratch, on_change
        self.kind = store.kind
        self.message = widgets.HTML()
        self.message.add_class("onepipe-collector-message")
        self.rows: list[ClassRow] = []
        self.rows_box = widgets.VBox()
        self.add_class_button = widgets.Button(description="+ Add a class")
        self.add_class_button.add_class("onepipe-add-class")
        self.add_class_button.on_click(lambda _: self.new_class())
        self._refreshing = False  # the chooser's options are being replaced: no gallery redraw for each step
        self.target = widgets.ToggleButtons(description="Add to")
        self.target.add_class("onepipe-target")
        self.target.observe(lambda _: None if self._refreshing else self.show_gallery(), "value")
        self._confirming: str | None = None  # the class whose remove button asks again
        self._build_sources()
        self._build_gallery()
        what = KINDS[self.kind]
        self.children = [
            section(
                "Classes",
                self.rows_box,
                self.add_class_button,
                hint=f"Two to {MAX_CLASSES} things to tell apart. Click a name to change it.",
            ),
            section(
                "Examples",
                self.target,
                *self.source_rows,
                self.message,
                self.gallery_box,
                hint=f"Choose the class, then add {what}: at least 10 of each trains well, up to "
                f"{MAX_EXAMPLES_PER_CLASS} per class and {MAX_VISITOR_BYTES // 2**20} MB in all.",
            ),
        ]
        for _ in range(2):
            self.store.add_class()
        self.refresh()

    # --- building ------------------------------------------------------------------------------------------

    def _build_sources(self) -> None:
        extensions, mime = (AUDIO_EXTENSIONS, "audio/*") if self.kind == "audio" else (IMAGE_EXTENSIONS, "image/*")
        noun = "sounds" if self.kind == "audio" else "pictures"
        self.upload = widgets.FileUpload(
            accept=",".join(extensions) + f",{mime}", multiple=True, description=f"Upload {noun}"
        )
        self.upload.add_class("onepipe-train-upload")
        self.upload.observe(self._uploaded, "value")
        self.zip_upload = widgets.FileUpload(accept=".zip,application/zip", multiple=False, description="Upload a .zip")
        self.zip_upload.add_class("onepipe-zip-upload")
        self.zip_upload.observe(self._zip_uploaded, "value")
        self.device_status = widgets.HTML()
        uploads = widgets.HBox([self.upload, self.zip_upload])
        if isinstance(self.device, Microphone):
            self.record_button = widgets.ToggleButton(description=RECORD_LABEL, button_style="danger")
            self.record_button.add_class("onepipe-train-record")
            self.record_button.observe(self._record_toggled, "value")
            self.takes = widgets.Dropdown(options=TAKE_CHOICES, value=0, layout=widgets.Layout(width="180px"))
            self.takes.add_class("onepipe-takes")
            device_row = widgets.HBox([self.record_button, self.takes, self.device_status])
            self.source_rows: list[widgets.Widget] = [device_row, self.device.widget, uploads]
        else:
            self.camera_button = widgets.ToggleButton(description="Start camera")
            self.camera_button.add_class("onepipe-train-camera")
            self.camera_button.observe(self._camera_toggled, "value")
            self.snapshot_button = widgets.Button(description="Snapshot", button_style="primary", disabled=True)
            self.snapshot_button.add_class("onepipe-train-snapshot")
            self.snapshot_button.on_click(lambda _: self.snap(1))
            self.burst_button = widgets.Button(description=f"Burst of {BURST_SIZE}", disabled=True)
            self.burst_button.add_class("onepipe-train-burst")
            self.burst_button.on_click(lambda _: self.snap(BURST_SIZE))
            device_row = widgets.HBox([self.camera_button, self.snapshot_button, self.burst_button, self.device_status])
            self.source_rows = [device_row, self.device.box, uploads]
        for row in self.source_rows:
            row.layout.flex_flow = "row wrap"
        self.zip_hint = widgets.HTML(
            '<div class="onepipe-hint">A .zip of class folders (<code>clap/1.wav</code>, <code>cat/1.jpg</code> …) '
            f"adds many at once; up to {MAX_UPLOAD_BYTES // 2**20} MB per upload.</div>"
        )
        self.source_rows.append(self.zip_hint)

    def _build_gallery(self) -> None:
        self._gallery_prefix = f"onepipe-example-{uuid.uuid4().hex[:8]}"
        self.gallery_style = widgets.HTML()
        self.slots = []
        for index in range(GALLERY_SIZE):
            slot = widgets.Button(layout=widgets.Layout(display="none"))
            slot.add_class("onepipe-example")
            slot.add_class(f"{self._gallery_prefix}-{index}")
            slot.on_click(lambda _, i=index: self.select_slot(i))
            self.slots.append(slot)
        self.gallery = widgets.Box(self.slots)
        self.gallery.add_class("onepipe-example-gallery")
        self.gallery_caption = widgets.HTML()
        self.player: widgets.Audio | None = None  # made when a sound is first selected (an empty one errs in a browser)
        self.player_box = widgets.Box()
        self.remove_button = widgets.Button(description="Remove this example", disabled=True)
        self.remove_button.add_class("onepipe-remove-example")
        self.remove_button.on_click(lambda _: self.remove_selected())
        self.shown: list[Example] = []  # the examples in the slots, in slot order
        self.selected: Example | None = None
        self.gallery_box = widgets.VBox(
            [
                self.gallery_caption,
                self.gallery_style,
                self.gallery,
                widgets.HBox([self.player_box, self.remove_button], layout=widgets.Layout(align_items="center")),
            ]
        )

    # --- classes -------------------------------------------------------------------------------------------

    def new_class(self) -> None:
        """Add a class named "Class N" and choose it."""
        try:
            example_class = self.store.add_class()
        except InputError as error:
            self.show(str(error), "error")
            return
        self.refresh(select=example_class.id)
        self.on_change()

    def _renamed(self, row: ClassRow, name: str) -> None:
        try:
            self.store.rename_class(row.class_id, name)
        except InputError as error:
            row.show_name(self.store.find(row.class_id).name)
            self.show(str(error), "error")
            return
        row.show_name(self.store.find(row.class_id).name)
        self.show("", "info")
        self.refresh()
        self.on_change()

    def _remove_clicked(self, row: ClassRow) -> None:
        example_class = self.store.find(row.class_id)
        if example_class.examples and self._confirming != row.class_id:
            self._confirming = row.class_id
            row.remove.description, row.remove.button_style = "Sure?", "danger"
            row.remove.layout.width = "70px"
            self.show(
                f"Click Sure? to remove '{example_class.name}' and its {len(example_class.examples)} examples.", "info"
            )
            return
        self._confirming = None
        self.store.remove_class(row.class_id)
        self.show(f"Removed the class '{example_class.name}'.", "info")
        self.refresh()
        self.on_change()

    def refresh(self, select: str | None = None) -> None:
        """Redraw the class rows, the class chooser and the gallery from the store."""
        rows = []
        for example_class in self.store.classes:
            row = next((r for r in self.rows if r.class_id == example_class.id), None)
            if row is None:
                row = ClassRow(example_class.id, example_class.name, self._renamed, self._remove_clicked)
            if self._confirming != example_class.id:
                row.remove.description, row.remove.button_style, row.remove.layout.width = "✕", "", "36px"
            row.show_count(len(example_class.examples))
            rows.append(row)
        for row in self.rows:
            if row not in rows:
                row.close()
        self.rows = rows
        self.rows_box.children = rows
        self.add_class_button.disabled = len(rows) >= MAX_CLASSES
        chosen = select or self.target.value
        options = [(c.name, c.id) for c in self.store.classes]
        ids = [class_id for _, class_id in options]
        self._refreshing = True
        try:
            if list(self.target.options) != options:
                self.target.options = options
            self.target.value = chosen if chosen in ids else (ids[0] if ids else None)
        finally:
            self._refreshing = False
        self.show_gallery()

    # --- adding examples -----------------------------------------------------------------------------------

    def add_examples(self, class_id: str, items: list[tuple[str, bytes | None, str]], noun: str = "example") -> int:
        """Add (label, bytes or None, message) items to a class; show how many were added ("Added 3 uploads to
        'clap'", `noun` naming them) and why others were not. Returns the number added."""
        added, skipped, stopped = 0, [], ""
        for label, data, problem in items:
            if data is None:
                skipped.append(problem)
                continue
            try:
                self.store.add(class_id, data, label)
            except LimitError as error:
                stopped = str(error)
                break
            except InputError as error:
                skipped.append(str(error))
                continue
            added += 1
        self.refresh()
        self.on_change()
        self._report(class_id, added, skipped, stopped, noun)
        return added

    def _report(self, class_id: str, added: int, skipped: list[str], stopped: str, noun: str) -> None:
        try:
            name = self.store.find(class_id).name
        except InputError:
            name = "the class"
        text = f"Added {added} {noun}{'s' * (added != 1)} to '{name}'." if added else ""
        if stopped:
            text += f" {stopped[0].upper()}{stopped[1:]}."
        if skipped:
            text += f" Not added: {'; '.join(skipped[:3])}{' …' if len(skipped) > 3 else ''}"
        self.show(text.strip(), "error" if skipped or stopped else "done")

    def _uploaded(self, change: dict[str, Any]) -> None:
        if not change["new"]:
            return
        try:
            class_id = self._target_class()
            self.add_examples(class_id, list(read_uploads(change["new"])), "upload")
        except InputError as error:
            self.show(str(error), "error")
        finally:
            self.upload.value = ()  # free the memory; the same files can be chosen again

    def _zip_uploaded(self, change: dict[str, Any]) -> None:
        if not change["new"]:
            return
        try:
            (name, data, problem), *_ = read_uploads(change["new"])
            if data is None:
                raise InputError(problem)
            self.show(f"Reading {name}…", "busy")
            report = import_zip(self.store, data, name, self.scratch)
        except InputError as error:
            self.show(str(error), "error")
        else:
            self.show(report.message(), "error" if report.skipped or report.stopped else "done")
        finally:
            self.zip_upload.value = ()
            self.refresh()
            self.on_change()

    def _target_class(self) -> str:
        if not self.target.value:
            raise InputError("add a class first")
        return self.target.value

    # --- microphone ----------------------------------------------------------------------------------------

    def _record_toggled(self, change: dict[str, Any]) -> None:
        assert isinstance(self.device, Microphone)
        if not change["new"]:
            self.device.stop()
            return
        try:
            class_id = self._target_class()
        except InputError as error:
            self.show(str(error), "error")
            self.record_button.value = False
            return
        takes = self.takes.value or None  # 0: one take until Stop
        self.record_button.description, self.record_button.button_style = STOP_LABEL, "warning"
        self._set_status("Recording… make the sound, then press Stop." if takes is None else f"Take 1 of {takes}…")
        self._taken = 0
        self.device.record(
            takes,
            on_take=lambda data: self._take_arrived(class_id, data, takes),
            on_end=self._recording_ended,
        )

    def _take_arrived(self, class_id: str, data: bytes, takes: int | None) -> None:
        self._taken += 1
        label = f"recording {self.store.next_number()}"
        self.add_examples(class_id, [(label, data if data else None, "the recording is empty")], "recording")
        if takes is not None and self._taken < takes:
            self._set_status(f"Take {self._taken + 1} of {takes}…")

    def _recording_ended(self, message: str | None) -> None:
        self.record_button.unobserve(self._record_toggled, "value")
        try:
            self.record_button.value = False
        finally:
            self.record_button.observe(self._record_toggled, "value")
        self.record_button.description, self.record_button.button_style = RECORD_LABEL, "danger"
        self._set_status("")
        if message:
            self.show(message, "error")

    # --- camera --------------------------------------------------------------------------------------------

    def _camera_toggled(self, change: dict[str, Any]) -> None:
        assert isinstance(self.device, Camera)
        if change["new"]:
            self.device.start()
        else:
            self.device.stop()
        self.camera_button.description = "Stop camera" if change["new"] else "Start camera"
        self.snapshot_button.disabled = self.burst_button.disabled = not change["new"]

    def snap(self, count: int) -> None:
        """Take `count` snapshots into the chosen class."""
        assert isinstance(self.device, Camera)
        try:
            class_id = self._target_class()
        except InputError as error:
            self.show(str(error), "error")
            return
        self._set_status("Taking snapshots…" if count > 1 else "Taking a snapshot…")
        self.device.snapshots(
            count,
            on_picture=lambda data: self.add_examples(
                class_id,
                [(f"snapshot {self.store.next_number()}", data or None, "the snapshot is empty")],
                "snapshot",
            ),
            on_end=self._snapshots_ended,
        )

    def _snapshots_ended(self, message: str | None) -> None:
        self._set_status("")
        if message:
            self.show(message, "error")

    # --- gallery -------------------------------------------------------------------------------------------

    def show_gallery(self) -> None:
        """The newest GALLERY_SIZE examples of the chosen class in the slots."""
        try:
            example_class = self.store.find(self.target.value) if self.target.value else None
        except InputError:
            example_class = None
        examples = example_class.examples[-GALLERY_SIZE:] if example_class else []
        rules = []
        for index, slot in enumerate(self.slots):
            example = examples[index] if index < len(examples) else None
            slot.layout.display = None if example else "none"
            if example is None:
                continue
            slot.tooltip = example.label
            try:
                uri = data_uri(example.preview.read_bytes())
            except OSError:
                continue
            rules.append(f".{self._gallery_prefix}-{index} {{ background-image: url({uri}); }}")
        self.shown = examples
        self.gallery_style.value = "<style>" + "\n".join(rules) + "</style>"
        if example_class is None:
            self.gallery_caption.value = ""
        else:
            total = len(example_class.examples)
            newest = f", the newest {len(examples)} shown" if total > len(examples) else ""
            self.gallery_caption.value = (
                f'<div class="onepipe-hint">{html.escape(example_class.name)}: {total} example{"s" * (total != 1)}'
                f"{newest}. Click one to {'hear' if self.kind == 'audio' else 'see'} it or remove it.</div>"
            )
        if self.selected not in examples:
            self.select_slot(None)

    def select_slot(self, index: int | None) -> None:
        """Select the example in slot `index` (None: nothing)."""
        self.selected = self.shown[index] if index is not None and index < len(self.shown) else None
        for i, slot in enumerate(self.slots):
            (slot.add_class if i == index and self.selected else slot.remove_class)("onepipe-selected")
        self.remove_button.disabled = self.selected is None
        if self.kind == "audio":
            self._play_selected()

    def _play_selected(self) -> None:
        """The selected sound in the player, which shows only while a sound is selected."""
        if self.selected is None:
            self.player_box.children = []
            return
        try:
            data = self.selected.file.read_bytes()
        except OSError:
            self.player_box.children = []
            return
        if self.player is None:
            self.player = widgets.Audio(format="wav", autoplay=False, controls=True)
            self.player.add_class("onepipe-example-player")
        self.player.value = data
        self.player_box.children = [self.player]

    def remove_selected(self) -> None:
        """Remove the selected example."""
        if self.selected is None or not self.target.value:
            return
        label = self.selected.label
        self.store.remove(self.target.value, self.selected.id)
        self.selected = None
        self.refresh()
        self.on_change()
        self.show(f"Removed {label}.", "info")

    # --- messages ------------------------------------------------------------------------------------------

    def show(self, text: str, level: str = "info") -> None:
        """A message under the sources ("" clears it)."""
        self.message.value = message_html(text, level) if text else ""

    def _set_status(self, text: str) -> None:
        self.device_status.value = f'<span class="onepipe-status">{html.escape(text)}</span>' if text else ""
