"""The `softmax` command: parse options, call the library, print. No numerics here."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from . import __version__
from .config import TrainConfig, make_config
from .errors import EXIT_ERROR, EXIT_SOME_FAILED, EXIT_USAGE, SoftmaxError

DEFAULTS = TrainConfig()


class BatchSize(click.ParamType):
    """A positive whole number of samples, or `full` for the whole training set in every step."""

    name = "N|full"

    def convert(self, value, param, ctx):
        if isinstance(value, int) or str(value).isdigit():
            if int(value) >= 1:
                return int(value)
        elif str(value).lower() == "full":
            return 0
        self.fail(f"{value!r} is not a positive whole number or 'full'", param, ctx)


def data_option(command):
    return click.option(
        "--data",
        type=click.Path(exists=True, path_type=Path),
        envvar="SOFTMAX_DATA",
        help="A local copy of the data set: a Keras-format .npz or a folder with one, or a folder with the four "
        "IDX files. Without it the data set is downloaded through keras.datasets. [env: SOFTMAX_DATA]",
    )(command)


def model_option(help_text: str, must_exist: bool):
    return click.option(
        "--model",
        "model_path",
        type=click.Path(exists=must_exist, dir_okay=False, path_type=Path),
        default="model.npz",
        show_default=True,
        envvar="SOFTMAX_MODEL",
        help=f"{help_text} [env: SOFTMAX_MODEL]",
    )


json_option = click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON on stdout.")


def default_help(text: str, name: str) -> str:
    return f"{text} [default: {getattr(DEFAULTS, name)}]"


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="softmax")
def cli():
    """Softmax regression on MNIST, written from scratch in NumPy.

    \b
      softmax train                 train on MNIST and save model.npz
      softmax evaluate              accuracy and a full report of a saved model
      softmax predict digit.png     the digit in your own image, with its probability
    """


@cli.command()
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), help=default_help("Learning rate.", "lr"))
@click.option(
    "--epochs", type=click.IntRange(min=1), help=default_help("Passes over the training set.", "epochs")
)
@click.option(
    "--batch-size",
    type=BatchSize(),
    help=default_help("Samples per gradient step; 'full' takes the whole training set in every step.", "batch_size"),
)
@click.option("--seed", type=int, help=default_help("Random seed for shuffling; same seed, same weights.", "seed"))
@click.option(
    "--config",
    "config_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="A TOML file of settings (see configs/); options given on the command line override it.",
)
@data_option
@model_option("Where to save the trained model.", must_exist=False)
@click.option("--quiet", "-q", is_flag=True, help="No progress bar and no summary.")
@json_option
def train(lr, epochs, batch_size, seed, config_file, data, model_path, quiet, as_json):
    """Train softmax regression on MNIST, report test accuracy and save the weights.

    The model file is a plain .npz: W (784, 10) and b (10,) apply to pixels / 255, so
    argmax(x / 255 @ W + b) is the prediction.
    """
    from .data import load_dataset
    from .metrics import loss_and_accuracy
    from .store import save_model
    from .train import fit

    config = make_config(config_file, lr=lr, epochs=epochs, batch_size=batch_size, seed=seed)
    dataset = load_dataset(data)
    with progress_bar(config.epochs, disable=quiet) as bar:
        result = fit(dataset.x_train, dataset.y_train, dataset.n_classes, config, on_epoch=bar)
    test_loss, test_accuracy = loss_and_accuracy(result.W, result.b, dataset.x_test, dataset.y_test)
    metadata = {
        "settings": config.to_dict(),
        "class_names": list(dataset.class_names),
        "image_shape": list(dataset.image_shape),
        "dataset": dataset.name,
        "test_accuracy": test_accuracy,
        "test_loss": test_loss,
        "train_seconds": result.train_seconds,
        "history": result.history,
    }
    save_model(model_path, result.W, result.b, metadata)
    summary = {
        "test_accuracy": test_accuracy,
        "test_loss": test_loss,
        "train_seconds": result.train_seconds,
        "epochs": result.epochs_run,
        "model": str(model_path),
        "settings": config.to_dict(),
    }
    if as_json:
        click.echo(json.dumps(summary))
    elif not quiet:
        click.echo(
            f"test accuracy {test_accuracy:.2%} after {result.epochs_run} epochs "
            f"in {result.train_seconds:.2f} s of training; model saved to {model_path}"
        )


class progress_bar:
    """A tqdm bar on stderr, one step per epoch, showing loss and accuracy; called with each epoch's stats."""

    def __init__(self, epochs: int, disable: bool):
        from tqdm import tqdm

        self.bar = tqdm(total=epochs, unit="epoch", file=sys.stderr, disable=disable, leave=False)

    def __call__(self, stats: dict):
        self.bar.set_postfix(loss=f"{stats['loss']:.4f}", accuracy=f"{stats['accuracy']:.4f}", refresh=False)
        self.bar.update()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.bar.close()


