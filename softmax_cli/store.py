"""The model file and the training checkpoint: saved atomically, loaded safely, validated.

Both are plain .npz archives that anyone can open with `np.load(path, allow_pickle=False)`: numeric
arrays plus one 0-d unicode string member holding JSON (`metadata` in a model file, `state` in a
checkpoint). Files may come from anywhere, so they are read only through safe_io's bounded .npz reader,
everything is validated against one schema each (METADATA_FIELDS for a model file, Checkpoint for a checkpoint),
when it is saved and when it is loaded, and every problem is one SoftmaxError line.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from . import __version__, safe_io
from .config import SETTINGS, TrainConfig
from .errors import SoftmaxError, one_line, shown
from .model import PIXEL_SCALE
from .safe_io import write_atomically

FORMAT_VERSION = 2  # 2: framing and preprocess are separate fields (1 called the framing preprocess)
MAX_CLASSES = 1000
# The size limits, computed once for save and load (a file saved is always one that loads): at most 16 million
# float32 weights (1024x1024-pixel images in 16 classes, 28x28 in 1,000; MNIST's W is 31 KB), an array being the
# weights with a bias a class beside them, and a member of the file that array with its .npy header.
MAX_WEIGHT_BYTES = 64 * 2**20
MAX_ARRAY_BYTES = MAX_WEIGHT_BYTES + 2**16
MAX_MEMBER_BYTES = MAX_ARRAY_BYTES + safe_io.NPY_HEADER_BYTES
MAX_TOTAL_BYTES = 2 * MAX_MEMBER_BYTES  # a model file: W, and b and its metadata, far smaller
# A checkpoint holds the weights, their velocity and the sums of the averaged steps, a block of weights each for
# up to this many epochs of early stopping's window (half the epochs run): 2.2 GB at the largest model, 4 MB for MNIST.
MAX_CHECKPOINT_BLOCKS = 32
MAX_CHECKPOINT_MEMBER_BYTES = MAX_CHECKPOINT_BLOCKS * MAX_ARRAY_BYTES + safe_io.NPY_HEADER_BYTES
MAX_CHECKPOINT_BYTES = MAX_CHECKPOINT_MEMBER_BYTES + 3 * MAX_MEMBER_BYTES
MAX_JSON_INT = 2**128  # the largest whole number a file holds: a random generator's 128-bit state
MAX_STEPS = 2**53      # a step count beyond this is not one a run can have made (float64 counts exactly to here)


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


@dataclass(eq=False)  # eq=False: comparing numpy arrays with == has no single truth value
class Checkpoint:
    """A training run stopped after an epoch: the state train.Trainer goes on from exactly, and the data it was
    trained on. The checkpoint file's one schema: every field is checked when it is saved and when it is loaded."""

    config: TrainConfig
    weights: np.ndarray            # float32 (classes, features + 1): the trainer's layout (train.py)
    velocity: np.ndarray           # float32, as weights: heavy-ball momentum
    sums: list[np.ndarray]         # float64, as weights: the summed weights of the averaged steps, a block each
    summed_steps: list[int]        # how many steps each block of sums holds
    step: int                      # steps made
    epoch: int                     # epochs made; history holds one record of each
    scale: float | None            # the feature scale of the data (model.feature_scale); None before any epoch
    rng: dict                      # the shuffling generator's state (numpy's bit_generator.state)
    history: list[dict]
    best_val_loss: float | None    # early stopping: the best validation loss so far, its epoch, that epoch's
    best_epoch: int | None         # model weights (as weights), and the epochs since
    best_weights: np.ndarray | None
    epochs_since_best: int
    dataset: str                   # the data set's name, as --dataset gives it
    training_data: str             # the fingerprint of the training set it was trained on


class _Invalid(Exception):
    """The file (or what is about to be saved) breaks the format; the message says how."""


class _CannotResume(_Invalid):
    """A sound checkpoint file whose run this version cannot go on with; the message says why."""


class _NewerFormat(Exception):
    """The file declares a format version this softmax-cli does not know."""


@dataclass(frozen=True)
class _FileKind:
    name: str                                       # the JSON "kind" field
    title: str                                      # what messages call such a file
    document: str                                   # the member holding the JSON document
    arrays: frozenset[str] | None                   # the arrays it must hold exactly; None: any names
    build: Callable[[dict[str, np.ndarray], dict, str], object]  # validates arrays, document (of the file the
    #                                                       string names), returns the result
    remedy: str                                     # what to do when the file is unusable (never names it)
    missing: str                                    # what to do when there is no file at path; {path} is filled in
    instead: str                                    # what to do when the other kind was given where this one is wanted
    max_member_bytes: int                           # the largest member, its .npy header included, saved or loaded
    max_total_bytes: int                            # all members together


