"""The Train tab: make a model in the page. Choose sounds or pictures, name the classes, add examples (microphone,
webcam, uploads, a .zip of class folders), press Train and watch the curves, then try the model, in this tab or
in the Audio or Images tab, and download it.

Training runs `python -m app train` in a process of its own (app.ui.training_process) on a class-folder dataset
written from the examples, so the dashboard's kernel never imports TensorFlow; its recipe suits a few dozen
examples per class (app.ui.training_recipe); sounds start from the shipped speech model's layers unless the
Advanced fold's "Start from the shipped speech model" is cleared. Everything is written inside the visitor's workspace
(app.ui.workspace); the shipped models are only read. The dashboard builds this tab when it is first opened.

Example:
    >>> from app.ui.train_tab import TrainTab
    >>> tab = TrainTab()  # doctest: +SKIP
    >>> tab.kind.value, [c.name for c in tab.store.classes]  # doctest: +SKIP
    ('audio', ['Class 1', 'Class 2'])
"""

from __future__ import annotations

import dataclasses
import html
import logging
import shutil
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import ipywidgets as widgets

from app import paths
from app.bundle import find_bundles, read_metadata
from app.errors import InputError, OnePipeError
from app.ui.common import predict_into, section
from app.ui.curves import curves_html
from app.ui.example_collector import ExampleCollector, message_html
from app.ui.example_store import KINDS, ExampleStore, Usage
from app.ui.media_inputs import Camera, Microphone
from app.ui.model_download import download_link_html
from app.ui.result_panel import ResultPanel
from app.ui.training_process import RunEnd, TrainingRun, remove_unfinished, run_environment, train_command
from app.ui.training_recipe import (
    BATCH_SIZES,
    DEFAULTS,
    DONOR_EPOCHS,
    EPOCH_CHOICES,
    HOLD_OUT_MIN,
    LEARNING_RATES,
    find_donor,
    held_out_listing,
    held_out_positions,
)
from app.ui.upload_batches import read_uploads
from app.ui.workspace import Workspace, current_workspace

# What the held-out examples did, by the split that scored the model (app.training.held_out).
CHOSE = {"validation": "which also chose the best epoch", "test": "never trained on"}
SAMPLES_PER_CLASS = 3  # of the visitor's examples copied into a new bundle, for the Audio and Images tabs
MODEL_PREFIX = {"audio": "my-sounds", "image": "my-pictures"}
PHASE_TEXT = {
    "scanning": "Reading the examples…",
    "features": "Reading {files} examples…",
    "loading": "Starting TensorFlow…",
    "fitting": "Training…",
    "evaluating": "Scoring the held-out examples…",
    "exporting": "Converting the model for the dashboard…",
    "saving": "Saving the model…",
}
log = logging.getLogger(__name__)

TRAIN_CSS = """
<style>
.onepipe-train-panel { flex: 1 1 380px; max-width: 560px; }
.onepipe-class-row { gap: 6px; margin: 1px 0; }
.onepipe-count { color: #555; font-size: 12.5px; display: inline-block; min-width: 88px; }
.onepipe-example-gallery { display: flex; flex-wrap: wrap; gap: 4px; margin: 4px 0; }
.onepipe-example.jupyter-button { width: 66px; height: 50px; padding: 0; background-color: #222;
  background-size: contain; background-repeat: no-repeat; background-position: center;
  image-rendering: pixelated; border: 2px solid transparent; border-radius: 4px; }
.onepipe-example.onepipe-selected { border-color: #3b7dd8; box-shadow: 0 0 0 2px #9cc1f0; }
.onepipe-message.onepipe-done { background: #eef8ee; color: #1e4620; border: 1px solid #b7dfb9; }
.onepipe-curves { display: flex; flex-wrap: wrap; gap: 8px; align-items: flex-start; }
.onepipe-chart { width: 250px; height: 156px; background: #fff; border: 1px solid #eee; border-radius: 4px; }
.onepipe-curves-legend { width: 100%; font-size: 12.5px; color: #444; }
.onepipe-metrics table { border-collapse: collapse; font-size: 12.5px; margin: 4px 0 8px 0; }
.onepipe-metrics th, .onepipe-metrics td { border: 1px solid #ddd; padding: 2px 6px; text-align: right; }
.onepipe-metrics th { background: #f4f4f4; }
.onepipe-metrics td.onepipe-diagonal { background: #e6f0fb; font-weight: 600; }
.onepipe-download-link { display: inline-block; margin: 4px 0; padding: 4px 10px; border-radius: 4px;
  background: #3b7dd8; color: #fff !important; text-decoration: none; }
.onepipe-train .onepipe-camera video { width: 240px; }
</style>
"""


