"""Reading a data set's files: IDX (gzipped or not) and Keras-format .npz, within bounds checked from headers.

Every size is checked against what a data set may be (BOUNDS) from a file's header, before the pixels are
read or decompressed: a small gzip or .npz claiming gigabytes is refused having cost no more than its header.
"""

from __future__ import annotations

import gzip
import math
import zlib
from pathlib import Path

import numpy as np

from .. import safe_io, store
from ..errors import SoftmaxError

KEYS = ("x_train", "y_train", "x_test", "y_test")
IDX_FILES = {
    "x_train": "train-images-idx3-ubyte",
    "y_train": "train-labels-idx1-ubyte",
    "x_test": "t10k-images-idx3-ubyte",
    "y_test": "t10k-labels-idx1-ubyte",
}
IDX_MAGIC = {"x": 2051, "y": 2049}  # 0x0803: unsigned bytes in 3 dimensions; 0x0801: in 1 dimension
EXPECTED_SOURCE = ("a Keras .npz (x_train, y_train, x_test, y_test, or x and y), a folder with the four IDX files, "
                   "or a .csv table")
MAX_SIDE = 1024          # pixels: a model of larger images would outgrow the model file (store.MAX_WEIGHT_BYTES)
MAX_IMAGES = 10_000_000  # in one split: over 150 times MNIST's training set
MAX_ARRAY_BYTES = 2 * 2**30  # one array as stored (float64 pixels of MNIST take 376 MB)
MAX_NAME_CHARS = 200     # the longest class name store accepts
READ_CHUNK = 2**20  # IDX data is read this many bytes at a time, so memory grows with the data, not the header's claim
BOUNDS = (f"at most {MAX_IMAGES:,} images of at most {MAX_SIDE}x{MAX_SIDE} pixels, "
          f"{MAX_ARRAY_BYTES:,} bytes an array and {store.MAX_CLASSES} classes")


def check_shape(key: str, shape: tuple[int, ...], itemsize: int, where: str) -> None:
    """Raise SoftmaxError if an array of this shape cannot be part of a data set, before it is read."""
    count = shape[0] if shape else 0
    if key == "x" or key == "feature_names":
        too_big = count > MAX_IMAGES or (len(shape) > 1 and shape[1] > MAX_FEATURES)
    elif key.startswith("x"):
        sides = shape[1:3] if len(shape) in (3, 4) else (math.isqrt(shape[1]),) if len(shape) == 2 else ()
        too_big = count > MAX_IMAGES or any(side > MAX_SIDE for side in sides)
    elif key == "class_names":
        too_big = count > store.MAX_CLASSES or itemsize > 4 * MAX_NAME_CHARS
    else:
        too_big = count > MAX_IMAGES
    if too_big or math.prod(shape) * itemsize > MAX_ARRAY_BYTES:
        raise SoftmaxError(f"{where} is too large for a data set: its header gives shape {shape}; "
                           f"a data set has {BOUNDS}")


def read_npz(path: Path) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Return the arrays of a Keras-format .npz (plus class_names if it has them) and where each came from."""
    wanted = (*KEYS, "class_names")
    try:
        with safe_io.open_npz(path, "the data file", max_member_bytes=MAX_ARRAY_BYTES,
                              max_total_bytes=4 * MAX_ARRAY_BYTES) as archive:
            missing = [key for key in KEYS if key not in archive.names]
            if missing and {"x", "y"} <= set(archive.names):  # feature rows and labels, for the tool to split
                wanted = ("x", "y", "class_names", "feature_names")
                missing = []
            if missing:
                raise SoftmaxError(
                    f"{path} lacks {', '.join(missing)}: a Keras-format .npz holds {', '.join(KEYS)}"
                    f" (it has {', '.join(archive.names) or 'nothing'})")
            arrays = read_checked(archive, path, wanted)
    except safe_io.DamagedFile as e:
        raise SoftmaxError(f"cannot read {path}: {e.reason}; expected {EXPECTED_SOURCE}") from None
    return arrays, {key: f"{path} ({key})" for key in arrays}


def read_checked(archive, path: Path, keys) -> dict[str, np.ndarray]:
    """Return those of keys that the open .npz archive (safe_io.open_npz) holds, each array's size checked from
    its header (check_shape) before it is read."""
    arrays = {}
    for key in (key for key in keys if key in archive.names):
        shape, dtype = archive.header(key)
        check_shape(key, shape, dtype.itemsize, f"{path} ({key})")
        arrays[key] = archive.read(key)
    return arrays


def read_idx_folder(files: dict[str, Path]) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Return the four arrays of an IDX folder and the file each came from."""
    arrays = {key: read_idx(file, key) for key, file in files.items()}
    return arrays, {key: str(file) for key, file in files.items()}


