"""On-disk example stores: (n, …) arrays of model inputs kept in files and read a batch at a time.

A training set can be far larger than memory (880,000 spectrograms of 97 × 40 for 80,000 training clips with ten
variants each: 13.7 GB as float32). Its examples live in `.npy` files instead, written as they are made and read
back row by row with positional reads (`os.preadv`), never through a memory map: the pages read belong to the
kernel's page cache, which the kernel evicts under pressure, not to the process's resident memory, so a pass over
the whole store leaves the resident size where it was. Rows may be stored as float16 (half the disk and I/O of
float32 spectrograms; 0.03 dB steps at 32–64 dB) and are read back as float32.

- `create_store` writes a new store (a `.npy` file at a path, or an anonymous scratch file that disappears with
  the process) by row ranges; `open_store` opens a finished one.
- `StoredExamples` reads rows: `examples[i]`, `examples[a:b]` and `examples[[i, j, …]]` behave as on a NumPy
  array of shape `examples.shape`, reading only the rows asked for. `select(rows)` is a view of some rows.
- `JoinedExamples` puts several arrays or stores end to end, as `np.concatenate` would, without copying them.

Example:
    >>> import tempfile
    >>> from pathlib import Path
    >>> import numpy as np
    >>> from app.training.store import JoinedExamples, create_store, open_store
    >>> scratch = tempfile.TemporaryDirectory()
    >>> path = Path(scratch.name) / "examples.npy"
    >>> with create_store(path, 6, (2, 3), np.float16) as writer:  # 6 rows of 2 × 3, stored as float16
    ...     writer.write(0, np.arange(36, dtype=np.float32).reshape(6, 2, 3))
    >>> examples = open_store(path)
    >>> examples.shape, examples.dtype  # read back as float32
    ((6, 2, 3), dtype('float32'))
    >>> examples[[4, 1]][:, 0, 0].tolist(), np.load(path).dtype  # a plain .npy file
    ([24.0, 6.0], dtype('float16'))
    >>> joined = JoinedExamples([np.zeros((2, 2, 3), np.float32), examples.select([5])])
    >>> joined.shape, joined[1:][:, 0, 0].tolist()
    ((3, 2, 3), [0.0, 30.0])
    >>> scratch.cleanup()
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any, BinaryIO

import numpy as np

READ_CALL_BYTES = 64 * 2**20  # largest single read or write: a run of rows longer than this is read in pieces
MERGED_GAP = 4  # rows this few apart are read in one call, the rows between them read and dropped
SCRATCH_PREFIX = "onepipe-scratch-"


class ExampleRows:
    """Row indexing shared by the stores: `[int]`, `[slice]`, `[int array]` (and a tuple whose first item is one
    of those, the rest applied to the rows read), as on an array of shape `shape`. Subclasses implement `read`."""

    shape: tuple[int, ...]
    dtype: np.dtype

    def __len__(self) -> int:
        return self.shape[0]

    @property
    def ndim(self) -> int:
        """Axes of `shape`, the row axis included."""
        return len(self.shape)

    def read(self, indices: np.ndarray) -> np.ndarray:
        """(len(indices), *shape[1:]) rows of dtype `dtype`, for 0 ≤ indices < len(self), in the order given."""
        raise NotImplementedError

    def __getitem__(self, key: Any) -> np.ndarray:
        if isinstance(key, tuple):
            first, rest = (key[0], key[1:]) if key else (slice(None), ())
            if first is Ellipsis:
                return self[slice(None)][key]
            rows = self[first]
            return rows[rest] if isinstance(first, (int, np.integer)) else rows[(slice(None), *rest)]
        if isinstance(key, slice):
            return self.read(np.arange(*key.indices(len(self)), dtype=np.int64))
        if isinstance(key, (int, np.integer)):
            index = int(key) + (len(self) if key < 0 else 0)
            if not 0 <= index < len(self):
                raise IndexError(f"index {key} is out of bounds for {len(self)} rows")
            return self.read(np.array([index], dtype=np.int64))[0]
        indices = np.asarray(key)
        if indices.dtype == bool:
            indices = np.flatnonzero(indices)
        indices = indices.astype(np.int64, copy=False).reshape(-1)
        indices = np.where(indices < 0, indices + len(self), indices)
        if indices.size and (indices.min() < 0 or indices.max() >= len(self)):
            raise IndexError(f"row indices outside 0–{len(self) - 1}")
        return self.read(indices)


class StoredExamples(ExampleRows):
    """The rows of an (n, *row_shape) array in a `.npy` file (or an open scratch file), read on demand.

    Attributes:
        shape: (rows, *row_shape): the rows this view shows, which may be a subset of the file's (`select`).
        dtype: what reads return: float32 for a float16 file, else the file's dtype.
        stored_dtype: the dtype in the file.
    """

    def __init__(
        self,
        file: str | Path | BinaryIO,
        stored_dtype: np.dtype,
        row_shape: tuple[int, ...],
        data_offset: int,
        file_rows: int,
        rows: np.ndarray | None = None,
    ) -> None:
        """file: a path (opened on first read, and again in another process) or an open binary file (kept open).
        data_offset: bytes before row 0; file_rows: rows in the file; rows: the file rows shown (None: all)."""
        self._path: Path | None = Path(file) if isinstance(file, (str, Path)) else None
        self._file: IO[bytes] | None = None if isinstance(file, (str, Path)) else file
        self.stored_dtype = np.dtype(stored_dtype)
        self.dtype = np.dtype(np.float32) if self.stored_dtype == np.float16 else self.stored_dtype
        self.row_shape = tuple(row_shape)
        self.row_bytes = int(np.prod(self.row_shape, dtype=np.int64)) * self.stored_dtype.itemsize
        self.data_offset, self.file_rows = data_offset, file_rows
        self.rows = None if rows is None else np.asarray(rows, dtype=np.int64)
        self.shape = (file_rows if self.rows is None else len(self.rows), *self.row_shape)

    def select(self, rows: Sequence[int] | np.ndarray) -> StoredExamples:
        """A view of some of these rows, in the order given (nothing is read)."""
        rows = np.asarray(rows, dtype=np.int64)
        file_rows = rows if self.rows is None else self.rows[rows]
        view = StoredExamples.__new__(StoredExamples)
        view.__dict__.update(self.__dict__)
        view.rows, view.shape = file_rows, (len(file_rows), *self.row_shape)
        return view

    @property
    def path(self) -> Path | None:
        """The file's path; None for a scratch file."""
        return self._path

    def read(self, indices: np.ndarray) -> np.ndarray:
        """The rows at `indices` (into this view), in that order; rows at most MERGED_GAP apart in the file are
        read in one call."""
        file_rows = indices if self.rows is None else self.rows[indices]
        if not len(file_rows):
            return np.empty((0, *self.row_shape), self.dtype)
        unique, inverse = np.unique(file_rows, return_inverse=True)
        buffer = np.empty((len(unique), *self.row_shape), self.stored_dtype)
        descriptor = self._descriptor()
        for start, stop in _spans(unique):
            first, last = int(unique[start]), int(unique[stop - 1])
            contiguous = last - first == stop - start - 1
            span = buffer[start:stop] if contiguous else np.empty((last - first + 1, *self.row_shape), buffer.dtype)
            _read_exactly(descriptor, span.reshape(-1).view(np.uint8).data, self.data_offset + first * self.row_bytes)
            if not contiguous:  # the rows between those asked for were read too: keep the ones asked for
                buffer[start:stop] = span[unique[start:stop] - first]
        in_order = len(unique) == len(file_rows) and bool(np.all(np.diff(file_rows) > 0))
        return (buffer if in_order else buffer[inverse.reshape(-1)]).astype(self.dtype, copy=False)

    def _descriptor(self) -> int:
        if self._file is None:
            self._file = open(str(self._path), "rb")  # noqa: SIM115 (kept open for the store's life)
        return self._file.fileno()

    def __getstate__(self) -> dict[str, Any]:
        if self._path is None:
            raise TypeError("a scratch store lives in this process only; write a store with a path to share it")
        return {**self.__dict__, "_file": None}