class TrainTab(widgets.VBox):
    """Kind, classes and examples on the left; training, its curves, trying and downloading the model on the right.

    Args:
        models_dir: the shipped bundles (their names are read, so that a new model never takes one, and a run may start
            from one: app.ui.training_recipe.find_donor).
        workspace: where everything is written; default this kernel's (app.ui.workspace.current_workspace).
        on_model: called with (kind, bundle folder) when a model is ready, e.g. to list it in the other tabs.
    """

    def __init__(
        self,
        models_dir: Path | None = None,
        workspace: Workspace | None = None,
        on_model: Callable[[str, Path], None] = lambda kind, bundle: None,
    ):
        super().__init__()
        self.add_class("onepipe-tab")
        self.add_class("onepipe-train")
        self.models_dir = Path(models_dir or paths.MODELS_DIR)
        self.workspace = workspace or current_workspace()
        self.on_model = on_model
        usage = Usage()
        self.stores = {
            kind: ExampleStore(
                self.workspace.examples_dir / kind, kind, usage, previews=self.workspace.thumbnails_dir / kind
            )
            for kind in KINDS
        }
        self.collectors: dict[str, ExampleCollector] = {}
        self.microphone: Microphone | None = None
        self.camera: Camera | None = None
        self.run: TrainingRun | None = None
        self.run_kind = ""
        self.models: dict[str, list[Path]] = {kind: [] for kind in KINDS}  # trained here, oldest first
        self.history: dict[str, list[float | None]] = {}
        self.planned_epochs = 0

        self.kind = widgets.ToggleButtons(options=[("Sounds", "audio"), ("Pictures", "image")], value="audio")
        self.kind.add_class("onepipe-kind")
        self.kind.observe(lambda _: self._kind_changed(), "value")
        self.collector_box = widgets.VBox()
        controls = widgets.VBox(
            [
                section("What to recognise", self.kind, hint="Sounds (one second each) or pictures."),
                self.collector_box,
            ]
        )
        controls.add_class("onepipe-controls")
        panel = widgets.VBox([self._build_training(), self._build_try_it()])
        panel.add_class("onepipe-train-panel")
        columns = widgets.Box([controls, panel])
        columns.add_class("onepipe-columns")
        self.children = [widgets.HTML(TRAIN_CSS), columns]
        self._kind_changed()

    # --- building ------------------------------------------------------------------------------------------

    def _build_training(self) -> widgets.Widget:
        self.train_button = widgets.Button(description="Train", button_style="primary", icon="play")
        self.train_button.add_class("onepipe-train-button")
        self.train_button.on_click(lambda _: self.start_training())
        self.cancel_button = widgets.Button(description="Cancel", disabled=True)
        self.cancel_button.add_class("onepipe-cancel")
        self.cancel_button.on_click(lambda _: self.cancel_training())
        self.status = widgets.HTML()
        self.status.add_class("onepipe-train-status")
        self.plan = widgets.HTML()
        self.curves = widgets.HTML()
        self.curves.add_class("onepipe-curves-box")
        defaults = DEFAULTS["audio"]
        self.epochs = widgets.BoundedIntText(
            value=defaults.epochs, min=EPOCH_CHOICES[0], max=EPOCH_CHOICES[1], description="Epochs"
        )
        self.epochs.add_class("onepipe-epochs")
        self.batch_size = widgets.Dropdown(options=BATCH_SIZES, value=defaults.batch_size, description="Batch size")
        self.learning_rate = widgets.Dropdown(
            options=[(f"{rate:g}", rate) for rate in LEARNING_RATES],
            value=defaults.learning_rate,
            description="Learning rate",
        )
        self.speech = widgets.Checkbox(
            value=False, description="Spoken words", indent=False, layout=widgets.Layout(width="auto")
        )
        self.speech.add_class("onepipe-speech")
        self.donors = {kind: find_donor(self.models_dir, kind) for kind in KINDS}
        self.start_from = widgets.Checkbox(
            value=self.donors["audio"] is not None,
            description="Start from the shipped speech model",
            indent=False,
            layout=widgets.Layout(width="auto"),
        )
        self.start_from.add_class("onepipe-start-from")
        self.start_from.observe(lambda _: self._set_epochs(), "value")
        self.early_stopping = widgets.Checkbox(
            value=defaults.early_stopping, description="Stop early", indent=False, layout=widgets.Layout(width="auto")
        )
        self.early_stopping.add_class("onepipe-early-stopping")
        self.early_stopping.observe(lambda _: self._examples_changed(), "value")
        for option in (self.epochs, self.batch_size, self.learning_rate):
            option.style = {"description_width": "110px"}
        advanced = widgets.Accordion(
            children=[
                widgets.VBox(
                    [
                        self.epochs,
                        self.batch_size,
                        self.learning_rate,
                        self.early_stopping,
                        self.speech,
                        self.start_from,
                        widgets.HTML(
                            '<div class="onepipe-hint">Epochs: passes over the examples. Stop early: with '
                            f"{HOLD_OUT_MIN} or more per class, the held-out examples choose the best epoch and end "
                            "training once they stop improving (else they only score the last one). "
                            "Spoken words: for sounds that are words, to be recognised in voices the model never "
                            "heard (it ignores each voice's and microphone's colour, so not for a whistle or a hum). "
                            "Start from the shipped speech model: its layers, learned from many speakers, are the "
                            "starting point and only the last layer is new (the spoken-word preprocessing comes "
                            "with it); clear it for sounds that are not speech."
                            "</div>"
                        ),
                    ]
                )
            ],
            selected_index=None,
        )
        advanced.set_title(0, "Advanced")
        advanced.add_class("onepipe-advanced")
        return section(
            "Train",
            widgets.HBox([self.train_button, self.cancel_button]),
            self.plan,
            advanced,
            self.status,
            self.curves,
            hint="Training runs on the server, in a process of its own; the page keeps working meanwhile.",
        )

    def _build_try_it(self) -> widgets.Widget:
        self.model_info = widgets.HTML()
        self.metrics = widgets.HTML()
        self.metrics.add_class("onepipe-metrics")
        self.result = ResultPanel()
        self.try_record = widgets.ToggleButton(description="● Record", button_style="danger")
        self.try_record.add_class("onepipe-try-record")
        self.try_record.observe(self._try_record_toggled, "value")
        self.try_snapshot = widgets.Button(description="Snapshot", button_style="primary")
        self.try_snapshot.add_class("onepipe-try-snapshot")
        self.try_snapshot.on_click(lambda _: self._try_snapshot())
        self.try_upload = widgets.FileUpload(multiple=False, description="Upload")
        self.try_upload.add_class("onepipe-try-upload")
        self.try_upload.observe(self._try_uploaded, "value")
        self.download_button = widgets.Button(description="Download model", icon="download")
        self.download_button.add_class("onepipe-download")
        self.download_button.on_click(lambda _: self.prepare_download())
        self.download_link = widgets.HTML()
        self.try_box = section(
            "Try it",
            self.model_info,
            self.metrics,
            widgets.HBox([self.try_record, self.try_snapshot, self.try_upload]),
            self.result,
            widgets.HBox([self.download_button, self.download_link], layout=widgets.Layout(align_items="center")),
            hint="Record, snap or upload and see what your model answers. It is also in the Audio or Images tab.",
        )
        self.try_box.layout.display = "none"
        return self.try_box

    # --- kind and examples ---------------------------------------------------------------------------------

    @property
    def store(self) -> ExampleStore:
        """The examples of the kind chosen."""
        return self.stores[self.kind.value]

    @property
    def collector(self) -> ExampleCollector:
        """The collecting widgets of the kind chosen (built the first time that kind is chosen)."""
        kind = self.kind.value
        if kind not in self.collectors:
            if kind == "audio":
                self.microphone = Microphone()
                device: Microphone | Camera = self.microphone
            else:
                self.camera = Camera()
                device = self.camera
            self.collectors[kind] = ExampleCollector(
                self.stores[kind], device, self.workspace.runs_dir / "uploads", on_change=self._examples_changed
            )
        return self.collectors[kind]

    def _kind_changed(self) -> None:
        self.collector_box.children = [self.collector]
        audio = self.kind.value == "audio"
        self.try_record.layout.display = None if audio else "none"
        self.try_snapshot.layout.display = "none" if audio else None
        self.try_upload.accept = "audio/*,.wav,.flac,.ogg,.mp3,.m4a,.webm" if audio else "image/*"
        self.speech.layout.display = None if audio else "none"
        self.start_from.layout.display = None if self.donors[self.kind.value] is not None else "none"
        defaults = DEFAULTS[self.kind.value]  # each kind starts from its own recipe
        self._set_epochs()
        self.batch_size.value = defaults.batch_size
        self.learning_rate.value, self.early_stopping.value = defaults.learning_rate, defaults.early_stopping
        self._show_model()
        self._examples_changed()

    def _set_epochs(self) -> None:
        """The epochs of the kind's recipe, or DONOR_EPOCHS when the run will start from a shipped model."""
        starting_from = self.start_from.value and self.donors[self.kind.value] is not None
        self.epochs.value = DONOR_EPOCHS if starting_from else DEFAULTS[self.kind.value].epochs

    def _examples_changed(self) -> None:
        counts = list(self.store.counts().values())
        total = sum(counts)
        if not counts:
            self.plan.value = ""
            return
        held = sum(len(held_out_positions(count)) for count in counts) if min(counts) >= HOLD_OUT_MIN else 0
        what = KINDS[self.kind.value]
        text = f"{total} {what} in {len(counts)} classes. "
        if not held:
            text += f"Every one will train (with {HOLD_OUT_MIN} or more in each class, some are held out to score it)."
        elif self.early_stopping.value:
            text += f"{held} of them will be held out to score the model and stop training at its best."
        else:
            text += f"{held} of them will be held out to score the model."
        self.plan.value = f'<div class="onepipe-hint">{html.escape(text)}</div>'

    # --- training ------------------------------------------------------------------------------------------

    def start_training(self) -> None:
        """Train on the examples of the kind chosen: write the dataset, start the process, show its progress."""
        if self.run is not None and self.run.running:
            self.show_status("A model is training already; wait for it or press Cancel.", "info")
            return
        kind, store = self.kind.value, self.store
        try:
            store.check_ready()
            recipe = dataclasses.replace(
                DEFAULTS[kind],
                epochs=self.epochs.value,
                batch_size=self.batch_size.value,
                learning_rate=self.learning_rate.value,
                speech=self.speech.value and kind == "audio",
                early_stopping=self.early_stopping.value,
                donor=self.donors[kind] if self.start_from.value else None,
            )
        except (InputError, ValueError) as error:
            self.show_status(_sentence(error), "error")
            return
        held_out = self._held_out(store)
        run_dir = self.workspace.new_run_dir()
        data_dir, out_dir = run_dir / "data", self.workspace.models_dir / self._new_model_name(kind)
        store.write_dataset(data_dir, held_out, held_out_listing(recipe))
        self.history, self.planned_epochs, self.run_kind = {}, recipe.epochs, kind
        self.run = TrainingRun(
            train_command(data_dir, out_dir, kind, recipe.arguments(kind, bool(held_out))),
            run_dir / "train.log",
            on_event=self._event,
            on_end=lambda end: self._ended(end, out_dir, data_dir),
            environment=run_environment(self.workspace.cache_dir),
            cwd=self.workspace.root,
        )
        self.train_button.disabled, self.cancel_button.disabled = True, False
        self.curves.value = curves_html({}, recipe.epochs)
        self.show_status("Starting…", "busy")
        self.run.start()
        assert self.run.process is not None
        self.workspace.record_trainer(self.run.process.pid)

    def cancel_training(self) -> None:
        """Stop the training run (in a thread: it takes up to a couple of seconds)."""
        run = self.run
        if run is None or not run.running:
            return
        self.cancel_button.disabled = True
        self.show_status("Stopping…", "busy")
        threading.Thread(target=run.cancel, name="onepipe-cancel", daemon=True).start()

    def _held_out(self, store: ExampleStore) -> dict[str, list[str]]:
        """{class id: example ids held out}: some of every class when each has HOLD_OUT_MIN or more, else none."""
        if min(len(c.examples) for c in store.classes) < HOLD_OUT_MIN:
            return {}
        return {c.id: [c.examples[i].id for i in held_out_positions(len(c.examples))] for c in store.classes}

    def _new_model_name(self, kind: str) -> str:
        """my-sounds-N (my-pictures-N): unused in the workspace, and not the name of a shipped model."""
        taken = (
            {path.name for path in self.workspace.models_dir.iterdir()} if self.workspace.models_dir.is_dir() else set()
        )
        taken |= {path.name for path in find_bundles(None, self.models_dir)} if self.models_dir.is_dir() else set()
        number = 1
        while f"{MODEL_PREFIX[kind]}-{number}" in taken:
            number += 1
        return f"{MODEL_PREFIX[kind]}-{number}"

    def _event(self, event: dict[str, Any]) -> None:
        if event["event"] == "phase":
            phase = str(event.get("phase"))
            if phase == "fitting" and isinstance(event.get("epochs"), int):
                self.planned_epochs = event["epochs"]
            text = PHASE_TEXT.get(phase, "Working…")
            self.show_status(text.format(files=event.get("files", "the")), "busy")
        elif event["event"] == "epoch":
            for name in ("loss", "accuracy", "val_loss", "val_accuracy"):
                if name in event:
                    self.history.setdefault(name, []).append(event[name])
            self.curves.value = curves_html(self.history, self.planned_epochs)
            self.show_status(_describe_epoch(event), "busy")

    def _ended(self, end: RunEnd, out_dir: Path, data_dir: Path) -> None:
        self.workspace.record_trainer(None)
        self.train_button.disabled, self.cancel_button.disabled = False, True
        bundle = Path(end.summary["bundle"]) if end.summary else None
        if bundle is None or not self.workspace.contains(bundle):  # the command names a folder in the workspace
            remove_unfinished(out_dir)
            if end.cancelled and self.workspace.contains(out_dir):  # finished as Cancel came: cancelled all the same
                shutil.rmtree(out_dir, ignore_errors=True)
            shutil.rmtree(data_dir, ignore_errors=True)
            message = end.message or "The model was not written where expected; please train again."
            self.show_status(message, "info" if end.cancelled else "error")
            return
        self._add_samples(bundle, data_dir)
        shutil.rmtree(data_dir, ignore_errors=True)  # links to the examples: the run's log stays beside it
        self.models[self.run_kind].append(bundle)
        self.show_status(f"Model ready in {end.seconds:.0f} s: {bundle.name}.", "done")
        if self.run_kind == self.kind.value:
            self._show_model()
        try:
            self.on_model(self.run_kind, bundle)
        except Exception:  # the other tabs failing to list it must not hide the result here
            log.exception("the new model could not be listed in the other tabs")

    def _add_samples(self, bundle: Path, data_dir: Path) -> None:
        """Copy a few examples of each class of the run's dataset (held-out ones first: the model never trained on
        those that only score it) into <bundle>/samples/<class>/, so that the Audio or Images tab offers them."""
        held_out = set()
        for listing in ("validation_list.txt", "testing_list.txt"):
            if (data_dir / listing).is_file():
                held_out |= set((data_dir / listing).read_text().splitlines())
        staging = bundle / ".samples-new"
        try:
            shutil.rmtree(staging, ignore_errors=True)
            for class_dir in sorted(p for p in data_dir.iterdir() if p.is_dir()):
                files = sorted(
                    class_dir.iterdir(), key=lambda p: (f"{class_dir.name}/{p.name}" not in held_out, p.name)
                )
                (staging / class_dir.name).mkdir(parents=True)
                for path in files[:SAMPLES_PER_CLASS]:
                    shutil.copyfile(path, staging / class_dir.name / path.name)
            staging.rename(bundle / paths.SAMPLES_FOLDER)
        except OSError as error:  # the model works without them
            log.warning("no example files for %s: %s", bundle.name, error)
            shutil.rmtree(staging, ignore_errors=True)

    def show_status(self, text: str, level: str = "info") -> None:
        self.status.value = message_html(text, level) if text else ""

    # --- the trained model ---------------------------------------------------------------------------------

    @property
    def model(self) -> Path | None:
        """The newest model trained here of the kind chosen."""
        models = self.models[self.kind.value]
        return models[-1] if models else None

    def _show_model(self) -> None:
        bundle = self.model
        self.download_link.value = ""
        if bundle is None:
            self.try_box.layout.display = "none"
            return
        self.try_box.layout.display = None
        try:
            metadata = read_metadata(bundle)
        except OnePipeError as error:
            self.model_info.value = message_html(str(error), "error")
            return
        self.model_info.value = _model_summary(bundle.name, metadata)
        self.metrics.value = _metrics_html(metadata)
        self.result.show_message("Record, snap or upload to see what your model answers.", "info")

    def predict(self, data: bytes, name: str) -> list[dict[str, Any]] | None:
        """Predict `data` with the newest model of the kind chosen, into the try-it panel."""
        bundle = self.model
        if bundle is None:
            self.result.show_message("Train a model first.", "info")
            return None
        return predict_into(self.result, bundle, data, name)

    def _try_record_toggled(self, change: dict[str, Any]) -> None:
        if self.microphone is None:
            return
        if not change["new"]:
            self.microphone.stop()
            return
        if self.microphone.busy:
            self.result.show_message("The microphone is recording examples; try again when it is done.", "info")
            self.try_record.value = False
            return
        self.try_record.description, self.try_record.button_style = "■ Stop", "warning"
        self.microphone.record(None, on_take=lambda data: self.predict(data, "your recording"), on_end=self._try_ended)

    def _try_ended(self, message: str | None) -> None:
        self.try_record.unobserve(self._try_record_toggled, "value")
        try:
            self.try_record.value = False
        finally:
            self.try_record.observe(self._try_record_toggled, "value")
        self.try_record.description, self.try_record.button_style = "● Record", "danger"
        if message:
            self.result.show_message(message)

    def _try_snapshot(self) -> None:
        if self.camera is None or not self.camera.on:
            self.result.show_message("Start the camera (under Examples) first.", "info")
            return
        self.result.show_message("Taking a snapshot…", "busy")
        self.camera.snapshots(1, on_picture=lambda data: self.predict(data, "webcam snapshot"), on_end=self._try_ended)

    def _try_uploaded(self, change: dict[str, Any]) -> None:
        if not change["new"]:
            return
        try:
            name, data, problem = next(read_uploads(change["new"]))
            if data is None:
                self.result.show_message(problem)
            else:
                self.predict(data, name)
        finally:
            self.try_upload.value = ()

    def prepare_download(self) -> None:
        """Show a link that saves the newest model as a .zip."""
        bundle = self.model
        if bundle is None:
            return
        self.download_link.value = download_link_html(bundle)