def read_idx(path: Path, key: str) -> np.ndarray:
    """Return the uint8 array in one IDX file (gzipped if it ends in .gz), after checking its header and size.

    The header is read first, and then no more than the bytes it gives (and one, to notice extra data) are read
    or decompressed: a small .gz that expands to gigabytes is refused having cost no more than the header says.
    """
    magic = IDX_MAGIC[key[0]]
    ndim = magic & 0xFF
    header_size = 4 + 4 * ndim
    kind = "images" if ndim == 3 else "labels"
    compressed = path.suffix == ".gz"
    with safe_io.open_regular(path, "the data file") as file:
        try:
            stream = gzip.GzipFile(fileobj=file) if compressed else file
            header = stream.read(header_size)
            found = int.from_bytes(header[:4], "big")
            if found != magic:
                raise SoftmaxError(f"{path} is not an IDX {kind} file: magic number {found}, expected {magic}")
            if len(header) < header_size:
                raise SoftmaxError(f"{path} is truncated: it ends inside its header")
            shape = tuple(int.from_bytes(header[i : i + 4], "big") for i in range(4, header_size, 4))
            expected = math.prod(shape)
            try:
                check_shape(key, shape, 1, str(path))
            except SoftmaxError:
                raise SoftmaxError(
                    f"{path} is not a usable IDX {kind} file: its header gives shape {shape}, {expected:,} bytes; "
                    f"a data set has {BOUNDS} (is the file damaged?)") from None
            data = bytearray()
            while len(data) <= expected and (chunk := stream.read(min(READ_CHUNK, expected + 1 - len(data)))):
                data += chunk
        except (OSError, EOFError, zlib.error) as e:
            problem = " (damaged gzip data)" if compressed else ""
            raise SoftmaxError(f"cannot read {path}{problem}: {' '.join(str(e).split()) or type(e).__name__}") from None
    if len(data) != expected:
        problem, held = ("truncated", len(data)) if len(data) < expected else ("longer than its header says", "more")
        raise SoftmaxError(f"{path} is {problem}: its header gives shape {shape} ({expected} bytes) but it holds {held}")
    return np.frombuffer(data, np.uint8).reshape(shape)


# Tables: a CSV file (a header row, one label column, every other column a number) or an .npz of feature rows.
LABEL_COLUMNS = ("target", "label")  # the label column's usual names, when --target does not name it
MAX_TABLE_BYTES = 256 * 2**20  # a CSV larger than this is refused before it is read: its rows stay in memory
TABLE_CHUNK = 65_536  # rows parsed into Python floats before they are packed into a float64 array
MAX_FEATURES = 100_000  # columns: a model of more would outgrow the model file with a few classes


def is_csv(path: Path) -> bool:
    """Return whether path is read as a CSV table (by its suffix)."""
    return path.suffix.lower() in (".csv", ".txt", ".tsv")


