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
EXPECTED_SOURCE = "a Keras .npz (x_train, y_train, x_test, y_test) or a folder with the four IDX files"
MAX_SIDE = 1024          # pixels: a model of larger images would outgrow the model file (store.MAX_MEMBER_BYTES)
MAX_IMAGES = 10_000_000  # in one split: over 150 times MNIST's training set
MAX_ARRAY_BYTES = 2 * 2**30  # one array as stored (float64 pixels of MNIST take 376 MB)
MAX_NAME_CHARS = 200     # the longest class name store accepts
READ_CHUNK = 2**20  # IDX data is read this many bytes at a time, so memory grows with the data, not the header's claim
BOUNDS = (f"at most {MAX_IMAGES:,} images of at most {MAX_SIDE}x{MAX_SIDE} pixels, "
          f"{MAX_ARRAY_BYTES:,} bytes an array and {store.MAX_CLASSES} classes")


def check_shape(key: str, shape: tuple[int, ...], itemsize: int, where: str) -> None:
    """Raise SoftmaxError if an array of this shape cannot be part of a data set, before it is read."""
    count = shape[0] if shape else 0
    if key.startswith("x"):
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
            if missing:
                raise SoftmaxError(
                    f"{path} lacks {', '.join(missing)}: a Keras-format .npz holds {', '.join(KEYS)}"
                    f" (it has {', '.join(archive.names) or 'nothing'})")
            arrays = {}
            for key in (key for key in wanted if key in archive.names):
                shape, dtype = archive.header(key)
                check_shape(key, shape, dtype.itemsize, f"{path} ({key})")
                arrays[key] = archive.read(key)
    except safe_io.DamagedFile as e:
        raise SoftmaxError(f"cannot read {path}: {e.reason}; expected {EXPECTED_SOURCE}") from None
    return arrays, {key: f"{path} ({key})" for key in arrays}


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
