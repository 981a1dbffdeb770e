"""`softmax export`: the model in another framework's format."""

from __future__ import annotations

from pathlib import Path

import click

from ..export import FORMATS
from .options import checked, model_option
from .render import say


@click.command(short_help="The model as a Keras or ONNX file, to serve without softmax-cli.")
@click.argument("out", type=click.Path(dir_okay=False, path_type=Path))
@model_option("The model file to export.")
@click.option("--format", "format_name", type=checked("format", str, choices=tuple(sorted(FORMATS))), default=None,
              help="The format of OUT.  [default: from OUT's extension, .keras or .onnx]")
def export(out, model_path, format_name):
    """Write the model to OUT in another framework's format, to serve it without softmax-cli.

    Both take what every form of the model takes: each image flattened row by row and divided by
    255 (e.g. pixels.reshape(len(pixels), -1) / 255, 784 values for MNIST), and give
    softmax-cli's probabilities.

    \b
    keras: OUT ends in .keras; keras.models.load_model reads it. One Dense(classes, softmax)
      layer holds the model's W and b. Needs the [keras] extra (TensorFlow).
    onnx: OUT ends in .onnx; onnxruntime runs it (in Python, the browser, other languages).
      Two nodes, Gemm and Softmax; input "pixels_0_to_1" (float32, images x features), output
      "probabilities". Needs the [onnx] extra (the onnx package, no TensorFlow).
    """
    from ..export import export_model, format_of
    from ..store import load_model

    format_name = format_name or format_of(out)
    export_model(load_model(model_path), out, format_name, reads=[model_path])
    say(f"exported {model_path} to {out} ({format_name})")
