"""A saved model in other frameworks' formats, so it can be served where softmax-cli is not installed.

Importing this module is cheap: TensorFlow loads only inside the exporter that needs it, through
import_keras (which data/sources.py's downloads use too), and the destination is checked before that, so a
wrong file name fails at once rather than after seconds.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import SoftmaxError

if TYPE_CHECKING:
    from .store import SavedModel


@dataclass(frozen=True)
class ExportFormat:
    """One format a model can be exported to."""

    suffix: str                                     # what the file name must end in
    write: Callable[[SavedModel, Path], None]       # writes the model to a path ending in suffix
    # The preprocessing (SavedModel.preprocess) the format can carry exactly, and why it cannot carry the others:
    # an export must never give probabilities that differ from ours.
    carries: tuple[str, ...] = ("none",)
    why_not: str = ""
    is_export: Callable[[Path], bool] | None = None  # whether an existing file is such an export (may be replaced)


def export_model(saved: SavedModel, path, format_name: str = "keras", reads=()) -> None:
    """Write saved to path in the named format, replacing any old export atomically; returns None.

    reads are the files the command reads (the model file): path is never one of them, nor an existing file
    that is not an export of this format. Every check is made before TensorFlow loads.
    """
    if format_name not in FORMATS:
        raise SoftmaxError(f"unknown export format {format_name!r}: choose one of {', '.join(FORMATS)}")
    export_format = FORMATS[format_name]
    if saved.preprocess not in export_format.carries:
        raise SoftmaxError(f"cannot export a model with preprocess {saved.preprocess} to {format_name}: "
                           f"{export_format.why_not}")
    target = Path(path)
    if not target.name.endswith(export_format.suffix):
        raise SoftmaxError(
            f"cannot export to {path}: a {format_name} model file's name must end in {export_format.suffix}, "
            f"such as {target.with_suffix(export_format.suffix)}"
        )
    # Imported here: safe_io loads NumPy, which `softmax --help` (importing this module for --format's choices)
    # does not need.
    from .safe_io import check_destination, write_atomically

    check_destination(target, f"{format_name} model file", reads=reads, is_kind=export_format.is_export)
    write_atomically(target, lambda temporary: export_format.write(saved, temporary), "export to",
                     suffix=export_format.suffix, example_name=f"model{export_format.suffix}")


DISTRIBUTION = "softmax-regression-cli"  # the name softmax-cli has on the package index (pyproject.toml)


def install_hint(extra: str) -> str:
    """Return the command that installs an extra of pyproject.toml (keras, onnx), for a message to end with."""
    return f"pip install '{DISTRIBUTION}[{extra}]'"


def import_keras():
    """Return the keras module, imported so that TensorFlow's start-up log lines do not bury the command's messages.

    Everything that uses Keras (this module's exporters, data/sources.py's downloads) imports it through here. Keras
    is the [keras] extra: where it is missing, the ImportError says what to install.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # 3: not even the "failed call to cuInit" of a CPU machine
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
    try:
        with native_stderr_silenced():
            import keras
            import tensorflow  # noqa: F401  (keras loads it lazily; its C++ start-up logs come with the import)
    except ImportError as e:
        raise ImportError(f"Keras is not installed: {install_hint('keras')}") from None
    return keras


@contextlib.contextmanager
def native_stderr_silenced():
    """Send what C and C++ code write to file descriptor 2 to /dev/null while inside; Python's stderr is kept.

    TensorFlow's native start-up lines (absl's InitializeLog warning, CUDA probing) ignore TF_CPP_MIN_LOG_LEVEL.
    """
    sys.stderr.flush()
    try:
        saved = os.dup(2)
    except OSError:  # no stderr at all: nothing to keep quiet
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def keras_model(saved: SavedModel):
    """Return a Keras model whose probabilities are softmax-cli's, taking the same input as the model file's W.

    Its input is what every form of the model takes (model.features): one row per image of its pixels / 255,
    flattened row by row, `pixels.reshape(len(pixels), -1) / 255`, the Keras tutorials' habit; then one Dense
    softmax layer holding W and b.
    """
    keras = import_keras()
    n_features, n_classes = saved.W.shape
    model = keras.Sequential(
        [
            keras.Input(shape=(n_features,), name="pixels_0_to_1"),
            keras.layers.Dense(n_classes, activation="softmax", name="probabilities"),
        ],
        name="softmax_regression",
    )
    model.get_layer("probabilities").set_weights([saved.W, saved.b])
    return model


def _write_keras(saved: SavedModel, path: Path) -> None:
    try:
        model = keras_model(saved)
    except ImportError as e:
        raise SoftmaxError(f"cannot export to Keras: {e}") from None
    model.save(path)


def _is_keras_file(path: Path) -> bool:
    """Return whether path is a .keras file: a zip archive holding Keras' config.json and metadata.json."""
    from .safe_io import zip_member_names

    return {"config.json", "metadata.json"} <= set(zip_member_names(path) or ())


FORMATS = {"keras": ExportFormat(
    suffix=".keras", write=_write_keras, is_export=_is_keras_file,
    why_not="deskewing shears each image by its own moments, which no standard Keras layer does; "
            "export a model trained with preprocess none, or deskew the images before the Keras model sees them",
)}

