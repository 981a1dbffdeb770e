"""`softmax predict`: the class of each of a person's images, as a table, JSON lines or CSV."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import click

from ..errors import EXIT_ERROR, EXIT_SOME_FAILED, SoftmaxError, printable
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

    For a model trained on a table (a CSV), IMAGES are instead CSV files of rows with the model's feature
    columns (a label column is ignored), or - for rows on stdin: CSV, or JSON lines, each a list of the
    features' values or an object of them by name. Each row gets its class and probability.

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
    if saved.metadata.get("feature_names") is not None:
        if show or preprocessed_folder:
            raise click.UsageError("--show and --save-preprocessed draw images: this model takes a table's rows")
        predict_table_rows(saved, images, top_k, as_json, as_csv)
        return
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
        if prediction.doubt and not as_json:
            click.echo(f"softmax: warning: {printable(path)}: {prediction.doubt}", err=True)
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


def predict_table_rows(saved, sources, top_k: int, as_json: bool, as_csv: bool) -> None:
    """Print the class and probability of each row of the CSV files (or stdin, "-") for a model of a table."""
    import numpy as np

    from ..model import predict_proba

    features = tuple(saved.metadata["feature_names"])
    names = saved.class_names
    if as_csv:
        rows_out = csv.writer(sys.stdout, lineterminator="\n")
        rows_out.writerow(["source", "row", "label", "probability", *(f"p_{name}" for name in names)])
    else:
        width = max(len(name) for name in names)
    for source in sources:
        rows = read_rows(source, features)
        probabilities = predict_proba(saved.W, saved.b, rows.astype(np.float32))
        for number, p in enumerate(probabilities, 1):
            ranked = np.argsort(-p, kind="stable")[:top_k]
            best = int(ranked[0])
            if as_json:
                click.echo(json.dumps({"source": source, "row": number, "label": names[best],
                                       "probability": float(p[best]),
                                       "top": [{"label": names[i], "probability": float(p[i])} for i in ranked],
                                       "probabilities": dict(zip(names, map(float, p)))}, allow_nan=False))
            elif as_csv:
                rows_out.writerow([source, number, names[best], float(p[best]), *map(float, p)])
            else:
                shown = "  ".join(f"{names[i]:>{width}} {p[i]:6.1%}" for i in ranked)
                click.echo(f"{source} row {number}: {shown}")


def read_rows(source: str, features: tuple[str, ...]):
    """Return the feature rows (n, d) of a CSV file, or of stdin ("-": CSV, or JSON lines of lists or objects)."""
    import io

    import numpy as np

    from ..data.formats import read_csv

    if source != "-":
        return read_csv(Path(source), features=features)[0]
    text = sys.stdin.read()
    if text.lstrip()[:1] not in ("[", "{"):
        return read_csv(Path("<stdin>"), features=features, stream=io.BytesIO(text.encode()))[0]
    rows = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as e:
            raise SoftmaxError(f"stdin line {number}: not JSON ({e.msg})") from None
        if isinstance(value, dict):
            absent = [name for name in features if name not in value]
            if absent:
                raise SoftmaxError(f"stdin line {number}: no value for {absent[0]!r}, a feature the model takes")
            value = [value[name] for name in features]
        if not isinstance(value, list) or len(value) != len(features):
            raise SoftmaxError(f"stdin line {number}: expected a list of {len(features)} numbers or an object of "
                               f"them by name ({', '.join(features[:8])})")
        bad = next((i for i, v in enumerate(value)
                    if isinstance(v, bool) or not isinstance(v, (int, float)) or not np.isfinite(v)), None)
        if bad is not None:
            raise SoftmaxError(f"stdin line {number}, column {features[bad]!r}: {value[bad]!r} is not a number")
        rows.append(value)
    if not rows:
        raise SoftmaxError("stdin holds no rows: give one JSON list (or object) of the features a line")
    return np.array(rows, np.float64)
