"""The model file and the training checkpoint: saved atomically, loaded safely, validated.

Both are plain .npz archives that anyone can open with `np.load(path, allow_pickle=False)`: numeric
arrays plus one 0-d unicode string member holding JSON (`metadata` in a model file, `state` in a
checkpoint). Files may come from anywhere, so loading never unpickles, checks every member's size
before reading it, validates everything, and turns every problem into one SoftmaxError line.
"""

from __future__ import annotations

import io
import json
import math
import os
import struct
import tempfile
import tokenize
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from . import __version__
from .errors import SoftmaxError

FORMAT_VERSION = 1
MAX_MEMBER_BYTES = 64 * 2**20     # MNIST's W is 31 KB; anything near this is a zip bomb, not a model
MAX_TOTAL_BYTES = 4 * MAX_MEMBER_BYTES  # a checkpoint holds a few weight-sized arrays

# What a damaged archive makes zipfile, gzip and numpy's .npy reader raise: bad offsets, CRC and zlib errors,
# short reads, "encrypted" flags (RuntimeError), unknown compression (NotImplementedError), headers
# that are not Python literals (SyntaxError, or TokenError from numpy's Python 2 header fallback) or
# are nested too deeply (RecursionError), or that claim more memory than there is (MemoryError).
# data.py reads the user's data files with the same readers and catches the same errors.
DAMAGED_FILE_ERRORS = (
    zipfile.BadZipFile, zlib.error, struct.error, EOFError, OSError, ValueError, LookupError,
    TypeError, RuntimeError, SyntaxError, tokenize.TokenError, OverflowError, MemoryError,
)


@dataclass(frozen=True, eq=False)  # eq=False: comparing numpy arrays with == has no single truth value
class SavedModel:
    """A trained model as read from its file: predictions are argmax(pixels / 255 @ W + b)."""

    W: np.ndarray   # float32 (n_features, n_classes)
    b: np.ndarray   # float32 (n_classes,)
    metadata: dict  # the file's JSON: settings, class_names, image_shape, history, ...

    @property
    def class_names(self) -> tuple[str, ...]:
        return tuple(self.metadata["class_names"])

    @property
    def image_shape(self) -> tuple[int, int]:
        height, width = self.metadata["image_shape"]
        return height, width


class _Invalid(Exception):
    """The file (or what is about to be saved) breaks the format; the message says how."""


class _NewerFormat(Exception):
    """The file declares a format version this softmax-cli does not know."""


@dataclass(frozen=True)
class _FileKind:
    name: str                                       # the JSON "kind" field
    title: str                                      # what messages call such a file
    document: str                                   # the member holding the JSON document
    arrays: frozenset[str] | None                   # the arrays it must hold exactly; None: any names
    build: Callable[[dict[str, np.ndarray], dict], object]  # validates arrays and document, returns the result
    remedy: str                                     # what to do when the file is unusable; {path} is filled in
    missing: str                                    # what to do when there is no file at path
    instead: str                                    # what to do when the other kind was given where this one is wanted


def save_model(path, W, b, metadata: dict) -> None:
    """Write W, b and metadata to path as a model file, replacing any old file atomically; returns None."""
    stamp = {"created": datetime.now(timezone.utc).isoformat(timespec="seconds"), "softmax_cli_version": __version__}
    with np.errstate(over="ignore"):  # values beyond float32's range become infinite and are refused in _save
        arrays = {"W": np.asarray(W, dtype=np.float32), "b": np.asarray(b, dtype=np.float32)}
    _save(path, MODEL, arrays, {**stamp, **metadata})


def load_model(path) -> SavedModel:
    """Return the model in the file at path, fully validated; any problem is one SoftmaxError line."""
    return _load(path, MODEL)


def save_checkpoint(path, arrays: dict[str, np.ndarray], state: dict) -> None:
    """Write training arrays and state to path as a checkpoint, replacing any old file atomically; returns None."""
    if CHECKPOINT.document in arrays:
        raise SoftmaxError(f"cannot save {CHECKPOINT.title} {path}: the array name {CHECKPOINT.document!r} is reserved")
    _save(path, CHECKPOINT, {name: np.asarray(array) for name, array in arrays.items()}, state)


def load_checkpoint(path) -> tuple[dict[str, np.ndarray], dict]:
    """Return the arrays (dtypes as saved) and the state in the checkpoint at path, fully validated."""
    return _load(path, CHECKPOINT)