def _sentence(error: BaseException) -> str:
    text = str(error).strip()
    return text[:1].upper() + text[1:] + ("" if text.endswith((".", "!", "?")) else ".")


def _describe_epoch(event: dict[str, Any]) -> str:
    """ "Epoch 5 of 40 · accuracy 91 % (held out 88 %) · about 12 s left" """
    text = f"Epoch {event.get('epoch')} of {event.get('epochs')}"
    accuracy, held_out = event.get("accuracy"), event.get("val_accuracy")
    if isinstance(accuracy, (int, float)):
        text += f" · accuracy {100 * accuracy:.0f} %"
        if isinstance(held_out, (int, float)):
            text += f" (held out {100 * held_out:.0f} %)"
    eta = event.get("eta_seconds")
    if isinstance(eta, (int, float)) and eta >= 1:
        text += f" · at most about {eta:.0f} s left"
    return text


def _model_summary(name: str, metadata: dict[str, Any]) -> str:
    training = metadata.get("training") or {}
    classes = metadata.get("class_names") or []
    text = (
        f"<b>{html.escape(name)}</b>: {len(classes)} classes ({html.escape(', '.join(map(str, classes)))}), "
        f"{training.get('epochs_run', '?')} epochs in {training.get('seconds', '?')} s."
    )
    return f'<div class="onepipe-hint">{text}</div>'