def read_csv(path: Path, target: str | None = None, features: tuple[str, ...] | None = None,
             stream=None) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """Return the feature rows (float64), the label strings and the feature names of a CSV table.

    The first line is the header; the label column is target, else the one called "target" or "label". Every
    other value must be a number: a missing or non-numeric value, a line with more or fewer values than the
    header, an empty file or a header with no rows is refused in one line naming the line and the column.

    With features (a model's feature names, to predict on), the label column may be absent (its labels are then
    empty) and the rows come back with those columns, in that order. stream: a binary file to read instead of path.
    """
    import contextlib
    import csv
    import io

    opened = contextlib.nullcontext(stream) if stream is not None else safe_io.open_regular(path, "the data file")
    with opened as stream:
        size = stream.seek(0, 2) if stream.seekable() else 0
        stream.seek(0) if stream.seekable() else None
        if size > MAX_TABLE_BYTES:
            raise SoftmaxError(f"{path} holds {size:,} bytes, more than the {MAX_TABLE_BYTES:,} a CSV data set may "
                               "have: sample its rows, or save them as a Keras-format .npz")
        try:
            text = io.TextIOWrapper(stream, encoding="utf-8-sig", newline="")
            delimiter = "\t" if path.suffix.lower() == ".tsv" else ","
            reader = csv.reader(text, delimiter=delimiter)
            header = next(reader, None)
            if header is None or not any(cell.strip() for cell in header):
                raise SoftmaxError(f"{path} is empty: a CSV data set has a header row, then one row per example")
            header = [cell.strip() for cell in header]
            label_column = _label_column(path, header, target, optional=features is not None)
            names = tuple(name for i, name in enumerate(header) if i != label_column)
            if features is not None:
                absent = [name for name in features if name not in names]
                if absent:
                    raise SoftmaxError(f"{path} line 1: no column {absent[0]!r}, a feature the model takes (it takes "
                                       f"{', '.join(features[:8])}{', …' if len(features) > 8 else ''})")
            if not names:
                raise SoftmaxError(f"{path}: the header names only the label column {header[label_column]!r}: "
                                   "a CSV data set needs at least one feature column")
            if len(names) > MAX_FEATURES:
                raise SoftmaxError(f"{path}: {len(names):,} feature columns, more than the {MAX_FEATURES:,} a model "
                                   "may take")
            blank = next((i for i, name in enumerate(header) if not name), None)
            if blank is not None:
                raise SoftmaxError(f"{path} line 1, column {blank + 1}: the header names no column there: "
                                   "every column needs a name")
            rows, labels, chunks = [], [], []
            for row in reader:
                if len(rows) == TABLE_CHUNK:  # packed as it goes: memory grows by 8 bytes a value, not a float object's 24
                    chunks.append(np.array(rows, np.float64).reshape(len(rows), len(names)))
                    rows = []
                line = reader.line_num
                if not row or (len(row) == 1 and not row[0].strip()):
                    continue  # a blank line (a file's trailing newline, or a gap) holds no example
                if len(row) != len(header):
                    raise SoftmaxError(f"{path} line {line}: {len(row)} values but the header has {len(header)} "
                                       "columns: every line needs one value a column")
                values = []
                for i, cell in enumerate(row):
                    if i == label_column:
                        label = cell.strip()
                        if not label:
                            raise SoftmaxError(f"{path} line {line}, column {header[i]!r}: the label is missing")
                        labels.append(label)
                        continue
                    try:
                        value = float(cell)
                    except ValueError:
                        shown = repr(cell.strip()[:40]) if cell.strip() else "missing"
                        raise SoftmaxError(f"{path} line {line}, column {header[i]!r}: the value is {shown}, "
                                           "not a number: every feature must be a number") from None
                    if not math.isfinite(value):
                        raise SoftmaxError(f"{path} line {line}, column {header[i]!r}: {cell.strip()!r} is not a "
                                           "finite number")
                    values.append(value)
                rows.append(values)
        except UnicodeDecodeError as e:
            raise SoftmaxError(f"{path} is not a UTF-8 text CSV file ({e.reason} at byte {e.start})") from None
        except csv.Error as e:
            raise SoftmaxError(f"{path} line {reader.line_num}: not a readable CSV line ({e})") from None
    chunks.append(np.array(rows, np.float64).reshape(len(rows), len(names)))
    table = np.concatenate(chunks)
    if not len(table):
        raise SoftmaxError(f"{path} has a header but no rows: a CSV data set needs one row per example")
    if features is not None:
        return table[:, [names.index(name) for name in features]], np.array(labels), tuple(features)
    return table, np.array(labels), names


def _label_column(path: Path, header: list[str], target: str | None, optional: bool = False) -> int | None:
    """Return the index of the label column: target's, else the column called target or label (None if optional
    and there is none)."""
    if target is not None:
        if target not in header:
            raise SoftmaxError(f"{path} has no column {target!r} for {{setting}} (its columns: "
                               f"{', '.join(header[:8])}{', …' if len(header) > 8 else ''})", setting="target")
        return header.index(target)
    found = [name for name in LABEL_COLUMNS if name in header]
    if not found and optional:
        return None
    if not found:
        raise SoftmaxError(f"{path} has no column called target or label: name its label column with {{setting}}",
                           setting="target")
    return header.index(found[0])
