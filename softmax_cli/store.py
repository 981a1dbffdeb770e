"""The model file and the training checkpoint: saved atomically, loaded safely, validated.

Both are plain .npz archives that anyone can open with `np.load(path, allow_pickle=False)`: numeric
arrays plus one 0-d unicode string member holding JSON (`metadata` in a model file, `state` in a
checkpoint). Files may come from anywhere, so they are read only through safe_io's bounded .npz reader,
everything is validated against one schema (METADATA_FIELDS), and every problem is one SoftmaxError line.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from . import __version__, safe_io
from .config import PREPROCESSING
from .errors import SoftmaxError, one_line
from .safe_io import write_atomically

FORMAT_VERSION = 2  # 2: framing and preprocess are separate fields (1 called the framing preprocess)
MAX_CLASSES = 1000
MAX_MEMBER_BYTES = 64 * 2**20     # MNIST's W is 31 KB; anything near this is a zip bomb, not a model
MAX_TOTAL_BYTES = 4 * MAX_MEMBER_BYTES  # a checkpoint holds a few weight-sized arrays
MAX_JSON_INT = 2**128  # the largest whole number a file holds: a random generator's 128-bit state


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

    @property
    def framing(self) -> str:
        """How predict frames a person's image for this model: "mnist" or "fill" (images.CONVENTIONS)."""
        return self.metadata["framing"]

    @property
    def preprocess(self) -> str:
        """What is done to each framed image before it becomes features: "none" or "deskew" (preprocess.py)."""
        return self.metadata["preprocess"]

    @property
    def dataset(self) -> str:
        return self.metadata["dataset"]


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
    remedy: str                                     # what to do when the file is unusable (never names it)
    missing: str                                    # what to do when there is no file at path; {path} is filled in
    instead: str                                    # what to do when the other kind was given where this one is wanted


def save_model(path, W, b, metadata: dict) -> None:
    """Write W, b and metadata to path as a model file, replacing any old file atomically; returns None.

    Optional fields that metadata leaves out (METADATA_FIELDS: framing, preprocess, scores, ...) get their defaults.
    """
    stamp = {"created": datetime.now(timezone.utc).isoformat(timespec="seconds"), "softmax_cli_version": __version__}
    stamp.update({key: default for key, (_, _, default) in METADATA_FIELDS.items() if default is not _REQUIRED})
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
        _check_members(kind, list(members))
        _check_sizes(members)
        kind.build(arrays, _parse_document(kind, members[kind.document]))
    except _Invalid as e:
        raise SoftmaxError(f"cannot save {kind.title} {path}: {one_line(e, 200)}") from None

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


def _load(path, kind: _FileKind):
    """Return kind.build of the validated contents of the file at path."""
    try:
        members = _read_members(path, kind)
        document = _parse_document(kind, members.pop(kind.document))
        return kind.build(members, document)
    except safe_io.NotFound:
        raise SoftmaxError(f"{kind.title} {path} does not exist: {kind.missing.format(path=path)}") from None
    except safe_io.DamagedFile as e:
        raise SoftmaxError(f"{path} is not a valid {kind.title} ({e.reason}): {kind.remedy}") from None
    except _NewerFormat as e:
        raise SoftmaxError(
            f"{path} was written by a newer softmax-cli (format version {one_line(e, 200)}; this one reads "
            f"up to {FORMAT_VERSION}): upgrade softmax-cli"
        ) from None
    except _Invalid as e:
        raise SoftmaxError(f"{path} is not a valid {kind.title} ({one_line(e, 200)}): {kind.remedy}") from None


def _read_members(path, kind: _FileKind) -> dict[str, np.ndarray]:
    """Return every array in the .npz at path by name, once its names are those of a file of this kind."""
    with safe_io.open_npz(path, kind.title, max_member_bytes=MAX_MEMBER_BYTES,
                          max_total_bytes=MAX_TOTAL_BYTES) as archive:
        other = CHECKPOINT if kind is MODEL else MODEL
        if other.document in archive.names and kind.document not in archive.names:
            raise SoftmaxError(f"{path} is a {other.title}, not a {kind.title}: {kind.instead}")
        _check_members(kind, archive.names)
        return {name: archive.read(name) for name in archive.names}