@cli.command()
@model_option("The model file to evaluate.", must_exist=True)
@data_option
@json_option
def evaluate(model_path, data, as_json):
    """Test-set accuracy, per-class precision, recall and F1, and the confusion matrix of a saved model."""
    from .data import load_dataset
    from .metrics import classification_summary, probabilities
    from .store import load_model

    saved = load_model(model_path)
    dataset = load_dataset(data)
    check_model_fits(saved, dataset.image_shape, dataset.n_classes, data)
    predicted = probabilities(saved.W, saved.b, dataset.x_test).argmax(axis=1)
    summary = classification_summary(dataset.y_test, predicted, saved.class_names)
    if as_json:
        summary.pop("report")
        click.echo(json.dumps({"model": str(model_path), "n_test": len(dataset.y_test), **summary}))
        return
    click.echo(f"test accuracy {summary['accuracy']:.2%} on {len(dataset.y_test)} images ({model_path})\n")
    click.echo(summary["report"])
    click.echo("confusion matrix (rows: true class, columns: predicted class)")
    click.echo(format_matrix(summary["confusion_matrix"], saved.class_names))


def check_model_fits(saved, image_shape, n_classes, data):
    if tuple(saved.image_shape) != tuple(image_shape) or len(saved.class_names) != n_classes:
        raise SoftmaxError(
            f"the model expects {saved.image_shape[0]}x{saved.image_shape[1]} images and "
            f"{len(saved.class_names)} classes but the data set {data or ''} has "
            f"{image_shape[0]}x{image_shape[1]} images and {n_classes} classes: evaluate it on the data it was trained on"
        )


def format_matrix(matrix, names) -> str:
    width = max(6, *(len(str(v)) + 1 for row in matrix for v in row), *(len(n) + 1 for n in names))
    lines = [" " * width + "".join(f"{n:>{width}}" for n in names)]
    lines += [f"{name:>{width}}" + "".join(f"{v:>{width}}" for v in row) for name, row in zip(names, matrix)]
    return "\n".join(lines)


@cli.command()
@click.argument("images", nargs=-1, required=True)
@model_option("The model file to predict with.", must_exist=True)
@click.option("--top-k", type=click.IntRange(min=1), default=1, show_default=True, help="Show the k likeliest classes.")
@json_option
def predict(images, model_path, top_k, as_json):
    """The class of each IMAGE (PNG/JPEG files, folders or globs), with its probability.

    Images are brought to MNIST's convention first: grayscale, light digit on dark, cropped,
    scaled to fit 20x20 and centred by its centre of mass in 28x28.
    """
    import numpy as np

    from .images import expand_inputs, load_image
    from .model import predict_proba
    from .store import load_model

    saved = load_model(model_path)
    paths = expand_inputs(images)
    failures = 0
    for path in paths:
        try:
            vector = load_image(path, shape=saved.image_shape)
        except SoftmaxError as e:
            click.echo(f"softmax: error: {e}", err=True)
            failures += 1
            continue
        probs = predict_proba(saved.W, saved.b, vector[np.newaxis])[0]
        ranked = probs.argsort()[::-1][:top_k]
        label = saved.class_names[ranked[0]]
        if as_json:
            click.echo(json.dumps({"path": str(path), "label": label, "probability": float(probs[ranked[0]]),
                                   "probabilities": [float(p) for p in probs]}))
        else:
            top = ", ".join(f"{saved.class_names[k]} ({probs[k]:.1%})" for k in ranked)
            click.echo(f"{path}: {top}")
    if failures:
        return EXIT_ERROR if failures == len(paths) else EXIT_SOME_FAILED
    return 0


def main(argv=None) -> None:
    """Run the CLI: user mistakes end in one line on stderr and a non-zero exit, never a traceback."""
    try:
        code = cli.main(args=argv, prog_name="softmax", standalone_mode=False)
    except click.UsageError as e:
        hint = f" (see '{e.ctx.command_path} --help')" if e.ctx else ""
        click.echo(f"softmax: error: {e.format_message()}{hint}", err=True)
        code = EXIT_USAGE
    except click.ClickException as e:
        click.echo(f"softmax: error: {e.format_message()}", err=True)
        code = e.exit_code
    except SoftmaxError as e:
        click.echo(f"softmax: error: {e}", err=True)
        code = e.exit_code
    except (KeyboardInterrupt, click.Abort):
        click.echo("softmax: interrupted", err=True)
        code = 130
    sys.exit(code if isinstance(code, int) else 0)
