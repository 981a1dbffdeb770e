"""`softmax export`: the model in another framework's format."""

from __future__ import annotations

from pathlib import Path

import click

from ..export import FORMATS
from .options import checked, model_option
from .render import say


@click.command(short_help="The model as a Keras file, to serve without softmax-cli.")
@click.argument("out", type=click.Path(dir_okay=False, path_type=Path))
@model_option("The model file to export.")
@click.option("--format", "format_name", type=checked("format", str, choices=tuple(sorted(FORMATS))), default="keras", show_default=True,
              help="The format of OUT.")
def export(out, model_path, format_name):
    """Write the model to OUT in another framework's format, to serve it without softmax-cli.

    keras: OUT must end in .keras; keras.models.load_model reads it. The Keras model takes what
    every form of the model takes: each image flattened row by row and divided by 255 (e.g.
    pixels.reshape(len(pixels), -1) / 255, 784 values for MNIST). One Dense(classes, softmax)
    layer holds the model's W and b, so model.predict gives softmax-cli's probabilities.
    """
    from ..export import export_model
    from ..store import load_model

    export_model(load_model(model_path), out, format_name, reads=[model_path])
    say(f"exported {model_path} to {out} ({format_name})")