def save_model(path, W, b, metadata: dict) -> None:
    """Write W, b and metadata to path as a model file, replacing any old file atomically; returns None.

    Optional fields that metadata leaves out (METADATA_FIELDS: framing, preprocess, scores, ...) get their defaults.
    """
    _save(path, MODEL, *_model_members(W, b, metadata))


def model_bytes(W, b, metadata: dict, name: str = "model.npz") -> bytes:
    """Return the bytes of the model file save_model would write (name says which in a message): what the drawing
    page downloads of a model it taught, with no file written."""
    members = _checked_members(name, MODEL, *_model_members(W, b, metadata))
    buffer = io.BytesIO()
    np.savez(buffer, **members)
    return buffer.getvalue()


def _model_members(W, b, metadata: dict) -> tuple[dict[str, np.ndarray], dict]:
    """Return a model's arrays and its document, the fields metadata leaves out given their defaults."""
    stamp = {"created": datetime.now(timezone.utc).isoformat(timespec="seconds"), "softmax_cli_version": __version__}
    stamp.update({key: default for key, (_, _, default) in METADATA_FIELDS.items() if default is not _REQUIRED})
    with np.errstate(over="ignore"):  # values beyond float32's range become infinite and are refused in _save
        arrays = {"W": np.asarray(W, dtype=np.float32), "b": np.asarray(b, dtype=np.float32)}
    return arrays, {**stamp, **metadata}


def load_model(path) -> SavedModel:
    """Return the model in the file at path, fully validated; any problem is one SoftmaxError line."""
    return _load(path, MODEL)


def model_from_bytes(data: bytes, name: str = "model.npz") -> SavedModel:
    """Return the model in the bytes of a model file (model_bytes'), fully validated as load_model validates."""
    return _load(name, MODEL, io.BytesIO(data))


def save_checkpoint(path, checkpoint: Checkpoint) -> None:
    """Write checkpoint to path, replacing any old file atomically; returns None."""
    arrays = {"weights": checkpoint.weights, "velocity": checkpoint.velocity,
              "sums": np.stack(checkpoint.sums) if checkpoint.sums else np.zeros((0, *checkpoint.weights.shape))}
    if checkpoint.best_weights is not None:
        arrays["best_weights"] = checkpoint.best_weights
    state = {"settings": checkpoint.config.to_dict(),
             **{name: getattr(checkpoint, name) for name in _CHECKPOINT_STATE}}
    _save(path, CHECKPOINT, arrays, state)


def load_checkpoint(path) -> Checkpoint:
    """Return the checkpoint at path, fully validated; any problem is one SoftmaxError line."""
    return _load(path, CHECKPOINT)


def _save(path, kind: _FileKind, arrays: dict[str, np.ndarray], document: dict) -> None:
    """Validate what is to be saved exactly as loading would, then write it atomically."""
    members = _checked_members(path, kind, arrays, document)

    def write_archive(temporary: Path) -> None:
        # Through an open file, so that the name stays as given: np.savez appends .npz to a name without it. No
        # allow_pickle: before NumPy 2.2 savez stores it as one more array (and the members pickle nothing anyway).
        with open(temporary, "wb") as file:
            np.savez(file, **members)

    write_atomically(path, write_archive, f"save {kind.title}")


def _checked_members(path, kind: _FileKind, arrays: dict[str, np.ndarray], document: dict) -> dict[str, np.ndarray]:
    """Return the members of a file of kind holding arrays and document, validated exactly as loading would."""
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
        _check_sizes(kind, members)
        kind.build(arrays, _parse_document(kind, members[kind.document]), path)
    except _Invalid as e:
        raise SoftmaxError(f"cannot save {kind.title} {path}: {one_line(e, 200)}") from None
    return members


