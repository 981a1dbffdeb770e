"""A saved model in other frameworks' formats, so it can be served where softmax-cli is not installed.

Importing this module is cheap: TensorFlow loads only inside the exporter that needs it, and the
destination is checked before that, so a wrong file name fails at once rather than after seconds.
"""

from __future__ import annotations

import os
import tempfile
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


def export_model(saved: SavedModel, path, format_name: str = "keras") -> None:
    """Write saved to path in the named format, replacing any old file atomically; returns None."""
    if format_name not in FORMATS:
        raise SoftmaxError(f"unknown export format {format_name!r}: choose one of {', '.join(FORMATS)}")
    export_format = FORMATS[format_name]
    target = Path(path)
    if not target.name.endswith(export_format.suffix):
        raise SoftmaxError(
            f"cannot export to {path}: a {format_name} model file's name must end in {export_format.suffix}, "
            f"such as {target.with_suffix(export_format.suffix)}"
        )
    _write_atomically(target, export_format.suffix, lambda temporary: export_format.write(saved, temporary))


def keras_model(saved: SavedModel):
    """Return a Keras model whose probabilities for raw pixels 0..255 are softmax-cli's for pixels / 255.

    Its input is one row of height * width pixel values per image, the image flattened row by row
    (`pixels.reshape(len(pixels), -1)`); a Rescaling(1/255) layer comes first, so it takes images as
    they are stored, then a Dense softmax layer holding W and b.
    """
    # Keras imports TensorFlow, whose start-up log lines would bury the command's own messages.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
    import keras

    n_features, n_classes = saved.W.shape
    model = keras.Sequential(
        [
            keras.Input(shape=(n_features,), name="pixels"),
            keras.layers.Rescaling(1 / 255, name="pixels_0_to_1"),
            keras.layers.Dense(n_classes, activation="softmax", name="probabilities"),
        ],
        name="softmax_regression",
    )
    model.get_layer("probabilities").set_weights([saved.W, saved.b])
    return model


def _write_keras(saved: SavedModel, path: Path) -> None:
    keras_model(saved).save(path)


FORMATS = {"keras": ExportFormat(suffix=".keras", write=_write_keras)}


def _write_atomically(target: Path, suffix: str, write: Callable[[Path], None]) -> None:
    """Call write on a temporary file beside target (its name ending in suffix), then rename it onto target.

    A failure or a crash at any moment leaves either the old file or the new one at target, never half of one.
    """
    # store's helpers, so an export lands on disk exactly as a model file does; imported here because
    # store loads NumPy, which `softmax --help` (importing this module for --format's choices) does not need.
    from .store import _fsync_folder, _new_file_mode

    folder = target.parent
    if target.is_dir():
        example = target / f"model{suffix}"
        raise SoftmaxError(f"cannot export to {target}: it is a folder; give a file name such as {example}")
    if not folder.is_dir():
        raise SoftmaxError(f"cannot export to {target}: the folder {folder} does not exist; create it first")
    temporary = None
    try:
        handle, temporary = tempfile.mkstemp(dir=folder, prefix=f".{target.name}.", suffix=suffix)
        os.close(handle)  # the exporter writes by name: Keras 3 saves only to a path ending in .keras
        write(Path(temporary))
        with open(temporary, "rb") as file:
            os.fsync(file.fileno())
        os.chmod(temporary, _new_file_mode())
        os.replace(temporary, target)
        _fsync_folder(folder)
    except OSError as e:
        raise SoftmaxError(f"cannot export to {target}: {e.strerror or e}") from None
    finally:
        # Whatever stopped us (an error, Ctrl-C), never leave a half-written file behind; after the
        # rename the temporary name is already gone.
        if temporary is not None:
            Path(temporary).unlink(missing_ok=True)
