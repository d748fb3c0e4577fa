"""Live training curves as inline SVG: loss and accuracy per epoch, training and held-out, redrawn each epoch.

Plain strings, no plotting library in the kernel. The x axis spans the epochs planned (early stopping may end
sooner), so the lines grow to the right as training goes; accuracy runs from 0 to 1, loss from 0 to its highest
value so far.

Example:
    >>> history = {"loss": [1.1, 0.7, 0.4], "accuracy": [0.4, 0.7, 0.9], "val_loss": [0.9, 0.6, 0.5]}
    >>> svg = curves_html(history, epochs=10)
    >>> svg.count("<polyline"), 'data-epochs="3"' in svg
    (3, True)
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence

WIDTH, HEIGHT = 240, 150  # one chart, in SVG units (the page scales it)
MARGIN_LEFT, MARGIN_RIGHT, MARGIN_TOP, MARGIN_BOTTOM = 34, 8, 20, 22
TRAIN_COLOUR, HELD_OUT_COLOUR = "#3b7dd8", "#e07b00"


def curves_html(history: Mapping[str, Sequence[float | None]], epochs: int) -> str:
    """Two charts side by side, loss and accuracy, with a legend; `data-epochs` on the outer element holds the
    number of epochs drawn (for tests and the benchmark).

    Args:
        history: {"loss", "accuracy", and when examples are held out "val_loss", "val_accuracy"}: one value per
            epoch so far (None for a value that was not a number).
        epochs: the most epochs the run will train (the x axis' length).
    """
    drawn = len(history.get("loss", ()))
    charts = _chart("Loss", history.get("loss", ()), history.get("val_loss", ()), epochs, None)
    charts += _chart("Accuracy", history.get("accuracy", ()), history.get("val_accuracy", ()), epochs, 1.0)
    legend = f'<span style="color:{TRAIN_COLOUR}">━ training</span>' + (
        f' <span style="color:{HELD_OUT_COLOUR}">━ held out</span>' if history.get("val_loss") else ""
    )
    return (
        f'<div class="onepipe-curves" data-epochs="{drawn}">{charts}'
        f'<div class="onepipe-curves-legend">{legend}</div></div>'
    )


def _chart(
    title: str, train: Sequence[float | None], held_out: Sequence[float | None], epochs: int, top: float | None
) -> str:
    values = [v for v in (*train, *held_out) if v is not None]
    high = top if top is not None else max([*values, 1e-6]) * 1.1
    epochs = max(epochs, len(train), 2)
    inner_width, inner_height = WIDTH - MARGIN_LEFT - MARGIN_RIGHT, HEIGHT - MARGIN_TOP - MARGIN_BOTTOM

    def point(index: int, value: float) -> str:
        x = MARGIN_LEFT + inner_width * index / (epochs - 1)
        y = MARGIN_TOP + inner_height * (1 - min(max(value / high, 0.0), 1.0))
        return f"{x:.1f},{y:.1f}"

    def line(series: Sequence[float | None], colour: str) -> str:
        points = " ".join(point(i, v) for i, v in enumerate(series) if v is not None)
        if not points:
            return ""
        return f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="{points}"/>'

    bottom, right = HEIGHT - MARGIN_BOTTOM, WIDTH - MARGIN_RIGHT
    axes = (
        f'<line x1="{MARGIN_LEFT}" y1="{bottom}" x2="{right}" y2="{bottom}" stroke="#999"/>'
        f'<line x1="{MARGIN_LEFT}" y1="{MARGIN_TOP}" x2="{MARGIN_LEFT}" y2="{bottom}" stroke="#999"/>'
        f'<text x="{MARGIN_LEFT - 4}" y="{MARGIN_TOP + 4}" text-anchor="end">{high:.2g}</text>'
        f'<text x="{MARGIN_LEFT - 4}" y="{bottom}" text-anchor="end">0</text>'
        f'<text x="{MARGIN_LEFT}" y="{HEIGHT - 6}">1</text>'
        f'<text x="{right}" y="{HEIGHT - 6}" text-anchor="end">epoch {epochs}</text>'
        f'<text x="{MARGIN_LEFT}" y="13" font-weight="600">{html.escape(title)}</text>'
    )
    return (
        f'<svg class="onepipe-chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{html.escape(title)}" '
        f'font-size="10" font-family="sans-serif">{axes}{line(train, TRAIN_COLOUR)}{line(held_out, HELD_OUT_COLOUR)}'
        "</svg>"
    )