def _plain_number(value):
    """Return a numpy scalar as the Python number json can write (e.g. an np.float32 accuracy)."""
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _load(path, kind: _FileKind, file=None):
    """Return kind.build of the validated contents of the file at path (or of the open binary file given)."""
    try:
        members = _read_members(path, kind, file)
        document = _parse_document(kind, members.pop(kind.document))
        return kind.build(members, document, path)
    except safe_io.NotFound:
        raise SoftmaxError(f"{kind.title} {path} does not exist: {kind.missing.format(path=path)}") from None
    except safe_io.DamagedFile as e:
        raise SoftmaxError(f"{path} is not a valid {kind.title} ({e.reason}): {kind.remedy}") from None
    except _CannotResume as e:
        raise SoftmaxError(f"the checkpoint {path} does not hold a training run this version can resume "
                           f"({one_line(e, 200)}): train without --resume to start again") from None
    except _NewerFormat as e:
        raise SoftmaxError(
            f"{path} was written by a newer softmax-cli (format version {one_line(e, 200)}; this one reads "
            f"up to {FORMAT_VERSION}): upgrade softmax-cli"
        ) from None
    except _Invalid as e:
        raise SoftmaxError(f"{path} is not a valid {kind.title} ({one_line(e, 200)}): {kind.remedy}") from None


def _read_members(path, kind: _FileKind, file=None) -> dict[str, np.ndarray]:
    """Return every array in the .npz at path (or in the open binary file given, which path names) by name, once
    its names are those of a file of this kind."""
    bounds = {"max_member_bytes": kind.max_member_bytes, "max_total_bytes": kind.max_total_bytes}
    with (safe_io.open_npz(path, kind.title, **bounds) if file is None
          else contextlib.nullcontext(safe_io.NpzArchive(file, path, kind.title, **bounds))) as archive:
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


def _check_sizes(kind: _FileKind, members: dict[str, np.ndarray]) -> None:
    """Raise _Invalid if what is about to be saved is larger than loading it again would allow (each member counted
    with the largest .npy header a load allows it)."""
    largest = kind.max_member_bytes - safe_io.NPY_HEADER_BYTES
    for name, array in members.items():
        if array.nbytes > largest:
            raise _Invalid(f"{name} would take {array.nbytes} bytes, more than the {largest} allowed")
    if sum(array.nbytes + safe_io.NPY_HEADER_BYTES for array in members.values()) > kind.max_total_bytes:
        raise _Invalid(f"its members would take more than the {kind.max_total_bytes} bytes allowed")


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


def _is_split(value) -> bool:
    """Return whether value is null or the split a table with no test part was given (see data.dataset.make_table)."""
    return value is None or (isinstance(value, dict) and set(value) == {"seed", "test_fraction", "rows", "fingerprint"}
                             and _is_int(value["seed"]) and _is_finite(value["test_fraction"], 0, 1)
                             and _is_int(value["rows"]) and _is_text(value["fingerprint"], 64))


def _is_added(value) -> bool:
    """Return whether value is null or what `train --add` recorded: its examples' count per class, their fingerprint
    and the weight each had (see data.examples.Examples.summary)."""
    return value is None or (
        isinstance(value, dict) and set(value) == {"count", "fingerprint", "weight"}
        and isinstance(value["count"], dict) and all(map(is_class_name, value["count"]))
        and all(_is_int(n) and n >= 0 for n in value["count"].values())
        and _is_text(value["fingerprint"], 64) and _is_finite(value["weight"], 0) and value["weight"] > 0)


