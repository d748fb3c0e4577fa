"""The one exception family of OnePipe.

Every message says what was received and what is expected, so the CLI can print it on one line
and the dashboard can show it in the result panel instead of a traceback.
"""


class OnePipeError(Exception):
    """Base class of every error OnePipe raises on purpose."""


class InputError(OnePipeError, ValueError):
    """A file, byte string or array given by a user cannot be used (wrong type, corrupt, empty)."""


class UndecodableError(InputError):
    """Bytes with no audio to read: corrupt, cut short, without an audio stream or samples, or another kind of
    file."""


class DatasetError(OnePipeError, ValueError):
    """A data folder does not have the `root/<class>/<file>` layout or holds too little data."""


class BundleError(OnePipeError):
    """A model bundle is missing, incomplete, altered or would be overwritten."""
