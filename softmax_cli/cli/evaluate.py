"""`softmax evaluate` and `softmax info`: what a saved model scores, and what its file holds."""

from __future__ import annotations

import json
from pathlib import Path

import click
from click.core import ParameterSource

from .. import require_extra
from ..config import DATASETS
from ..errors import SoftmaxError
from .options import data_option, dataset_option, load_data, json_option, model_option
from .render import facts_table, format_matrix, model_facts


def open_model(path: Path):
    """Return the SavedModel at path; a missing file is said with what to do about it."""
    from ..store import load_model

    if not path.exists() and not path.is_symlink():
        raise SoftmaxError(f"there is no model file {path}: train one first (softmax train --model {path}), or "
                           "pass --model with the path of a model file")
    return load_model(path)


@click.command(short_help="Accuracy and a full report of a saved model.")
@model_option("The model file to evaluate.")
@dataset_option("the model's data set")
@data_option
@click.option("--plots", "plots_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Also write PNG figures to this folder (created if missing): confusion matrix, weight templates, "
              "learning curves and the most confident mistakes.")
@click.option("--compare-with", "other_models", multiple=True, type=click.Path(path_type=Path),
              help="With --plots: also draw this model's weight templates under this one's (e.g. a raw model beside a "
              "deskewed one); may be given more than once.")
@json_option
@click.pass_context
def evaluate(ctx, model_path, dataset_name, data, plots_dir, other_models, as_json):
    """Test-set accuracy, per-class precision, recall and F1, and the confusion matrix of a saved model.

    The test images get what the model was trained with (its preprocessing, e.g. deskewing), and
    data that is not what the model was made for (other classes, image size or data set) is refused.
    """
    from ..data import check_model_fits
    from ..metrics import classification_summary
    from ..model import features, predict_proba
    from ..preprocess import preprocessed

    if other_models and plots_dir is None:
        raise click.UsageError("--compare-with draws a figure: give --plots DIR too")
    if plots_dir is not None:
        require_extra("matplotlib", "plots", "--plots")
    saved = open_model(model_path)
    others = {str(path): open_model(path) for path in other_models}
    typed_data = data is not None and ctx.get_parameter_source("data") is not ParameterSource.ENVIRONMENT
    if dataset_name is None and not typed_data and saved.dataset in DATASETS:
        dataset_name = saved.dataset  # the data the model was made for; --data alone is read as it is
    elif dataset_name is None and data is None:
        raise SoftmaxError(f"{model_path} was trained on its own data ({saved.dataset}): pass --data with that "
                           "data's files")
    dataset = load_data(ctx, data, dataset_name)
    check_model_fits(saved, dataset)
    probabilities = predict_proba(saved.W, saved.b, features(preprocessed(dataset.x_test, saved.preprocess)))
    summary = classification_summary(dataset.y_test, probabilities.argmax(axis=1), saved.class_names)
    figures = []
    if plots_dir is not None:
        from ..plots import write_evaluation_figures

        figures = write_evaluation_figures(plots_dir, saved, dataset.x_test, dataset.y_test, probabilities,
                                           compare_with=others)
    if as_json:
        summary.pop("report")
        click.echo(json.dumps({"model": str(model_path), "n_test": len(dataset.y_test), **summary,
                               "figures": [str(path) for path in figures]}, allow_nan=False))
        return
    click.echo(f"test accuracy {summary['accuracy']:.2%} on {len(dataset.y_test)} images ({model_path})\n")
    click.echo(summary["report"])
    click.echo("confusion matrix (rows: true class, columns: predicted class)")
    click.echo(format_matrix(summary["confusion_matrix"], saved.class_names))
    for path in figures:
        click.echo(f"figure written: {path}")


@click.command(short_help="What a model file holds: data set, settings, training.")
@click.argument("model_path", metavar="[MODEL]", required=False, default="model.npz", envvar="SOFTMAX_MODEL",
                type=click.Path(path_type=Path))
@json_option
@click.option("--system", is_flag=True, help="Instead: the versions, and which training loop runs here and why.")
def info(model_path, as_json, system):
    """What the model file MODEL holds: its data set, classes, preprocessing, settings and how training went.

    MODEL defaults to model.npz, or to $SOFTMAX_MODEL when that is set. --json prints the file's
    whole metadata with the shapes of W and b. --system tells instead what this installation
    trains with: the compiled epoch (and its form) or the NumPy loop, and why.
    """
    if system:
        click.echo(system_facts(as_json))
        return
    saved = open_model(model_path)
    file_bytes = model_path.stat().st_size
    if as_json:
        click.echo(json.dumps({"model": str(model_path), "file_bytes": file_bytes, "W_shape": list(saved.W.shape),
                               "b_shape": list(saved.b.shape), "metadata": saved.metadata}, allow_nan=False))
        return
    click.echo(facts_table(str(model_path), model_facts(saved, file_bytes)))


def system_facts(as_json: bool) -> str:
    """Return the text of `softmax info --system`: softmax-cli's, Python's and NumPy's versions, and the loop."""
    import platform

    import numpy as np

    from .. import __version__
    from ..train import training_loop

    compiled, loop = training_loop()
    facts = {"softmax-cli": __version__, "python": platform.python_version(), "numpy": np.__version__,
             "compiled_epoch": compiled, "training_loop": loop}
    if as_json:
        return json.dumps(facts)
    return "\n".join([f"softmax-cli {__version__}, Python {facts['python']}, NumPy {facts['numpy']}",
                      f"training loop: {loop}"])
