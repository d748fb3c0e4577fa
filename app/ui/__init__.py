"""The Voila dashboard: `build_dashboard()` returns fresh widgets (Audio, Images and Train tabs).

Only this package imports ipywidgets, ipywebrtc and IPython.

Example:
    >>> from app.ui import build_dashboard
    >>> dashboard = build_dashboard()
    >>> dashboard.tabs.titles
    ('Audio', 'Images', 'Train')
"""

from app.ui.dashboard import build_dashboard

__all__ = ["build_dashboard"]