def _save(path, kind: _FileKind, arrays: dict[str, np.ndarray], document: dict) -> None:
    """Validate what is to be saved exactly as loading would, then write it atomically."""
    try:
        _check_finite(arrays)
    except _Invalid as e:
        raise SoftmaxError(
            f"refusing to save {kind.title} {path}: {e}, so training diverged; try a smaller learning rate"
        ) from None
    try:
        text = json.dumps({**document, "kind": kind.name, "format_version": FORMAT_VERSION},
                          allow_nan=False, default=_plain_number)
    except (TypeError, ValueError) as e:
        raise SoftmaxError(f"cannot save {kind.title} {path}: its {kind.document} is not plain JSON ({e})") from None
    members = {**arrays, kind.document: np.array(text)}
    try:
        _check_members(kind, [(name, array.nbytes) for name, array in members.items()])
        kind.build(arrays, _parse_document(kind, members[kind.document]))
    except _Invalid as e:
        raise SoftmaxError(f"cannot save {kind.title} {path}: {_brief(e)}") from None

    def write_archive(temporary: Path) -> None:
        # Through an open file, so that the name stays as given: np.savez appends .npz to a name without it.
        with open(temporary, "wb") as file:
            np.savez(file, allow_pickle=False, **members)

    write_atomically(path, write_archive, f"save {kind.title}")


def _plain_number(value):
    """Return a numpy scalar as the Python number json can write (e.g. an np.float32 accuracy)."""
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def write_atomically(
    path, write: Callable[[Path], None], action: str, suffix: str = ".tmp", example_name: str = "model.npz"
) -> None:
    """Call write on a temporary file beside path, then rename it onto path; returns None.

    write(temporary) writes the whole content to the file of that name (its name ends in suffix). The file
    is flushed to disk, given the permissions of any new file, and renamed onto path, and the folder is
    flushed too: a failure or a crash at any moment leaves either the old file or the new one at path, never
    half of one. Any problem, and a path that is a folder (example_name is the file name the message
    suggests inside it) or lies in a missing folder, is one SoftmaxError line, "cannot {action} {path}: ...".
    """
    target = Path(path)
    folder = target.parent
    if target.is_dir():
        raise SoftmaxError(f"cannot {action} {path}: it is a folder; give a file name such as {target / example_name}")
    if not folder.is_dir():
        raise SoftmaxError(f"cannot {action} {path}: the folder {folder} does not exist; create it first")
    temporary = None
    try:
        handle, temporary = tempfile.mkstemp(dir=folder, prefix=f".{target.name}.", suffix=suffix)
        os.close(handle)  # write opens the file by name: Keras 3, for one, saves only to a name ending in .keras
        write(Path(temporary))
        with open(temporary, "rb+") as file:  # opened for writing: Windows cannot flush a read-only handle
            os.fsync(file.fileno())
        os.chmod(temporary, _new_file_mode())
        os.replace(temporary, target)
        _fsync_folder(folder)
    except OSError as e:
        raise SoftmaxError(f"cannot {action} {path}: {e.strerror or e}") from None
    finally:
        # Whatever stopped us (an error, Ctrl-C), never leave a half-written file behind; after the
        # rename the temporary name is already gone.
        if temporary is not None:
            Path(temporary).unlink(missing_ok=True)


def _new_file_mode() -> int:
    """Return the permissions open() gives a new file (0o666 less the umask); mkstemp's 0o600 would hide the model."""
    umask = os.umask(0o022)
    os.umask(umask)
    return 0o666 & ~umask


def _fsync_folder(folder: Path) -> None:
    """Flush the folder's entry for the renamed file to disk, so the rename survives a power cut."""
    if os.name != "posix":  # Windows cannot open a folder; NTFS journals the rename itself
        return
    handle = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(handle)
    finally:
        os.close(handle)


def _load(path, kind: _FileKind):
    """Return kind.build of the validated contents of the file at path."""
    try:
        members = _read_members(path, kind)
        document = _parse_document(kind, members.pop(kind.document))
        return kind.build(members, document)
    except _NewerFormat as e:
        raise SoftmaxError(
            f"{path} was written by a newer softmax-cli (format version {_brief(e)}; this one reads "
            f"up to {FORMAT_VERSION}): upgrade softmax-cli"
        ) from None
    except _Invalid as e:
        remedy = kind.remedy.format(path=path)
        raise SoftmaxError(f"{path} is not a valid {kind.title} ({_brief(e)}): {remedy}") from None


