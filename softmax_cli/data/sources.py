"""Where a data set's arrays come from: keras.datasets, scikit-learn's bundled digits, or a local .npz or IDX folder.

Each source gives the raw arrays, where each came from (for messages) and a description of the source; what the
arrays mean and whether they are the named data set is decided by the caller (data/__init__.py).
"""

from __future__ import annotations

import contextlib
import sys
import zipfile
from pathlib import Path

import numpy as np

from .. import safe_io
from ..errors import SoftmaxError
from . import cache
from .formats import EXPECTED_SOURCE, IDX_FILES, KEYS, read_idx_folder, read_npz

Arrays = dict[str, np.ndarray]


def download(name: str, title: str) -> tuple[Arrays, dict[str, str], str]:
    """Return a named data set's arrays: MNIST and Fashion-MNIST through keras.datasets, digits from scikit-learn."""
    if name == "digits":
        return _digits()
    from ..export import import_keras

    advice = "point {setting} at a local copy (a Keras .npz or a folder with the four IDX files)"
    try:
        keras_dataset = getattr(import_keras().datasets, name)
    except ImportError as e:
        raise SoftmaxError(f"cannot download {title}: {e}; or {advice}", setting="data") \
            from None
    try:
        # Keras reports download progress on stdout, which belongs to the command's own output.
        with contextlib.redirect_stdout(sys.stderr):
            (x_train, y_train), (x_test, y_test) = keras_dataset.load_data()
    except Exception as e:  # Keras raises a bare Exception("URL fetch failure ...") when offline
        reason = " ".join(str(e).split())
        raise SoftmaxError(f"could not download {title} through keras.datasets (no network? {reason}): {advice}",
                           setting="data") from None
    source = f"keras.datasets.{name}"
    return dict(zip(KEYS, (x_train, y_train, x_test, y_test))), {key: f"{source} ({key})" for key in KEYS}, source


def _digits() -> tuple[Arrays, dict[str, str], str]:
    """Return scikit-learn's bundled 8x8 digits, scaled to 0..255 and split 75/25 by class, the same every time."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    pixels = np.rint(digits.images * (255 / 16)).astype(np.uint8)  # the set's pixels run 0..16
    x_train, x_test, y_train, y_test = train_test_split(
        pixels, digits.target, test_size=0.25, random_state=0, stratify=digits.target
    )
    source = "sklearn.datasets.load_digits"
    return dict(zip(KEYS, (x_train, y_train, x_test, y_test))), {key: f"{source} ({key})" for key in KEYS}, source


def read_local(path: Path, name: str | None) -> tuple[Arrays, dict[str, str], str, str, str | None]:
    """Return the arrays in a local .npz or IDX folder (from the verified fast copy when there is one), where each
    came from, the source shown in messages, the name the data calls itself (its file's or folder's), and the
    cache key of its source (None when it is read directly, uncompressed)."""
    source = find_source(path, name)
    files = [source] if isinstance(source, Path) else list(source.values())
    shown = str(source if isinstance(source, Path) else path)
    own_name = path.resolve().stem if path.is_file() else path.resolve().name
    key = cache.source_key(files) if any(map(_is_compressed, files)) else None
    arrays = cache.read(key) if key is not None else None
    if arrays is not None:
        return arrays, {name: f"{shown} ({name})" for name in arrays}, shown, own_name, key
    arrays, where = read_npz(source) if isinstance(source, Path) else read_idx_folder(source)
    if key is not None:
        cache.write(key, arrays)
    return arrays, where, shown, own_name, key


def find_source(path: Path, name: str | None) -> Path | dict[str, Path]:
    """Return the .npz file to read at path, or the four IDX files of the folder at path."""
    if not path.exists():
        raise SoftmaxError(f"data path {path} does not exist: expected {EXPECTED_SOURCE}", setting="data")
    if not path.is_dir():
        return path
    npz_files = sorted(path.glob("*.npz"))
    idx_files = {}
    for key, stem in IDX_FILES.items():
        # Uncompressed first: it reads without a decompression pass.
        file = next((file for file in (path / stem, path / f"{stem}.gz") if file.is_file()), None)
        if file is not None:
            idx_files[key] = file
    complete = len(idx_files) == len(IDX_FILES)
    # Measured on MNIST: uncompressed IDX files load in 0.03 s; a compressed .npz in 0.14 s, gzipped IDX in 0.15 s.
    if complete and not any(file.suffix == ".gz" for file in idx_files.values()):
        return idx_files
    preferred = path / f"{name}.npz"
    if preferred in npz_files:
        return preferred
    if len(npz_files) == 1:
        return npz_files[0]
    if len(npz_files) > 1:
        names = ", ".join(file.name for file in npz_files)
        raise SoftmaxError(f"data folder {path} holds several .npz files ({names}): point {{setting}} at the one "
                           "to use", setting="data")
    if complete:
        return idx_files
    if idx_files:
        missing = ", ".join(stem for key, stem in IDX_FILES.items() if key not in idx_files)
        raise SoftmaxError(f"data folder {path} lacks {missing} (or .gz): all four IDX files are needed")
    raise SoftmaxError(f"data folder {path} holds no .npz and no IDX files: expected {EXPECTED_SOURCE}")


def _is_compressed(file: Path) -> bool:
    """Return whether reading file means decompressing it, the one case in which a cached copy loads faster."""
    if file.suffix == ".gz":
        return True
    try:
        with safe_io.open_regular(file, "the data file") as stream:
            return any(member.compress_type != zipfile.ZIP_STORED for member in zipfile.ZipFile(stream).infolist())
    except (SoftmaxError, OSError, zipfile.BadZipFile, ValueError, EOFError):
        return False  # not a sound zip: reading it says what is wrong
