"""A saved model in other frameworks' formats, so it can be served where softmax-cli is not installed.

Two formats: a Keras file (.keras, the [keras] extra: TensorFlow) and an ONNX file (.onnx, the [onnx] extra: the
onnx package alone), which onnxruntime runs, in the browser too (onnxruntime-web), and from other languages.

Importing this module is cheap: TensorFlow loads only inside the exporter that needs it, through
import_keras (which data/sources.py's downloads use too), and the destination is checked before that, so a
wrong file name fails at once rather than after seconds.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from . import install_hint
from .errors import SoftmaxError

if TYPE_CHECKING:
    from .store import SavedModel


@dataclass(frozen=True)
class ExportFormat:
    """One format a model can be exported to."""

    title: str                                      # its name in messages: "a model file in {title} format"
    suffix: str                                     # what the file name must end in
    write: Callable[[SavedModel, Path], None]       # writes the model to a path ending in suffix
    # The preprocessing (SavedModel.preprocess) the format can carry exactly, and why it cannot carry the others:
    # an export must never give probabilities that differ from ours.
    carries: tuple[str, ...] = ("none",)
    why_not: str = ""
    is_export: Callable[[Path], bool] | None = None  # whether an existing file is such an export (may be replaced)


def format_of(path) -> str:
    """Return the name of the format whose file names end as path's does (model.onnx: onnx)."""
    for name, export_format in FORMATS.items():
        if Path(path).name.endswith(export_format.suffix):
            return name
    suffixes = ", ".join(export_format.suffix for export_format in FORMATS.values())
    raise SoftmaxError(f"cannot tell the export format of {path}: end its name in {suffixes}, or choose a format")


def export_model(saved: SavedModel, path, format_name: str | None = None, reads=()) -> None:
    """Write saved to path in the named format (None: the one path's suffix names), replacing any old export
    atomically; returns None.

    reads are the files the command reads (the model file): path is never one of them, nor an existing file
    that is not an export of this format. Every check is made before TensorFlow loads.
    """
    if format_name is None:
        format_name = format_of(path)
    if format_name not in FORMATS:
        raise SoftmaxError(f"unknown export format {format_name!r}: choose one of {', '.join(FORMATS)}")
    export_format = FORMATS[format_name]
    if saved.preprocess not in export_format.carries:
        raise SoftmaxError(f"cannot export a model with preprocess {saved.preprocess} to {format_name}: "
                           f"{export_format.why_not}")
    target = Path(path)
    if not target.name.endswith(export_format.suffix):
        raise SoftmaxError(
            f"cannot export to {path}: the name of a model file in {export_format.title} format must end in "
            f"{export_format.suffix}, such as {target.with_suffix(export_format.suffix)}"
        )
    # Imported here: safe_io loads NumPy, which `softmax --help` (importing this module for --format's choices)
    # does not need.
    from .safe_io import check_destination, write_atomically

    check_destination(target, f"model file in {export_format.title} format", reads=reads, is_kind=export_format.is_export)
    write_atomically(target, lambda temporary: export_format.write(saved, temporary), "export to",
                     suffix=export_format.suffix, example_name=f"model{export_format.suffix}")


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


ONNX_OPSET = 13           # Softmax over one axis (before 13 it flattened the trailing axes); onnxruntime 1.8 and later
ONNX_IR_VERSION = 7       # the file format that opset 13 came with: read by every onnxruntime that runs opset 13
ONNX_PRODUCER = "softmax-cli"


def onnx_model(saved: SavedModel):
    """Return an ONNX model (onnx.ModelProto) whose probabilities are softmax-cli's, from the input keras_model takes.

    Two nodes: Gemm (pixels_0_to_1 @ W + b) and Softmax over the classes. The input "pixels_0_to_1" is float32,
    (images, features), each image's pixels / 255 flattened row by row; the output is "probabilities", float32,
    (images, classes). The class names and image shape are in the model's metadata_props.
    """
    try:
        import onnx
        from onnx import TensorProto, helper, numpy_helper
    except ImportError:
        raise SoftmaxError(f"cannot export to ONNX: the onnx package is not installed: {install_hint('onnx')}") \
            from None
    import numpy as np

    n_features, n_classes = saved.W.shape
    graph = helper.make_graph(
        [helper.make_node("Gemm", ["pixels_0_to_1", "W", "b"], ["logits"], name="logits"),
         helper.make_node("Softmax", ["logits"], ["probabilities"], name="softmax", axis=1)],
        "softmax_regression",
        [helper.make_tensor_value_info("pixels_0_to_1", TensorProto.FLOAT, ["images", n_features])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["images", n_classes])],
        initializer=[numpy_helper.from_array(np.asarray(saved.W, np.float32), "W"),
                     numpy_helper.from_array(np.asarray(saved.b, np.float32), "b")],
    )
    model = helper.make_model(graph, producer_name=ONNX_PRODUCER, opset_imports=[helper.make_opsetid("", ONNX_OPSET)])
    model.ir_version = ONNX_IR_VERSION
    helper.set_model_props(model, {"class_names": json.dumps(list(saved.class_names)),
                                   "image_shape": json.dumps(list(saved.image_shape))})
    onnx.checker.check_model(model, full_check=True)
    return model


def _write_onnx(saved: SavedModel, path: Path) -> None:
    path.write_bytes(onnx_model(saved).SerializeToString())


def _is_onnx_export(path: Path) -> bool:
    """Return whether path is an ONNX file softmax-cli wrote: its first fields, ir_version (field 1) and
    producer_name (field 2), as onnx_model writes them."""
    producer = ONNX_PRODUCER.encode()
    try:
        with open(path, "rb") as file:
            head = file.read(2 + 2 + len(producer))
    except OSError:
        return False
    return head == bytes([0x08, ONNX_IR_VERSION, 0x12, len(producer)]) + producer


DESKEW_NOT_A_LAYER = ("deskewing shears each image by its own moments, which no standard {layer} does; export a model "
                      "trained with preprocess none, or deskew the images before the {model} sees them")

FORMATS = {
    "keras": ExportFormat(title="Keras", suffix=".keras", write=_write_keras, is_export=_is_keras_file,
                          why_not=DESKEW_NOT_A_LAYER.format(layer="Keras layer", model="Keras model")),
    "onnx": ExportFormat(title="ONNX", suffix=".onnx", write=_write_onnx, is_export=_is_onnx_export,
                         why_not=DESKEW_NOT_A_LAYER.format(layer="ONNX operator", model="ONNX model")),
}

