"""The dashboard: a title, one line on what it is, and the Audio, Images and Train tabs.

The Train tab's widgets are built when it is first opened, so that a visitor who only predicts gets the page as
fast as before; a model trained there is listed at once in the Audio or Images tab.

Example (in a notebook or Voila):
    >>> from app.ui import build_dashboard
    >>> dashboard = build_dashboard()
    >>> dashboard.tabs.titles, dashboard.train is None
    (('Audio', 'Images', 'Train'), True)
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
from app.ui.upload_batches import BATCH_GUARD_JS

TITLE = "OnePipe"
SUBTITLE = (
    "Small CNNs trained on labelled folders of sounds or pictures: listen, record, pick or upload, "
    "press Predict, and see what the model saw and how sure it is."
)


class DashboardTabs(widgets.Tab):
    """The Audio, Images and Train tabs (the last holds the Train tab once it is built)."""

    TITLES = ("Audio", "Images", "Train")

    def __init__(self, audio: AudioTab, images: ImageTab, train: widgets.Box):
        super().__init__(children=[audio, images, train])
        self.titles = self.TITLES
        self.audio, self.images = audio, images


class Dashboard(widgets.VBox):
    """Header and tabs. Displaying it also installs the browser-side upload size guard."""

    def __init__(self, models_dir: Path, title: bool = False, workspace: Any = None):
        self.models_dir = models_dir
        self.audio = AudioTab(models_dir)
        self.images = ImageTab(models_dir)
        self.workspace = workspace  # the Train tab's (app.ui.workspace.Workspace); None: this kernel's
        self.train: Any = None  # the TrainTab, built when its tab is first opened
        self.train_box = widgets.VBox()
        self.tabs = DashboardTabs(self.audio, self.images, self.train_box)
        self.tabs.observe(self._tab_opened, "selected_index")
        heading = f'<div class="onepipe-header"><h1>{TITLE}</h1><p>{SUBTITLE}</p></div>' if title else ""
        self.header = widgets.HTML(CSS + heading)
        super().__init__([self.header, self.tabs])
        self.add_class("onepipe-dashboard")
        self.warm_up = warm_up([tab.bundle.path for tab in (self.audio, self.images) if tab.bundle is not None])

    def open_train_tab(self) -> Any:
        """Show the Train tab, as a click on its title does (building it the first time); returns the TrainTab."""
        self.tabs.selected_index = DashboardTabs.TITLES.index("Train")
        return self.train

    def _tab_opened(self, change: dict[str, Any]) -> None:
        if change["new"] == DashboardTabs.TITLES.index("Train") and self.train is None:
            from app.ui.train_tab import TrainTab

            self.train = TrainTab(self.models_dir, workspace=self.workspace, on_model=self.show_new_model)
            self.train_box.children = [self.train]

    def show_new_model(self, kind: str, bundle_dir: Path) -> None:
        """List a model trained in the Train tab in the Audio (or Images) tab and choose it there."""
        tab = self.audio if kind == "audio" else self.images
        if tab.refresh_models(bundle_dir.parent, select=bundle_dir.name):
            return
        new_tab = type(tab)(self.models_dir, tab.extra_models_dirs)  # it had no models, hence no picker: a new one
        children = list(self.tabs.children)
        children[children.index(tab)] = new_tab
        if kind == "audio":
            self.audio = self.tabs.audio = new_tab
        else:
            self.images = self.tabs.images = new_tab
        self.tabs.children = children
        self.tabs.titles = DashboardTabs.TITLES

    def _ipython_display_(self, **kwargs: Any) -> None:
        from IPython.display import Javascript, display

        display(Javascript(UPLOAD_GUARD_JS + BATCH_GUARD_JS))
        display(self._repr_mimebundle_(**kwargs), raw=True)


def build_dashboard(models_dir: str | Path | None = None, title: bool = False, workspace: Any = None) -> Dashboard:
    """Fresh dashboard widgets for the bundles in `models_dir` (default app.paths.MODELS_DIR).

    Args:
        models_dir: folder of bundles; None uses app.paths.MODELS_DIR (env ONEPIPE_MODELS_DIR).
        title: also show the title and one line on what this is (notebooks/app.ipynb has them in a
            markdown cell instead).
        workspace: where the Train tab writes (an app.ui.workspace.Workspace); None: this kernel's own, made
            when the tab is first opened.
    """
    models = Path(models_dir) if models_dir is not None else paths.MODELS_DIR
    return Dashboard(models, title=title, workspace=workspace)
