"""`softmax evaluate` and `softmax info`: what a saved model scores, and what its file holds."""

from __future__ import annotations

import json
from pathlib import Path

import click

from .. import require_extra
from .options import data_option, dataset_option, from_environment, json_option, load_data, model_option
from .render import facts_table, format_matrix, model_facts, say


@click.command(short_help="Accuracy and a full report of a saved model.")
@model_option("The model file to evaluate.")
@dataset_option("the model's data set")
@data_option
@click.option("--plots", "plots_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Also write PNG figures to this folder (created if missing): confusion matrix, weight templates, "
              "learning curves and the most confident mistakes.")
@click.option("--compare-with", "other_models", multiple=True, type=click.Path(dir_okay=False, path_type=Path),
              help="With --plots: also draw this model's weight templates under this one's (e.g. a raw model beside a "
              "deskewed one); may be given more than once.")
@json_option
@click.pass_context
def evaluate(ctx, model_path, dataset_name, data, plots_dir, other_models, as_json):
    """Test-set accuracy, per-class precision, recall and F1, and the confusion matrix of a saved model.

    The test images get what the model was trained with (its preprocessing, e.g. deskewing), and
    data that is not what the model was made for (other classes, image size or data set) is refused.
    The report's macro average is over the classes present in the test set or the predictions.
    --data may also be a folder of class-named subfolders of images (mydigits/7/a.png, as train
    --add takes): each image is framed as predict frames it, and all of them are scored.
    """
    from .. import evaluation
    from ..store import load_model

    if other_models and plots_dir is None:
        raise click.UsageError("--compare-with draws a figure: give --plots DIR too")
    if plots_dir is not None:
        require_extra("matplotlib", "plots", "--plots")
    saved = load_model(model_path)
    others = {str(path): load_model(path) for path in other_models}
    dataset = evaluation.remembered_data(saved) if data is None and dataset_name is None else None
    if dataset is None and data is not None and not from_environment(ctx, data):
        dataset = example_folder(saved, data)
    if dataset is None:
        local_copy = from_environment(ctx, data)
        name = evaluation.dataset_to_evaluate_on(saved, dataset_name, files=data is not None and not local_copy,
                                                 local_copy=local_copy)
        dataset = load_data(ctx, data, name)
    scores = evaluation.evaluate(saved, dataset)
    dataset = scores.dataset
    figures = []
    if plots_dir is not None:
        from ..plots import write_evaluation_figures

        figures = write_evaluation_figures(plots_dir, saved, dataset.x_test, dataset.y_test, scores.probabilities,
                                           compare_with=others)
    if as_json:
        click.echo(json.dumps({"model": str(model_path), **scores.to_dict(),
                               "figures": [str(path) for path in figures]}, allow_nan=False))
        return
    say(f"test accuracy {scores.accuracy:.2%} on {len(dataset.y_test)} images ({model_path})\n")
    say(scores.report)
    say("confusion matrix (rows: true class, columns: predicted class)")
    say(format_matrix(scores.confusion_matrix, saved.class_names))
    for path in figures:
        say(f"figure written: {path}")


def example_folder(saved, data: Path):
    """Return the data set of a folder of class-named subfolders of images (as `train --add` takes), framed for
    the model saved; None when data is not such a folder. Each image left out is said on stderr."""
    from ..data.examples import as_dataset, is_example_folder, read_examples

    if not is_example_folder(data):
        return None
    examples = read_examples([data], saved.class_names, saved.image_shape, saved.framing)
    for line in examples.skipped:
        say(f"softmax: left out: {line}", err=True)
    return as_dataset(examples)


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
    from ..store import load_model

    saved = load_model(model_path)
    file_bytes = model_path.stat().st_size
    if as_json:
        click.echo(json.dumps({"model": str(model_path), "file_bytes": file_bytes, "W_shape": list(saved.W.shape),
                               "b_shape": list(saved.b.shape), "metadata": saved.metadata}, allow_nan=False))
        return
    say(facts_table(str(model_path), model_facts(saved, file_bytes)))


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
