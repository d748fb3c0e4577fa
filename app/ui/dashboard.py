"""The dashboard: a title, one line on what it is, and the Audio and Images tabs.

Example (in a notebook or Voila):
    >>> from app.ui import build_dashboard
    >>> dashboard = build_dashboard()
    >>> dashboard.tabs.titles
    ('Audio', 'Images')
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import ipywidgets as widgets

from app import paths
from app.ui.audio_tab import AudioTab
from app.ui.bundles import warm_up
from app.ui.image_tab import ImageTab
from app.ui.styles import CSS, UPLOAD_GUARD_JS

TITLE = "OnePipe"
SUBTITLE = (
    "Small CNNs trained on labelled folders of sounds or pictures: listen, record, pick or upload, "
    "press Predict, and see what the model saw and how sure it is."
)


class DashboardTabs(widgets.Tab):
    """The Audio and Images tabs."""

    def __init__(self, audio: AudioTab, images: ImageTab):
        super().__init__(children=[audio, images])
        self.titles = ("Audio", "Images")
        self.audio, self.images = audio, images


class Dashboard(widgets.VBox):
    """Header and tabs. Displaying it also installs the browser-side upload size guard."""

    def __init__(self, models_dir: Path, title: bool = False):
        self.models_dir = models_dir
        self.audio = AudioTab(models_dir)
        self.images = ImageTab(models_dir)
        self.tabs = DashboardTabs(self.audio, self.images)
        heading = f'<div class="onepipe-header"><h1>{TITLE}</h1><p>{SUBTITLE}</p></div>' if title else ""
        self.header = widgets.HTML(CSS + heading)
        super().__init__([self.header, self.tabs])
        self.add_class("onepipe-dashboard")
        self.warm_up = warm_up([tab.bundle.path for tab in (self.audio, self.images) if tab.bundle is not None])

    def _ipython_display_(self, **kwargs: Any) -> None:
        from IPython.display import Javascript, display

        display(Javascript(UPLOAD_GUARD_JS))
        display(self._repr_mimebundle_(**kwargs), raw=True)


def build_dashboard(models_dir: str | Path | None = None, title: bool = False) -> Dashboard:
    """Fresh dashboard widgets for the bundles in `models_dir` (default app.paths.MODELS_DIR).

    Args:
        models_dir: folder of bundles; None uses app.paths.MODELS_DIR (env ONEPIPE_MODELS_DIR).
        title: also show the title and one line on what this is (notebooks/app.ipynb has them in a
            markdown cell instead).
    """
    return Dashboard(Path(models_dir) if models_dir is not None else paths.MODELS_DIR, title=title)