def _check_members(kind: _FileKind, names: list[str]) -> None:
    """Raise _Invalid unless the member names are those of a file of this kind."""
    if kind.document not in names:
        raise _Invalid(f"it holds {', '.join(names) or 'nothing'} but no {kind.document}")
    if len(set(names)) != len(names):
        raise _Invalid("it holds the same member name twice")
    if kind.arrays is not None and set(names) != kind.arrays | {kind.document}:
        expected = ", ".join(sorted(kind.arrays | {kind.document}))
        raise _Invalid(f"it holds {', '.join(names)}; expected exactly {expected}")
    for name in names:
        if not name.isidentifier():
            raise _Invalid(f"member name {name!r} is not a plain identifier")


def _check_sizes(members: dict[str, np.ndarray]) -> None:
    """Raise _Invalid if what is about to be saved is larger than loading it again would allow."""
    for name, array in members.items():
        if array.nbytes > MAX_MEMBER_BYTES:
            raise _Invalid(f"{name} would take {array.nbytes} bytes, more than the {MAX_MEMBER_BYTES} allowed")
    if sum(array.nbytes for array in members.values()) > MAX_TOTAL_BYTES:
        raise _Invalid(f"its members would take more than the {MAX_TOTAL_BYTES} bytes allowed")


def is_model_file(path) -> bool:
    """Return whether path is a regular file holding a model file's members (so a model may replace it); cheap."""
    return set(safe_io.zip_member_names(path) or ()) == {f"{name}.npy" for name in MODEL.arrays | {MODEL.document}}


def is_checkpoint_file(path) -> bool:
    """Return whether path is a regular file holding a checkpoint's members (so a checkpoint may replace it); cheap."""
    names = safe_io.zip_member_names(path) or []
    return f"{CHECKPOINT.document}.npy" in names and all(name.endswith(".npy") for name in names)


def _parse_document(kind: _FileKind, array: np.ndarray) -> dict:
    """Return the JSON object held in the document member, after checking its kind and format version."""
    if array.dtype.kind != "U" or array.ndim != 0:
        raise _Invalid(f"{kind.document} is a {array.dtype} array of shape {array.shape}, not a JSON string")
    try:
        document = json.loads(str(array[()]), parse_constant=_refuse_constant, parse_int=_bounded_int)
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


def _bounded_int(text: str) -> int:
    """Return a JSON whole number, refusing one beyond MAX_JSON_INT, which no count or state in a file reaches."""
    number = int(text)
    if abs(number) > MAX_JSON_INT:
        raise _Invalid(f"it holds a whole number of {len(text.lstrip('-'))} digits, too large to mean anything")
    return number


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


# The model file's metadata: every field, what it must be, and what a file of format version 1 (which lacked the
# field) means by it. The one schema: train builds metadata with model_metadata, every load checks it here.
_HISTORY_KEYS = {"epoch", "loss", "accuracy", "val_loss", "val_accuracy", "seconds"}


def _is_text(value, longest: int = 200) -> bool:
    """Return whether value is a string that prints: UTF-8 (no lone surrogates), one line, not too long."""
    if not isinstance(value, str) or len(value) > longest or not value.isprintable():
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def is_class_name(value) -> bool:
    """Return whether value may name a class: printable UTF-8 text of 1 to 200 characters, without "$".

    "$" is refused because matplotlib reads text between two of them as mathematics, so a plot would show
    another name, or fail on a name such as "$\\foo$". data/ checks a data set's class names with this too.
    """
    return _is_text(value) and 0 < len(value) and "$" not in value


def _is_finite(value, low: float = -math.inf, high: float = math.inf) -> bool:
    return _is_number(value) and math.isfinite(value) and low <= value <= high


def _is_epoch(stats) -> bool:
    """Return whether stats is one epoch of training history: its number and finite figures, nothing else."""
    return (isinstance(stats, dict) and _is_int(stats.get("epoch")) and stats["epoch"] >= 1
            and set(stats) <= _HISTORY_KEYS
            and all(_is_finite(value) for key, value in stats.items() if key != "epoch"))


def _is_settings(value) -> bool:
    return isinstance(value, dict) and all(_is_text(key, 40) for key in value) and all(
        isinstance(v, (str, int, float)) and (not isinstance(v, float) or math.isfinite(v)) for v in value.values())


def _framings() -> tuple[str, ...]:
    from .images import CONVENTIONS  # the framings a person's image can be given: images.py is their one home

    return tuple(CONVENTIONS)


_REQUIRED = object()  # a field every format-1 file has too

