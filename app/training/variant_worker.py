"""A worker process of app.training.variants, started as `python -m app.training.variant_worker`.

A fresh interpreter, not a fork or a multiprocessing spawn: it imports NumPy, SciPy and PyAV but never the
parent's `__main__` (a script or a notebook kernel that may import TensorFlow or train again) and never
TensorFlow. It reads length-prefixed pickled messages on stdin: first the WorkerState, then tasks
`(positions, paths)`; for each task it writes one message on stdout, `("done", positions, spectrograms,
readable)` or `("failed", traceback text)`. It ends when its input ends (the parent finished, or died). Ctrl-C
is left to the parent, which ends its workers.
"""

from __future__ import annotations

import os
import pickle
import signal
import struct
import sys
import traceback
from typing import Any

HEADER = struct.Struct("<Q")  # the byte length of the pickle that follows


def send(descriptor: int, message: Any) -> None:
    """Write one message (its length, then its pickle) to a file descriptor."""
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    view, done = memoryview(HEADER.pack(len(data)) + data), 0
    while done < len(view):
        done += os.write(descriptor, view[done:])


def receive(descriptor: int) -> Any:
    """Read one message from a file descriptor; EOFError when the other end has closed it."""
    (length,) = HEADER.unpack(_read_exactly(descriptor, HEADER.size))
    return pickle.loads(_read_exactly(descriptor, length))


def _read_exactly(descriptor: int, count: int) -> bytes:
    chunks, left = [], count
    while left:
        chunk = os.read(descriptor, min(left, 1 << 24))
        if not chunk:
            raise EOFError("the other process closed its end")
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def main() -> int:
    """Serve tasks until stdin ends."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    source, sink = sys.stdin.fileno(), os.dup(sys.stdout.fileno())
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())  # a stray print goes to stderr, never into the messages
    from app.training.variants import make_chunk, start_worker

    start_worker(receive(source))
    while True:
        try:
            task = receive(source)
        except EOFError:
            return 0
        try:
            send(sink, ("done", *make_chunk(*task)))
        except Exception:
            send(sink, ("failed", traceback.format_exc()))


if __name__ == "__main__":
    raise SystemExit(main())