def _metrics_html(metadata: dict[str, Any]) -> str:
    """Per-class accuracy and the confusion matrix on the held-out examples, or why there are none."""
    metrics = metadata.get("metrics") or {}
    split = metrics.get("evaluated_on")
    scores = metrics.get(split) if split else None
    if not isinstance(scores, dict) or scores.get("accuracy") is None:
        return (
            '<div class="onepipe-hint">Every example trained, so there is no held-out score: add examples until each '
            f"class has {HOLD_OUT_MIN} or more, and train again.</div>"
        )
    names = [str(name) for name in scores.get("class_names", [])]
    matrix = scores.get("confusion_matrix", [])
    per_class = scores.get("per_class", {})
    header = "".join(f"<th>{html.escape(name)}</th>" for name in names)
    rows = ""
    for row_index, (name, row) in enumerate(zip(names, matrix, strict=False)):
        cells = "".join(
            f'<td class="{"onepipe-diagonal" if column == row_index else ""}">{count}</td>'
            for column, count in enumerate(row)
        )
        accuracy = per_class.get(name)
        shown = "—" if accuracy is None else f"{100 * accuracy:.0f} %"
        rows += f"<tr><th>{html.escape(name)}</th>{cells}<td>{shown}</td></tr>"
    return (
        f'<div class="onepipe-hint">On the {scores.get("count")} held-out examples ({CHOSE.get(str(split), "")}): '
        f"<b>{100 * scores['accuracy']:.0f} %</b> right. Rows: the true class; columns: the answer.</div>"
        f"<table><tr><th></th>{header}<th>per class</th></tr>{rows}</table>"
    )