class JoinedExamples(ExampleRows):
    """Arrays and stores of the same row shape end to end, as one (sum of lengths, *row_shape) array; reads
    return the common dtype (float32 when float32 spectrograms meet float16-stored ones)."""

    def __init__(self, parts: Sequence[np.ndarray | ExampleRows]) -> None:
        parts = [part for part in parts if len(part)] or list(parts[:1])
        if not parts:
            raise ValueError("JoinedExamples needs at least one part")
        row_shapes = {tuple(part.shape[1:]) for part in parts}
        if len(row_shapes) != 1:
            raise ValueError(f"parts have different row shapes: {sorted(row_shapes)}")
        self.parts = parts
        self.starts = np.cumsum([0, *(len(part) for part in parts)])
        self.dtype = np.result_type(*(part.dtype for part in parts))
        self.shape = (int(self.starts[-1]), *row_shapes.pop())

    def read(self, indices: np.ndarray) -> np.ndarray:
        """The rows at `indices`, in that order, each part reading only its own rows."""
        output = np.empty((len(indices), *self.shape[1:]), self.dtype)
        part_of = np.searchsorted(self.starts, indices, side="right") - 1
        for part_index in np.unique(part_of):
            chosen = part_of == part_index
            part = self.parts[part_index]
            local = indices[chosen] - self.starts[part_index]
            output[chosen] = part.read(local) if isinstance(part, ExampleRows) else part[local]
        return output


