"""`softmax predict`: the class of each of a person's images, as a table, JSON lines or CSV."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import click

from ..errors import EXIT_ERROR, EXIT_SOME_FAILED, SoftmaxError
from .options import checked, flag_of, json_option, model_option
from .render import PredictionTable, ascii_art, error_line


def print_error(error: SoftmaxError) -> None:
    """Print the error as one `softmax: error:` line on stderr; returns None."""
    click.echo(error_line(error.in_terms_of(flag_of)), err=True)


def preprocessed_names(paths) -> list[str]:
    """Return a PNG file name for each path, from its own name, numbered (digit-2.png, ...) where names repeat."""
    taken, next_number, names = set(), {}, []
    for path in paths:
        number = next_number.get(path.stem, 1)
        # casefold: on macOS and Windows, Digit.png and digit.png are the same file
        while (name := path.stem + (f"-{number}" if number > 1 else "") + ".png").casefold() in taken:
            number += 1
        next_number[path.stem] = number + 1
        taken.add(name.casefold())
        names.append(name)
    return names


@click.command(short_help="The digit in your own image, with its probability.")
@click.argument("images", nargs=-1, required=True, type=click.Path())
@model_option("The model file to predict with.")
@click.option("--top-k", type=checked("top_k", int, low=1, high=1000), default=1, show_default=True,
              help="Show the k likeliest classes of each image: the prediction, then the k-1 next.")
@json_option
@click.option("--csv", "as_csv", is_flag=True,
              help="Print CSV on stdout: a header, then one row per image with every class's probability (p_<class>).")
@click.option("--show", is_flag=True, help="Draw each image as the model sees it, in text, below its row.")
@click.option("--save-preprocessed", "preprocessed_folder", type=click.Path(file_okay=False, path_type=Path),
              help="Save each image as the model sees it, a PNG of the model's input size, in this folder (created "
              "if needed).")
def predict(images, model_path, top_k, as_json, as_csv, show, preprocessed_folder):
    """The class of each IMAGE (PNG/JPEG files, folders or globs), with its probability and entropy.

    Images are first framed as the model's training images were: grayscale, light object on dark,
    cropped, then, for MNIST, scaled to fit 20x20 and centred by its centre of mass in 28x28; for data
    sets whose objects fill the frame (Fashion-MNIST, the 8x8 digits), scaled to fill it and centred
    (in the model's own image size). A model trained with --preprocess deskew then gets the image
    deskewed, as its training images were. An image with nothing that looks like ink is refused.
    The entropy says how unsure the model is: 0 bits is certain, log2(number of classes) is no idea.
    An image that cannot be read gets one error line on stderr and the others are still predicted.

    \b
    Exit codes:
      0  every image was predicted
      1  no image could be predicted (or the model could not be read)
      2  wrong options or arguments
      3  some images were predicted, others could not be read
    """
    from ..images import expand_inputs, save_preprocessed
    from ..predict import predict_image
    from ..store import load_model

    if as_json and as_csv:
        raise click.UsageError("--json and --csv cannot be used together: choose one output format")
    if show and (as_json or as_csv):
        raise click.UsageError("--show cannot be used with --json or --csv: its pictures would break their output")
    saved = load_model(model_path)
    names = saved.class_names
    paths, failures = [], 0
    for text in images:  # one at a time, so that a name that matches nothing does not stop the others
        try:
            paths.extend(expand_inputs([text]))
        except SoftmaxError as e:
            print_error(e)
            failures += 1
    if not paths:
        click.get_current_context().exit(EXIT_ERROR)
    if preprocessed_folder:
        try:
            preprocessed_folder.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise SoftmaxError(f"cannot create the folder {preprocessed_folder}: {e.strerror or e}") from None
        preprocessed_paths = [preprocessed_folder / name for name in preprocessed_names(paths)]
    if as_csv:
        rows = csv.writer(sys.stdout, lineterminator="\n")
        rows.writerow(["path", "label", "probability", "entropy_bits", *(f"p_{name}" for name in names)])
    elif not as_json:
        table = PredictionTable(paths, names)
    predicted = 0
    for i, path in enumerate(paths):
        try:
            prediction = predict_image(saved, path, top_k=top_k)
            if preprocessed_folder:
                save_preprocessed(prediction.input, saved.image_shape, preprocessed_paths[i], reads=paths)
        except SoftmaxError as e:
            print_error(e)
            failures += 1
            continue
        if as_json:
            click.echo(json.dumps(prediction.as_json(path), allow_nan=False))
        elif as_csv:
            rows.writerow([path, prediction.label, prediction.probability, prediction.entropy_bits,
                           *prediction.probabilities.tolist()])
        else:
            if not predicted:  # above the first row: a header over no rows would look like output
                click.echo(table.header(top_k))
            click.echo(table.row(path, prediction.probabilities, prediction.ranked, prediction.entropy_bits))
            if show:
                click.echo(ascii_art(prediction.input, saved.image_shape))
        predicted += 1
    if failures:
        click.get_current_context().exit(EXIT_SOME_FAILED if predicted else EXIT_ERROR)
