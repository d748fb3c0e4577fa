"""Logging for the command line, and the native libraries' start-up lines kept off the terminal.

Results (JSON lines, the evaluation table) go to stdout; log lines, progress and warnings to stderr. A run of
the CLI logs the `app.*` loggers at INFO as plain messages (DEBUG with --verbose, WARNING with --quiet) and
other libraries at WARNING. Without --verbose, what TensorFlow, absl and oneDNN print from C++ while TensorFlow
loads ("oneDNN custom operations are on …") and LiteRT's "Created TensorFlow Lite XNNPACK delegate for CPU"
are held back; when the step that prints them fails, they are written out before the error.

Example:
    >>> import logging
    >>> from app.logs import cli_logging, quiet_native_output
    >>> with cli_logging(verbose=False, quiet=False):
    ...     logging.getLogger("app.example").info("a plain line on stderr")
    ...     with quiet_native_output():  # e.g. around creating a LiteRT interpreter
    ...         pass
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import logging
import os
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager

# TensorFlow's C++ log level: 2 keeps errors only. It does not reach the lines logged through absl before
# absl::InitializeLog() (oneDNN's notice), hence the quiet import below.
NATIVE_LOG_LEVEL_VARIABLE = "TF_CPP_MIN_LOG_LEVEL"
QUIET_NATIVE_LOG_LEVEL = "2"
QUIETLY_IMPORTED = "tensorflow"  # its first import runs inside quiet_native_output()

_state = {"quiet_native": True}  # False under --verbose: native lines reach the terminal


class _CurrentStderr(logging.StreamHandler):
    """A handler that writes to whatever sys.stderr is when a record arrives (a test's capture included)."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:  # StreamHandler.__init__ assigns it; the property always reads sys.stderr
        pass


@contextmanager
def cli_logging(verbose: bool = False, quiet: bool = False) -> Iterator[None]:
    """Logging for one command-line run, undone when the block ends (in-process runs, as in tests, leave no trace).

    Args:
        verbose: `app.*` at DEBUG, other libraries at INFO, and TensorFlow's, absl's, oneDNN's and LiteRT's
            native lines let through (TF_CPP_MIN_LOG_LEVEL is then left as the environment sets it).
        quiet: `app.*` at WARNING: no per-epoch or progress lines, only warnings and errors.
    """
    app_level = logging.DEBUG if verbose else logging.WARNING if quiet else logging.INFO
    handler = _CurrentStderr()
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s" if verbose else "%(message)s"))
    root, app, absl = logging.getLogger(), logging.getLogger("app"), logging.getLogger("absl")
    saved_levels = [(logger, logger.level) for logger in (root, app, absl)]
    saved_quiet = _state["quiet_native"]
    root.addHandler(handler)
    root.setLevel(logging.INFO if verbose else logging.WARNING)
    app.setLevel(app_level)
    absl.setLevel(logging.INFO if verbose else logging.WARNING)
    _state["quiet_native"] = not verbose
    hook = None
    if not verbose:
        os.environ.setdefault(NATIVE_LOG_LEVEL_VARIABLE, QUIET_NATIVE_LOG_LEVEL)
        if QUIETLY_IMPORTED not in sys.modules:
            hook = _QuietFirstImport(QUIETLY_IMPORTED)
            sys.meta_path.insert(0, hook)
    try:
        yield
    finally:
        if hook in sys.meta_path:
            sys.meta_path.remove(hook)
        _state["quiet_native"] = saved_quiet
        root.removeHandler(handler)
        for logger, level in saved_levels:
            logger.setLevel(level)


@contextmanager
def quiet_native_output() -> Iterator[None]:
    """Hold back what is written to file descriptor 2 (stderr) inside the block, where native libraries print.

    If the block raises, the held-back text is written to sys.stderr before the exception goes on, so an error
    message from native code is never lost. Python's own writes to sys.stderr inside the block are held back
    too when sys.stderr is descriptor 2, so keep the block to the native call. Does nothing under --verbose.
    """
    if not _state["quiet_native"]:
        yield
        return
    for stream in (sys.stdout, sys.stderr):
        if stream is not None:
            stream.flush()
    try:
        saved = os.dup(2)
    except OSError:  # no descriptor 2 (a detached process): nothing to hold back
        yield
        return
    with tempfile.TemporaryFile() as held_back:
        os.dup2(held_back.fileno(), 2)
        try:
            yield
        except Exception:
            os.dup2(saved, 2)
            held_back.seek(0)
            text = held_back.read().decode("utf-8", errors="replace")
            if text and sys.stderr is not None:
                sys.stderr.write(text)
                sys.stderr.flush()
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)


class _QuietFirstImport(importlib.abc.MetaPathFinder):
    """On the first import of module `name`, runs its top-level code inside quiet_native_output(), then steps
    aside: the module is found as usual, only its loader is wrapped."""

    def __init__(self, name: str):
        self.name = name

    def find_spec(self, fullname, path=None, target=None):
        if fullname != self.name:
            return None
        if self in sys.meta_path:
            sys.meta_path.remove(self)
        spec = importlib.util.find_spec(fullname)
        if spec is not None and type(spec.loader) is importlib.machinery.SourceFileLoader:
            spec.loader = _QuietSourceFileLoader(spec.loader.name, spec.loader.path)
        return spec


class _QuietSourceFileLoader(importlib.machinery.SourceFileLoader):
    def exec_module(self, module) -> None:
        with quiet_native_output():
            super().exec_module(module)