class StoreWriter(contextlib.AbstractContextManager):
    """Writes rows of a store by position (`write(start_row, rows)`), in any order, from one process."""

    def __init__(
        self, file: BinaryIO, path: Path | None, rows: int, row_shape: tuple[int, ...], dtype: Any, data_offset: int
    ) -> None:
        """file: open for writing; path: its path (None for a scratch file); data_offset: bytes before row 0."""
        self.file, self.path, self.rows, self.data_offset = file, path, rows, data_offset
        self.row_shape, self.dtype = tuple(row_shape), np.dtype(dtype)
        self.row_bytes = int(np.prod(self.row_shape, dtype=np.int64)) * self.dtype.itemsize

    def write(self, start_row: int, rows: np.ndarray) -> None:
        """Store (k, *row_shape) rows as rows start_row … start_row + k - 1 (converted to the store's dtype)."""
        rows = np.ascontiguousarray(rows, dtype=self.dtype)
        if rows.shape[1:] != self.row_shape or not 0 <= start_row <= self.rows - len(rows):
            raise ValueError(
                f"rows of shape {rows.shape} do not fit at row {start_row} of {self.rows} × {self.row_shape}"
            )
        source = rows.reshape(-1).view(np.uint8).data
        offset, done = self.data_offset + start_row * self.row_bytes, 0
        while done < len(source):
            done += os.pwrite(self.file.fileno(), source[done : done + READ_CALL_BYTES], offset + done)

    def write_rows(self, positions: np.ndarray, rows: np.ndarray) -> None:
        """Store rows[k] as row positions[k] (ascending positions: each consecutive run is one write)."""
        positions = np.asarray(positions, dtype=np.int64)
        breaks = np.flatnonzero(np.diff(positions) != 1) + 1
        for start, stop in zip(np.r_[0, breaks], np.r_[breaks, len(positions)], strict=True):
            if stop > start:
                self.write(int(positions[start]), rows[start:stop])

    def sync(self) -> None:
        """Make what was written durable (it survives a power loss) before, say, recording it as done."""
        os.fdatasync(self.file.fileno())

    def examples(self) -> StoredExamples:
        """A reader of this store (of a scratch store: sharing its open file)."""
        return StoredExamples(self.path or self.file, self.dtype, self.row_shape, self.data_offset, self.rows)

    def __exit__(self, *exception: object) -> None:
        if self.path is not None:
            self.file.close()


def create_store(
    path: Path | None, rows: int, row_shape: tuple[int, ...], dtype: Any, scratch_dir: Path | None = None
) -> StoreWriter:
    """A StoreWriter of a new (rows, *row_shape) store, every row zero until written: the `.npy` file at `path`
    (replaced if present) or, with path None, an anonymous scratch file in `scratch_dir` (the system's temporary
    folder when None) that is deleted when its last reader goes, or the process ends, however it ends."""
    if path is None:
        if scratch_dir is not None:
            scratch_dir.mkdir(parents=True, exist_ok=True)
        file = tempfile.TemporaryFile(dir=scratch_dir, prefix=SCRATCH_PREFIX)  # noqa: SIM115 (the store's life)
    else:
        file = open(path, "w+b")  # noqa: SIM115 (closed by the writer's `with`)
    dtype = np.dtype(dtype)
    header = {"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False, "shape": (rows, *row_shape)}
    np.lib.format.write_array_header_1_0(file, header)
    file.flush()
    writer = StoreWriter(file, path, rows, row_shape, dtype, file.tell())
    os.ftruncate(file.fileno(), writer.data_offset + rows * writer.row_bytes)
    return writer


def open_store_writer(path: Path) -> StoreWriter:
    """A StoreWriter of the existing store at `path`, to write more of its rows (what was written stays)."""
    reader = open_store(path)
    return StoreWriter(
        open(path, "r+b"),  # closed by the writer's `with`
        path,
        reader.file_rows,
        reader.row_shape,
        reader.stored_dtype,
        reader.data_offset,
    )


def open_store(path: Path) -> StoredExamples:
    """The finished `.npy` store at `path`, read on demand."""
    with open(path, "rb") as file:
        version = np.lib.format.read_magic(file)
        if version != (1, 0):
            shape, fortran_order, dtype = np.lib.format.read_array_header_2_0(file)
        else:
            shape, fortran_order, dtype = np.lib.format.read_array_header_1_0(file)
        data_offset = file.tell()
    if fortran_order or not shape:
        raise ValueError(f"{path} is not a C-ordered array of rows")
    expected = data_offset + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if os.path.getsize(path) < expected:
        raise ValueError(f"{path} is shorter than its header says ({os.path.getsize(path)} of {expected} bytes)")
    return StoredExamples(path, dtype, tuple(shape[1:]), data_offset, shape[0])


def _spans(rows: np.ndarray) -> list[tuple[int, int]]:
    """(start, stop) positions in the sorted unique `rows` of the runs to read in one call each: rows at most
    MERGED_GAP rows apart share a run.

    Example:
        >>> _spans(np.array([3, 4, 5, 9, 40, 41]))
        [(0, 4), (4, 6)]
    """
    breaks = np.flatnonzero(np.diff(rows) > MERGED_GAP + 1) + 1
    return list(zip(np.r_[0, breaks].tolist(), np.r_[breaks, len(rows)].tolist(), strict=True))


def _read_exactly(descriptor: int, target: memoryview, offset: int) -> None:
    """Fill `target` from the file at `offset` (several reads when the kernel returns less)."""
    done = 0
    while done < len(target):
        count = os.preadv(descriptor, [target[done : done + READ_CALL_BYTES]], offset + done)
        if count <= 0:
            raise OSError(f"the store ended {len(target) - done} bytes early")
        done += count
