"""The result panel: the top label large, top-5 confidence bars, what the model saw, and the time taken.

When the bundle says the input is unlike its training data (app.familiarity), a notice above the answer says so;
the bars are still shown.

Under a prediction, "Show where it looked" lays a map over the picture the model saw: brighter where masking
that part lowered the top label's score most (app.explain). The map is computed only while the box is ticked,
once per input. Bad input shows a short message instead; never a traceback.
"""

from __future__ import annotations

import html
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import ipywidgets as widgets

from app.explain import LEGEND
from app.pictures import VIRIDIS_CSS
from app.ui.render import data_uri, overlay_layer_png

if TYPE_CHECKING:
    from app.explain import Explanation

PLACEHOLDER = "Pick an example, record or upload, and the prediction appears here."
EXPLAIN_LABEL = "Show where it looked"
UNFAMILIAR_NOTICE = "This does not look like anything this model was trained on"
UNFAMILIAR_HINT = "The scores below are what the model answers anyway; they say little about an input like this one."
WEAK_DROP = 0.01  # a map whose largest fall of the score is below this (1 point) is said to be weak
log = logging.getLogger("onepipe.ui")


def friendly_message(error: BaseException) -> str:
    """One short sentence for the user: OnePipe's own message, or a generic one for anything else."""
    from app.errors import OnePipeError

    if isinstance(error, OnePipeError):
        text = str(error).strip() or type(error).__name__
        return text[0].upper() + text[1:]
    return (
        f"Something went wrong while predicting ({type(error).__name__}). The dashboard still works: try another input."
    )


@dataclass(frozen=True)
class _Shown:
    """A prediction on display: what show_predictions was given."""

    predictions: list[dict[str, Any]]
    picture_png: bytes
    caption: str
    elapsed_ms: float
    source_name: str
    pixelated: bool
    familiar: bool | None