def _brief(reason: Exception, limit: int = 200) -> str:
    """Return an error's text on one line, cut to limit characters."""
    text = " ".join(str(reason).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _read_members(path, kind: _FileKind) -> dict[str, np.ndarray]:
    """Return every array in the .npz at path by name, after checking names and sizes and before trusting any."""
    try:
        archive = zipfile.ZipFile(path)
    except FileNotFoundError:
        raise SoftmaxError(f"{path} does not exist: {kind.missing.format(path=path)}") from None
    except IsADirectoryError:
        raise SoftmaxError(f"{path} is a folder, not a {kind.title}: give the path of the .npz file") from None
    except OSError as e:
        raise SoftmaxError(f"cannot read {path}: {e.strerror or e}") from None
    except DAMAGED_FILE_ERRORS as e:
        raise _Invalid(f"not an .npz archive: {e}") from None
    with archive:
        try:
            entries = archive.infolist()
            names = [entry.filename.removesuffix(".npy") for entry in entries]
            other = CHECKPOINT if kind is MODEL else MODEL
            if other.document in names and kind.document not in names:
                raise SoftmaxError(f"{path} is a {other.title}, not a {kind.title}: {kind.instead}")
            _check_members(kind, [(name, entry.file_size) for name, entry in zip(names, entries)])
            if any(not entry.filename.endswith(".npy") for entry in entries):
                raise _Invalid("it holds members that are not .npy arrays")
            return {name: _parse_npy(archive.read(entry)) for name, entry in zip(names, entries)}
        except DAMAGED_FILE_ERRORS as e:
            raise _Invalid(f"damaged archive: {e}") from None


def _check_members(kind: _FileKind, sizes: list[tuple[str, int]]) -> None:
    """Raise _Invalid unless the member names and their sizes are what a file of this kind holds."""
    names = [name for name, _ in sizes]
    if kind.document not in names:
        raise _Invalid(f"it holds {', '.join(names) or 'nothing'} but no {kind.document}")
    if len(set(names)) != len(names):
        raise _Invalid("it holds the same member name twice")
    if kind.arrays is not None and set(names) != kind.arrays | {kind.document}:
        expected = ", ".join(sorted(kind.arrays | {kind.document}))
        raise _Invalid(f"it holds {', '.join(names)}; expected exactly {expected}")
    for name, size in sizes:
        if not name.isidentifier():
            raise _Invalid(f"member name {name!r} is not a plain identifier")
        if size > MAX_MEMBER_BYTES:
            raise _Invalid(f"{name} would take {size} bytes, more than the {MAX_MEMBER_BYTES} allowed")
    if sum(size for _, size in sizes) > MAX_TOTAL_BYTES:
        raise _Invalid(f"its members would take more than the {MAX_TOTAL_BYTES} bytes allowed")


def _parse_npy(data: bytes) -> np.ndarray:
    """Return the array in one .npy member, refusing pickled objects and headers that disagree with the data."""
    stream = io.BytesIO(data)
    version = np.lib.format.read_magic(stream)
    if version == (1, 0):
        shape, fortran_order, dtype = np.lib.format.read_array_header_1_0(stream)
    elif version == (2, 0):
        shape, fortran_order, dtype = np.lib.format.read_array_header_2_0(stream)
    else:
        raise _Invalid(f"unsupported .npy version {version}")
    if dtype.hasobject or dtype.kind not in "biufU":
        raise _Invalid(f"it holds an array of {dtype} (only numbers and text are read, never pickled objects)")
    if any(n < 0 for n in shape) or math.prod(shape) * dtype.itemsize != len(data) - stream.tell():
        raise _Invalid(f"an array's data does not match its header (shape {shape}, {dtype})")
    stream.seek(0)
    return np.lib.format.read_array(stream, allow_pickle=False)


def _parse_document(kind: _FileKind, array: np.ndarray) -> dict:
    """Return the JSON object held in the document member, after checking its kind and format version."""
    if array.dtype.kind != "U" or array.ndim != 0:
        raise _Invalid(f"{kind.document} is a {array.dtype} array of shape {array.shape}, not a JSON string")
    try:
        document = json.loads(str(array[()]), parse_constant=_refuse_constant)
    except (ValueError, RecursionError) as e:
        raise _Invalid(f"{kind.document} is not JSON: {e}") from None
    if not isinstance(document, dict):
        raise _Invalid(f"{kind.document} is a JSON {type(document).__name__}, not an object")
    version = document.get("format_version")
    if not _is_int(version) or version < 1:
        raise _Invalid(f"{kind.document} has no valid format_version (got {version!r})")
    if version > FORMAT_VERSION:
        raise _NewerFormat(version)
    if document.get("kind") != kind.name:
        raise _Invalid(f"{kind.document} says kind {document.get('kind')!r}, expected {kind.name!r}")
    return document


def _refuse_constant(name: str):
    raise ValueError(f"{name} is not allowed")


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


# The metadata every model file carries, with what each must be.
_METADATA_FIELDS = {
    "settings": (lambda v: isinstance(v, dict), "an object"),
    "class_names": (lambda v: isinstance(v, list) and all(isinstance(n, str) for n in v), "a list of strings"),
    "image_shape": (lambda v: isinstance(v, list) and len(v) == 2 and all(_is_int(n) and n > 0 for n in v),
                    "[height, width] in pixels"),
    "dataset": (lambda v: isinstance(v, str), "a string"),
    "test_accuracy": (lambda v: v is None or (_is_number(v) and 0 <= v <= 1), "a number from 0 to 1, or null"),
    "train_seconds": (lambda v: _is_number(v) and v >= 0, "a number of seconds"),
    "history": (lambda v: isinstance(v, list) and all(isinstance(epoch, dict) for epoch in v),
                "a list of per-epoch objects"),
    "created": (lambda v: isinstance(v, str), "a string"),
    "softmax_cli_version": (lambda v: isinstance(v, str), "a string"),
}


def _saved_model(arrays: dict[str, np.ndarray], metadata: dict) -> SavedModel:
    """Return the SavedModel of valid model arrays and metadata, W and b as float32; raise _Invalid otherwise."""
    W, b = arrays["W"], arrays["b"]
    for name, array in (("W", W), ("b", b)):
        if array.dtype.kind != "f" or array.dtype.itemsize not in (4, 8):
            raise _Invalid(f"{name} has dtype {array.dtype}, expected float32 or float64")
    if W.ndim != 2 or W.shape[1] < 2:
        raise _Invalid(f"W has shape {W.shape}, expected (features, classes) with at least 2 classes")
    if b.shape != (W.shape[1],):
        raise _Invalid(f"b has shape {b.shape}, expected ({W.shape[1]},) to match W's {W.shape[1]} classes")
    with np.errstate(over="ignore"):  # float64 values beyond float32's range become infinite, refused next
        W, b = W.astype(np.float32), b.astype(np.float32)
    _check_finite({"W": W, "b": b})
    missing = [key for key in _METADATA_FIELDS if key not in metadata]
    if missing:
        raise _Invalid(f"metadata lacks {', '.join(missing)}")
    for key, (is_valid, expected) in _METADATA_FIELDS.items():
        if not is_valid(metadata[key]):
            raise _Invalid(f"metadata {key} must be {expected}, got {metadata[key]!r}")
    if len(metadata["class_names"]) != W.shape[1]:
        raise _Invalid(f"metadata names {len(metadata['class_names'])} classes but W has {W.shape[1]}")
    if math.prod(metadata["image_shape"]) != W.shape[0]:
        raise _Invalid(f"metadata image_shape {metadata['image_shape']} does not give W's {W.shape[0]} features")
    return SavedModel(W, b, metadata)


def _checkpoint(arrays: dict[str, np.ndarray], state: dict) -> tuple[dict[str, np.ndarray], dict]:
    """Return a checkpoint's arrays and state unchanged once its arrays are numeric and finite; else raise _Invalid."""
    for name, array in arrays.items():
        if array.dtype.kind not in "biuf":
            raise _Invalid(f"{name} has dtype {array.dtype}, expected numbers")
    _check_finite(arrays)
    return arrays, state


def _check_finite(arrays: dict[str, np.ndarray]) -> None:
    """Return None if no float array holds NaN or infinity; raise _Invalid naming the first that does."""
    for name, array in arrays.items():
        if array.dtype.kind == "f" and not np.isfinite(array).all():
            raise _Invalid(f"{name} holds NaN or infinite values")


MODEL = _FileKind(
    name="model",
    title="softmax-cli model file",
    document="metadata",
    arrays=frozenset({"W", "b"}),
    build=_saved_model,
    remedy="train one with `softmax train --model {path}`",
    missing="train one with `softmax train --model {path}`",
    instead="give the model file `softmax train` saves when it finishes; a checkpoint only resumes training",
)
CHECKPOINT = _FileKind(
    name="checkpoint",
    title="softmax-cli training checkpoint",
    document="state",
    arrays=None,
    build=_checkpoint,
    remedy="delete it to train from the start",
    missing="check the path of the checkpoint `softmax train` wrote",
    instead="give the checkpoint `softmax train` writes while it trains; a model file cannot resume training",
)