METADATA_FIELDS = {
    # name: (is valid, what it must be, its meaning in a format-1 file that lacks it)
    "settings": (_is_settings, "an object of settings", _REQUIRED),
    "class_names": (lambda v: isinstance(v, list) and 2 <= len(v) <= MAX_CLASSES and all(map(is_class_name, v)),
                    f"a list of 2 to {MAX_CLASSES} printable strings without $", _REQUIRED),
    "image_shape": (lambda v: isinstance(v, list) and len(v) == 2 and all(_is_int(n) and n > 0 for n in v),
                    "[height, width] in pixels", _REQUIRED),
    "dataset": (lambda v: _is_text(v, 100), "a data set's name", _REQUIRED),
    "framing": (lambda v: v in _framings(), "how predict frames an image (mnist or fill)", "mnist"),
    "preprocess": (lambda v: v in SETTINGS["preprocess"].choices, SETTINGS["preprocess"].describe(), "none"),
    "training_data": (lambda v: v is None or _is_text(v, 64), "a fingerprint of the training set, or null", None),
    "data_path": (lambda v: v is None or _is_text(v, 4096), "the local data's path, or null", None),
    "test_accuracy": (lambda v: v is None or _is_finite(v, 0, 1), "a number from 0 to 1, or null", None),
    "test_loss": (lambda v: v is None or _is_finite(v, 0), "a number of at least 0, or null", None),
    "train_seconds": (lambda v: _is_finite(v, 0), "a number of seconds", _REQUIRED),
    "stopped_early": (lambda v: isinstance(v, bool), "true or false", False),
    "best_epoch": (lambda v: v is None or (_is_int(v) and v >= 1), "an epoch number, or null", None),
    "history": (lambda v: isinstance(v, list) and all(map(_is_epoch, v)),
                "a list of epochs, each its number and finite loss and accuracy figures", _REQUIRED),
    "feature_names": (lambda v: v is None or (isinstance(v, list) and 1 <= len(v) and all(_is_text(n) for n in v)),
                      "a table's feature names (a list of printable strings), or null for images", None),
    "split": (_is_split, "null, or how the tool split the data: {seed, test_fraction, rows, fingerprint}", None),
    "added": (_is_added, "null, or the examples train --add added: {count, fingerprint, weight}", None),
    "created": (lambda v: _is_text(v, 40), "a date", _REQUIRED),
    "softmax_cli_version": (lambda v: _is_text(v, 40), "a version", _REQUIRED),
}


def model_metadata(config, dataset, result, test_loss: float, test_accuracy: float, added: dict | None = None) -> dict:
    """Return the metadata of a model trained with config (a TrainConfig) on dataset, with its TrainResult and scores;
    added is what examples were added to dataset's training set (data.examples.Examples.summary), if any."""
    return {
        "settings": config.to_dict(),
        "class_names": list(dataset.class_names),
        "image_shape": list(dataset.image_shape),
        "dataset": dataset.name,
        "framing": dataset.image_convention(),  # how predict frames a person's image for this model
        "preprocess": config.preprocess,        # what predict, evaluate and the estimator do to an image first
        "training_data": dataset.fingerprint(),
        "data_path": dataset.path,              # where evaluate finds the data again, while it is the same data
        "test_accuracy": test_accuracy,
        "test_loss": test_loss,
        "train_seconds": result.train_seconds,
        "stopped_early": result.stopped_early,
        "best_epoch": getattr(result, "best_epoch", None),
        "history": result.history,
        "feature_names": list(dataset.feature_names) if getattr(dataset, "feature_names", None) else None,
        "split": getattr(dataset, "split", None),
        "added": added,
    }


FIELDS_ADDED_IN_FORMAT_2 = ("data_path", "added")  # a format-2 file saved before them is read with their defaults


def _upgraded(metadata: dict) -> dict:
    """Return older metadata in today's terms: format 1's "preprocess" was the framing, and newer fields take
    defaults."""
    if metadata.get("format_version") != 1:
        return {**{key: METADATA_FIELDS[key][2] for key in FIELDS_ADDED_IN_FORMAT_2}, **metadata}
    metadata = dict(metadata)
    if metadata.get("preprocess") in _framings():
        metadata["framing"] = metadata.pop("preprocess")
    for key, (_, _, old_meaning) in METADATA_FIELDS.items():
        if key not in metadata and old_meaning is not _REQUIRED:
            metadata[key] = old_meaning
    return metadata


def _saved_model(arrays: dict[str, np.ndarray], metadata: dict, path) -> SavedModel:
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
    if metadata["feature_names"] is not None and len(metadata["feature_names"]) != W.shape[0]:
        raise _Invalid(f"metadata names {len(metadata['feature_names'])} features but W has {W.shape[0]}")
    if metadata["preprocess"] == "deskew" and metadata["framing"] != "mnist":
        raise _Invalid("metadata asks to deskew images that are not framed as MNIST's")
    return SavedModel(W, b, metadata)


# The checkpoint's JSON state beside "settings": the Checkpoint fields that are not arrays.
_CHECKPOINT_STATE = ("summed_steps", "step", "epoch", "scale", "rng", "history", "best_val_loss", "best_epoch",
                     "epochs_since_best", "dataset", "training_data")


