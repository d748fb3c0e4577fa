"""Wording shared by the messages of the training steps.

Example:
    >>> from app.training.messages import first_names
    >>> first_names(["yes", "no", "up"], limit=2)
    'yes, no …'
"""

from __future__ import annotations

from collections.abc import Sequence


def first_names(names: Sequence[str], limit: int = 10) -> str:
    """The first `limit` names as "a, b, c …", for messages."""
    return ", ".join(names[:limit]) + (" …" if len(names) > limit else "")