METADATA_FIELDS = {
    # name: (is valid, what it must be, its meaning in a format-1 file that lacks it)
    "settings": (_is_settings, "an object of settings", _REQUIRED),
    "class_names": (lambda v: isinstance(v, list) and 2 <= len(v) <= MAX_CLASSES and all(map(is_class_name, v)),
                    f"a list of 2 to {MAX_CLASSES} printable strings without $", _REQUIRED),
    "image_shape": (lambda v: isinstance(v, list) and len(v) == 2 and all(_is_int(n) and n > 0 for n in v),
                    "[height, width] in pixels", _REQUIRED),
    "dataset": (lambda v: _is_text(v, 100), "a data set's name", _REQUIRED),
    "framing": (lambda v: v in _framings(), "how predict frames an image (mnist or fill)", "mnist"),
    "preprocess": (lambda v: v in PREPROCESSING, f"one of {', '.join(PREPROCESSING)}", "none"),
    "training_data": (lambda v: v is None or _is_text(v, 64), "a fingerprint of the training set, or null", None),
    "test_accuracy": (lambda v: v is None or _is_finite(v, 0, 1), "a number from 0 to 1, or null", None),
    "test_loss": (lambda v: v is None or _is_finite(v, 0), "a number of at least 0, or null", None),
    "train_seconds": (lambda v: _is_finite(v, 0), "a number of seconds", _REQUIRED),
    "stopped_early": (lambda v: isinstance(v, bool), "true or false", False),
    "best_epoch": (lambda v: v is None or (_is_int(v) and v >= 1), "an epoch number, or null", None),
    "history": (lambda v: isinstance(v, list) and all(map(_is_epoch, v)),
                "a list of epochs, each its number and finite loss and accuracy figures", _REQUIRED),
    "created": (lambda v: _is_text(v, 40), "a date", _REQUIRED),
    "softmax_cli_version": (lambda v: _is_text(v, 40), "a version", _REQUIRED),
}


def model_metadata(config, dataset, result, test_loss: float, test_accuracy: float) -> dict:
    """Return the metadata of a model trained with config (a TrainConfig) on dataset, with its TrainResult and scores."""
    return {
        "settings": config.to_dict(),
        "class_names": list(dataset.class_names),
        "image_shape": list(dataset.image_shape),
        "dataset": dataset.name,
        "framing": dataset.image_convention(),  # how predict frames a person's image for this model
        "preprocess": config.preprocess,        # what predict, evaluate and the estimator do to an image first
        "training_data": dataset.fingerprint(),
        "test_accuracy": test_accuracy,
        "test_loss": test_loss,
        "train_seconds": result.train_seconds,
        "stopped_early": result.stopped_early,
        "best_epoch": getattr(result, "best_epoch", None),
        "history": result.history,
    }


def _upgraded(metadata: dict) -> dict:
    """Return format-1 metadata in today's terms: its "preprocess" was the framing, and newer fields take defaults."""
    if metadata.get("format_version") != 1:
        return metadata
    metadata = dict(metadata)
    if metadata.get("preprocess") in _framings():
        metadata["framing"] = metadata.pop("preprocess")
    for key, (_, _, old_meaning) in METADATA_FIELDS.items():
        if key not in metadata and old_meaning is not _REQUIRED:
            metadata[key] = old_meaning
    return metadata


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
    metadata = _upgraded(metadata)
    missing = [key for key in METADATA_FIELDS if key not in metadata]
    if missing:
        raise _Invalid(f"metadata lacks {', '.join(missing)}")
    for key, (is_valid, expected, _) in METADATA_FIELDS.items():
        if not is_valid(metadata[key]):
            raise _Invalid(f"metadata {key} must be {expected}, got {one_line(repr(metadata[key]), 80)}")
    if len(metadata["class_names"]) != W.shape[1]:
        raise _Invalid(f"metadata names {len(metadata['class_names'])} classes but W has {W.shape[1]}")
    if math.prod(metadata["image_shape"]) != W.shape[0]:
        raise _Invalid(f"metadata image_shape {metadata['image_shape']} does not give W's {W.shape[0]} features")
    if metadata["preprocess"] == "deskew" and metadata["framing"] != "mnist":
        raise _Invalid("metadata asks to deskew images that are not framed as MNIST's")
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
    remedy="give a model file `softmax train` saved, or train one with `softmax train --model` and a new file name",
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
