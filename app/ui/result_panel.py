"""The result panel: the top label large, top-5 confidence bars, what the model saw, and the time taken.

Bad input shows a short message instead; never a traceback.
"""

from __future__ import annotations

import html
from typing import Any

import ipywidgets as widgets

from app.ui.render import data_uri

PLACEHOLDER = "Pick an example, record or upload, and the prediction appears here."


def friendly_message(error: BaseException) -> str:
    """One short sentence for the user: OnePipe's own message, or a generic one for anything else."""
    from app.errors import OnePipeError

    if isinstance(error, OnePipeError):
        text = str(error).strip() or type(error).__name__
        return text[0].upper() + text[1:]
    return (
        f"Something went wrong while predicting ({type(error).__name__}). The dashboard still works: try another input."
    )


class ResultPanel(widgets.VBox):
    """Shows predictions or a message. State for tests: `predictions`, `message`, `level`."""

    def __init__(self, **kwargs: Any):
        self.view = widgets.HTML(layout=widgets.Layout(width="100%"))
        super().__init__([self.view], **kwargs)
        self.add_class("onepipe-result")
        self.predictions: list[dict[str, Any]] = []
        self.message = ""
        self.level = "info"
        self.elapsed_ms: float | None = None
        self.show_message(PLACEHOLDER, "info")

    def show_message(self, text: str, level: str = "error") -> None:
        """A short message: level "error" (amber box), "busy" or "info" (grey)."""
        self.predictions, self.message, self.level, self.elapsed_ms = [], text, level, None
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
    ) -> None:
        """The top label, bars for each prediction, the model's input picture and the time taken."""
        self.predictions, self.message, self.level, self.elapsed_ms = list(predictions), "", "result", elapsed_ms
        top = predictions[0]
        bars = "".join(
            f'<div class="onepipe-bar-row"><span class="onepipe-bar-label">{html.escape(p["label"])}</span>'
            f'<span class="onepipe-bar"><span class="onepipe-bar-fill" style="width:{100 * p["score"]:.1f}%">'
            f'</span></span><span class="onepipe-bar-score">{100 * p["score"]:.1f}%</span></div>'
            for p in predictions
        )
        rendering = "pixelated" if pixelated else "auto"
        self.view.value = (
            '<div class="onepipe-prediction">'
            f'<div class="onepipe-top"><span class="onepipe-top-label">{html.escape(top["label"])}</span>'
            f'<span class="onepipe-top-score">{100 * top["score"]:.1f}% confident</span></div>'
            f'<div class="onepipe-bars">{bars}</div>'
            f'<figure class="onepipe-figure"><img class="onepipe-picture" alt="{html.escape(caption)}" '
            f'style="image-rendering:{rendering}" src="{data_uri(picture_png)}"/>'
            f"<figcaption>{html.escape(caption)}</figcaption></figure>"
            f'<div class="onepipe-time">Predicted in <b class="onepipe-ms">{elapsed_ms:.0f} ms</b> · '
            f'<span class="onepipe-source">{html.escape(source_name)}</span></div>'
            "</div>"
        )