class ResultPanel(widgets.VBox):
    """Shows predictions or a message, and under a prediction the "Show where it looked" box.

    State for tests: `predictions`, `message`, `level`, `familiar` (of the prediction shown; None when unknown),
    `explanation` (the app.explain.Explanation of the input shown, once computed) and `explain_ms`.
    """

    def __init__(self, **kwargs: Any):
        self.view = widgets.HTML(layout=widgets.Layout(width="100%"))
        self.explain_toggle = widgets.Checkbox(value=False, description=EXPLAIN_LABEL, indent=False)
        self.explain_toggle.add_class("onepipe-explain-toggle")
        self.explain_toggle.layout.display = "none"
        super().__init__([self.view, self.explain_toggle], **kwargs)
        self.add_class("onepipe-result")
        self.predictions: list[dict[str, Any]] = []
        self.message = ""
        self.level = "info"
        self.elapsed_ms: float | None = None
        self.familiar: bool | None = None
        self.explanation: Explanation | None = None
        self.explain_ms: float | None = None
        self._shown: _Shown | None = None
        self._explain: Callable[[], Explanation] | None = None  # computes the explanation of the input shown
        self._explanation_error = ""
        self._lock = threading.RLock()  # a prediction may arrive while the box's change is handled
        self.explain_toggle.observe(self._explain_toggled, "value")
        self.show_message(PLACEHOLDER, "info")

    def show_message(self, text: str, level: str = "error") -> None:
        """A short message: level "error" (amber box), "busy" or "info" (grey)."""
        with self._lock:
            self.predictions, self.message, self.level, self.elapsed_ms = [], text, level, None
            self.familiar = None
            self._forget_input()
            self.explain_toggle.layout.display = "none"
            icon = {"error": "⚠️", "busy": "⏳"}.get(level, "ℹ️")
            self.view.value = (
                f'<div class="onepipe-message onepipe-{level}"><span class="onepipe-icon">{icon}</span>'
                f"<span class='onepipe-message-text'>{html.escape(text)}</span></div>"
            )

    def show_error(self, error: BaseException) -> None:
        """A friendly message for an exception (the traceback is never shown)."""
        self.show_message(friendly_message(error), "error")

    def show_predictions(
        self,
        predictions: list[dict[str, Any]],
        picture_png: bytes,
        caption: str,
        elapsed_ms: float,
        source_name: str,
        pixelated: bool = False,
        explain: Callable[[], Explanation] | None = None,
        familiar: bool | None = None,
    ) -> None:
        """The top label, bars for each prediction, the model's input picture and the time taken.

        Args:
            familiar: False puts the UNFAMILIAR_NOTICE above the answer (the input is unlike the training data);
                True or None (the bundle cannot tell) shows none.
            explain: computes where the model looked in this input (an app.explain.Explanation); called only
                while "Show where it looked" is ticked, at most once. None: the box is hidden.
        """
        with self._lock:
            self.predictions, self.message, self.level, self.elapsed_ms = list(predictions), "", "result", elapsed_ms
            self.familiar = familiar
            self._forget_input()
            self._shown = _Shown(list(predictions), picture_png, caption, elapsed_ms, source_name, pixelated, familiar)
            self._explain = explain
            self.explain_toggle.layout.display = None if explain is not None else "none"
            if self.explain_toggle.value:
                self._compute_explanation()
            self._render()

    def _forget_input(self) -> None:
        """Drop the input shown and its explanation (the box keeps its state for the next input)."""
        self._shown, self._explain, self._explanation_error = None, None, ""
        self.explanation, self.explain_ms = None, None

    def _explain_toggled(self, change: dict[str, Any]) -> None:
        with self._lock:
            if self._shown is None:
                return
            if change["new"]:
                self._compute_explanation()
            self._render()

    def _compute_explanation(self) -> None:
        """Call the input's explain once; its result (or a short message on failure) is kept for the input."""
        explain, self._explain = self._explain, None
        if explain is None:
            return
        start = time.perf_counter()
        try:
            self.explanation = explain()
        except Exception as error:  # a message under the picture, never a traceback
            log.info("explaining %s failed: %r", self._shown.source_name if self._shown else "?", error)
            self._explanation_error = f"Where it looked could not be worked out. {friendly_message(error)}"
        self.explain_ms = (time.perf_counter() - start) * 1000

    def _render(self) -> None:
        shown = self._shown
        if shown is None:
            return
        top = shown.predictions[0]
        bars = "".join(
            f'<div class="onepipe-bar-row"><span class="onepipe-bar-label">{html.escape(p["label"])}</span>'
            f'<span class="onepipe-bar"><span class="onepipe-bar-fill" style="width:{100 * p["score"]:.1f}%">'
            f'</span></span><span class="onepipe-bar-score">{100 * p["score"]:.1f}%</span></div>'
            for p in shown.predictions
        )
        self.view.value = (
            '<div class="onepipe-prediction">'
            f"{unfamiliar_notice() if shown.familiar is False else ''}"
            f'<div class="onepipe-top"><span class="onepipe-top-label">{html.escape(top["label"])}</span>'
            f'<span class="onepipe-top-score">{100 * top["score"]:.1f}% confident</span></div>'
            f'<div class="onepipe-bars">{bars}</div>'
            f"{self._figure(shown)}"
            f'<div class="onepipe-time">Predicted in <b class="onepipe-ms">{shown.elapsed_ms:.0f} ms</b> · '
            f'<span class="onepipe-source">{html.escape(shown.source_name)}</span></div>'
            "</div>"
        )

    def _figure(self, shown: _Shown) -> str:
        """The picture the model saw, with the map laid over it while the box is ticked, and the caption."""
        rendering = "pixelated" if shown.pixelated else "auto"
        picture = (
            f'<img class="onepipe-picture" alt="{html.escape(shown.caption)}" '
            f'style="image-rendering:{rendering}" src="{data_uri(shown.picture_png)}"/>'
        )
        legend = ""
        if self.explain_toggle.value and self.explanation is not None:
            explanation = self.explanation
            layer = overlay_layer_png(explanation.map, spectrogram=explanation.kind == "audio")
            picture = (
                '<div class="onepipe-stack" style="position:relative;display:inline-block;line-height:0">'
                f"{picture}"
                '<img class="onepipe-overlay" alt="Where the model looked" style="position:absolute;left:0;top:0;'
                f"width:100%;height:100%;box-sizing:border-box;border:1px solid transparent;image-rendering:"
                f'{rendering}" src="{data_uri(layer)}"/></div>'
            )
            legend = self._legend(explanation)
        elif self.explain_toggle.value and self._explanation_error:
            legend = f'<div class="onepipe-legend onepipe-hint">{html.escape(self._explanation_error)}</div>'
        return (
            f'<figure class="onepipe-figure">{picture}'
            f"<figcaption>{html.escape(shown.caption)}</figcaption>{legend}</figure>"
        )

    def _legend(self, explanation: Explanation) -> str:
        """One line under the picture: what brighter means, and how much the score fell at most."""
        label = f"<b>{html.escape(explanation.label)}</b>"
        if explanation.largest_drop < WEAK_DROP:
            text = (
                f"Masking any one part hardly changed the score of {label} (by under 1 point): "
                "no single part decided it"
            )
        else:
            text = f"{LEGEND.format(label=label)} (by up to {100 * explanation.largest_drop:.0f} points)"
        masked = "silenced" if explanation.kind == "audio" else "covered with a plain colour"
        title = (
            f"Each patch of about 1/8 of the height and width was {masked} in turn and the model asked again "
            f"({explanation.masked_inputs} masked copies, {self.explain_ms or 0:.0f} ms)."
        )
        scale = (
            '<span class="onepipe-legend-scale" style="display:inline-block;width:44px;height:10px;'
            f'margin-right:6px;vertical-align:middle;border-radius:2px;background:{VIRIDIS_CSS}"></span>'
        )
        return (
            f'<div class="onepipe-legend" title="{html.escape(title)}" style="color:#555;font-size:12.5px;'
            f'margin-top:2px">{scale}{text}.</div>'
        )


def unfamiliar_notice() -> str:
    """The notice above an answer to an input unlike the training data, coloured as the panel's warnings are."""
    return (
        '<div class="onepipe-message onepipe-unfamiliar" role="note" style="background:#fff4e5;color:#663c00;'
        'border:1px solid #ffd599;margin-bottom:8px"><span class="onepipe-icon">⚠️</span>'
        f'<span class="onepipe-message-text"><b class="onepipe-unfamiliar-text">{html.escape(UNFAMILIAR_NOTICE)}</b>'
        f'<br><span style="font-size:12.5px">{html.escape(UNFAMILIAR_HINT)}</span></span></div>'
    )