def _checkpoint(arrays: dict[str, np.ndarray], state: dict, path) -> Checkpoint:
    """Return the Checkpoint of a checkpoint file's arrays and state; raise _Invalid (a damaged file) or
    _CannotResume (a run that cannot go on) otherwise."""
    for name, array in arrays.items():
        if array.dtype.kind not in "biuf":
            raise _Invalid(f"{name} has dtype {array.dtype}, expected numbers")
    _check_finite(arrays)
    if not isinstance(state.get("settings"), dict):
        raise _CannotResume(f"its settings are {shown(state.get('settings'), 60)}")
    config = TrainConfig.from_dict(state["settings"], f"the checkpoint {path}")
    try:
        return _checked_checkpoint(config, arrays, state)
    except (LookupError, TypeError, ValueError, OverflowError) as e:
        raise _CannotResume(str(e)) from None


def _checked_checkpoint(config: TrainConfig, arrays: dict[str, np.ndarray], state: dict) -> Checkpoint:
    """Return the Checkpoint of arrays and state (the file's, settings read as config); raise ValueError or
    LookupError, naming what is wrong, unless every field is one a run can have."""
    optional = {"best_weights"} if state["best_epoch"] is not None else set()
    if set(arrays) != {"weights", "velocity", "sums"} | optional:
        raise ValueError(f"it holds the arrays {', '.join(sorted(arrays))}")
    shape = arrays["weights"].shape
    if len(shape) != 2 or not 2 <= shape[0] <= MAX_CLASSES or shape[1] < 2:
        raise ValueError(f"weights has shape {shape}")
    for name in ("velocity", *optional):
        if arrays[name].shape != shape:
            raise ValueError(f"{name} has shape {arrays[name].shape}, not that of the weights {shape}")
    epoch = _count(state["epoch"], "epoch", config.epochs)
    step = _count(state["step"], "step", MAX_STEPS)
    summed_steps = state["summed_steps"]
    if not (isinstance(summed_steps, list) and len(summed_steps) <= epoch):
        raise ValueError(f"summed_steps is {shown(summed_steps, 60)}")
    summed_steps = [_count(n, "summed_steps", step, low=1) for n in summed_steps]
    if arrays["sums"].shape != (len(summed_steps), *shape):
        raise ValueError(f"sums has shape {arrays['sums'].shape}, not {len(summed_steps)} of {shape}")
    scale = state["scale"]
    if not (scale in (PIXEL_SCALE, 1.0) and type(scale) is float or scale is None and step == 0):
        raise ValueError(f"scale is {scale!r}, not {PIXEL_SCALE!r} (pixels) or 1.0")
    best_val_loss = state["best_val_loss"]
    if not (best_val_loss is None or type(best_val_loss) is float and math.isfinite(best_val_loss)):
        raise ValueError(f"best_val_loss is {best_val_loss!r}")
    best_epoch = state["best_epoch"]
    if best_epoch is not None:
        best_epoch = _count(best_epoch, "best_epoch", epoch, low=1)
    history = state["history"]
    if not (METADATA_FIELDS["history"][0](history) and [stats["epoch"] for stats in history] == list(range(1, epoch + 1))
            and all("seconds" in stats for stats in history)):
        raise ValueError(f"its history is {shown(history, 60)}, not the {epoch} epochs training records")
    np.random.default_rng().bit_generator.state = state["rng"]  # ValueError or TypeError unless a PCG64's state
    dataset, training_data = state["dataset"], state["training_data"]
    if not (isinstance(dataset, str) and isinstance(training_data, str)):
        raise ValueError(f"its dataset {shown(dataset, 40)} and training_data {shown(training_data, 70)} do not say "
                         "what data it was trained on")
    return Checkpoint(
        config, arrays["weights"].astype(np.float32), arrays["velocity"].astype(np.float32),
        list(arrays["sums"].astype(np.float64)), summed_steps, step, epoch, scale, state["rng"],
        [dict(stats) for stats in history], best_val_loss, best_epoch,
        arrays["best_weights"].astype(np.float32) if optional else None,
        _count(state["epochs_since_best"], "epochs_since_best", epoch), dataset, training_data)


def _count(count, name: str, high: int, low: int = 0) -> int:
    """Return count if it is a whole number from low to high (not a bool); raise ValueError naming it if not."""
    if type(count) is not int or not low <= count <= high:
        raise ValueError(f"{name} is {shown(count, 60)}, not a count from {low} to {high}")
    return count


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
    max_member_bytes=MAX_MEMBER_BYTES,
    max_total_bytes=MAX_TOTAL_BYTES,
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
    max_member_bytes=MAX_CHECKPOINT_MEMBER_BYTES,
    max_total_bytes=MAX_CHECKPOINT_BYTES,
)
