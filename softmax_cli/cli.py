"""The `softmax` command: parse options, call the library, print. No numerics here."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from . import __version__
from .config import DATASETS, LOSSES, SCHEDULES, TrainConfig, make_config, read_config_file
from .errors import EXIT_ERROR, EXIT_INTERRUPTED, EXIT_SOME_FAILED, EXIT_USAGE, SoftmaxError
from .export import FORMATS as EXPORT_FORMATS

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


def choose_dataset_option(default: str | None, shown_default: str | bool = True):
    return click.option(
        "--dataset",
        "dataset_name",
        type=click.Choice(DATASETS),
        default=default,
        show_default=shown_default,
        help="Which data set: MNIST digits, Fashion-MNIST clothes (both through keras.datasets unless --data), or "
        "scikit-learn's bundled 8x8 digits (no download).",
    )


dataset_option = choose_dataset_option("mnist")


def data_path(data: Path | None, dataset_name: str) -> Path | None:
    """Return the local copy to read the data set from, if any: SOFTMAX_DATA never stands for the bundled digits."""
    source = click.get_current_context().get_parameter_source("data")
    return None if dataset_name == "digits" and source is click.core.ParameterSource.ENVIRONMENT else data


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


def config_option(help_text: str):
    return click.option(
        "--config",
        "config_file",
        type=click.Path(exists=True, dir_okay=False, path_type=Path),
        help=help_text,
    )


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
      softmax info                  what model.npz holds: data set, settings, how training went
      softmax export m.keras        the model as a Keras file, to serve without softmax-cli
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
@click.option(
    "--momentum",
    type=click.FloatRange(min=0, max=1, max_open=True),
    help=default_help("Heavy-ball momentum: v = momentum * v + gradient, W -= lr * v.", "momentum"),
)
@click.option(
    "--schedule",
    type=click.Choice(SCHEDULES),
    help=default_help("How the learning rate changes: falls linearly or as a cosine to 0, or stays.", "schedule"),
)
@click.option(
    "--average",
    type=click.FloatRange(min=0, max=1),
    help=default_help("Save the mean of the weights over this last fraction of the steps (0: the last weights).",
                      "average"),
)
@click.option("--l2", type=click.FloatRange(min=0), help=default_help("L2 penalty (l2 / 2) * |W|^2.", "l2"))
@click.option("--loss", type=click.Choice(LOSSES), help=default_help("What gradient descent minimises.", "loss"))
@click.option(
    "--val-split",
    type=click.FloatRange(min=0, max=1, max_open=True),
    help=default_help("Hold out this fraction of the training set to report validation loss and accuracy.",
                      "val_split"),
)
@click.option(
    "--patience",
    type=click.IntRange(min=0),
    help=default_help("With --val-split: stop after this many epochs without a better validation loss (0: never).",
                      "patience"),
)
@click.option(
    "--seed",
    type=click.IntRange(min=0),
    help=default_help("Random seed for shuffling; same seed, same weights.", "seed"),
)
@config_option("A TOML file of settings (see configs/); options given on the command line override it.")
@dataset_option
@data_option
@model_option("Where to save the trained model.", must_exist=False)
@click.option(
    "--resume",
    "checkpoint_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Continue an interrupted run from the checkpoint it saved; the result is what the run would have given.",
)
@click.option(
    "--history",
    "history_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also write the per-epoch loss and accuracy to this .csv or .json file.",
)
@click.option("--quiet", "-q", is_flag=True, help="No progress bar and no summary.")
@json_option
def train(config_file, dataset_name, data, model_path, checkpoint_path, history_path, quiet, as_json, **settings):
    """Train softmax regression, report test accuracy and save the weights.

    The model file is a plain .npz: W (784, 10) and b (10,) apply to pixels / 255, so
    argmax(x / 255 @ W + b) is the prediction. Ctrl-C (or SIGTERM) stops after the current
    epoch and saves a checkpoint next to the model for --resume; an existing model file is
    left untouched. Exit codes: 0 done, 1 error (e.g. training diverged), 2 wrong options,
    130 interrupted.
    """
    from .data import load_dataset
    from .metrics import loss_and_accuracy
    from .store import load_checkpoint, save_checkpoint, save_model
    from .train import Trainer, fit, split_validation

    if history_path is not None and history_path.suffix not in (".csv", ".json"):
        raise click.BadParameter("the history file must end in .csv or .json", param_hint="--history")
    if history_path is not None and not history_path.parent.is_dir():  # found out now, not after saving the model
        raise click.BadParameter(f"the folder {history_path.parent} does not exist", param_hint="--history")
    if checkpoint_path is not None:
        arrays, state = load_checkpoint(checkpoint_path)
        trainer = Trainer.from_checkpoint(arrays, state, checkpoint_path)
        check_same_settings(trainer.config, make_config(config_file, **settings), settings, config_file)
        dataset_name = state.get("dataset", dataset_name)
    config = make_config(config_file, **settings) if checkpoint_path is None else trainer.config
    dataset = load_dataset(data_path(data, dataset_name), name=dataset_name)
    pixels, labels, validation = dataset.x_train, dataset.y_train, None
    if config.val_split:
        pixels, labels, *validation = split_validation(pixels, labels, config.val_split, config.seed)
    if checkpoint_path is None:
        trainer = Trainer(config, dataset.n_features, dataset.n_classes)
    elif state.get("training_data") != dataset.fingerprint() or trainer.n_classes != dataset.n_classes:
        raise SoftmaxError(f"{checkpoint_path} was made on other data: resume with the --data it was trained on")

    with progress_bar(config.epochs, trainer.epoch, disable=quiet) as bar, StopRequest() as stop:
        result = fit(trainer, pixels, labels, on_epoch=bar, validation=validation, should_stop=stop)
    if result.interrupted:
        saved_at = checkpoint_path or checkpoint_path_for(model_path)
        arrays, state = trainer.to_checkpoint()
        save_checkpoint(saved_at, arrays, {**state, "dataset": dataset.name, "training_data": dataset.fingerprint()})
        click.echo(
            f"softmax: interrupted after epoch {trainer.epoch} of {config.epochs}; {model_path} was not written. "
            f"To continue, run the same command with --resume {saved_at}",  # same --data and --model, above all
            err=True,
        )
        return EXIT_INTERRUPTED
    test_loss, test_accuracy = loss_and_accuracy(result.W, result.b, dataset.x_test, dataset.y_test)
    metadata = {
        "settings": config.to_dict(),
        "class_names": list(dataset.class_names),
        "image_shape": list(dataset.image_shape),
        "dataset": dataset.name,
        "preprocess": dataset.image_convention(),  # how predict frames a person's image for this model
        "test_accuracy": test_accuracy,
        "test_loss": test_loss,
        "train_seconds": result.train_seconds,
        "stopped_early": result.stopped_early,
        "history": result.history,
    }
    save_model(model_path, result.W, result.b, metadata)
    if history_path is not None:
        write_history(result.history, history_path)
    if checkpoint_path is not None:
        checkpoint_path.unlink(missing_ok=True)  # the run it held is finished and saved
    summary = {
        "test_accuracy": test_accuracy,
        "test_loss": test_loss,
        "train_seconds": result.train_seconds,
        "epochs": result.epochs_run,
        "stopped_early": result.stopped_early,
        "model": str(model_path),
        "dataset": dataset.name,
        "settings": config.to_dict(),
    }
    if as_json:
        click.echo(json.dumps(summary))
    elif not quiet:
        stopped = " (stopped early)" if result.stopped_early else ""
        click.echo(
            f"test accuracy {test_accuracy:.2%} after {result.epochs_run} epochs{stopped} "
            f"in {result.train_seconds:.2f} s of training; model saved to {model_path}"
        )
    return 0


def check_same_settings(saved: TrainConfig, given: TrainConfig, flags: dict, config_file) -> None:
    """Raise SoftmaxError if a setting asked for differs from the checkpoint's: the result would be neither run's."""
    asked = {name for name, value in flags.items() if value is not None}
    if config_file:
        asked |= set(read_config_file(config_file))
    different = [f"{name}={getattr(saved, name)}" for name in sorted(asked) if getattr(saved, name) != getattr(given, name)]
    if different:
        raise SoftmaxError(
            f"the checkpoint was made with {', '.join(different)}: resume with the settings it was made with "
            f"(or leave them out)"
        )


def checkpoint_path_for(model_path: Path) -> Path:
    """Return where an interrupted run's checkpoint goes: next to the model, model.npz -> model.ckpt.npz."""
    stem = model_path.name[: -len(".npz")] if model_path.name.endswith(".npz") else model_path.name
    return model_path.with_name(f"{stem}.ckpt.npz")


def write_history(history: list[dict], path: Path) -> None:
    """Write the per-epoch history as CSV or JSON, whichever the file name says."""
    import csv

    try:
        with open(path, "w", newline="") as f:
            if path.suffix == ".json":
                json.dump(history, f, indent=1)
            else:
                writer = csv.DictWriter(f, fieldnames=list(history[-1]))
                writer.writeheader()
                writer.writerows(history)
    except OSError as e:
        raise SoftmaxError(f"cannot write the history to {path}: {e.strerror or e}") from None


class StopRequest:
    """While active, Ctrl-C and SIGTERM ask training to stop after the current epoch; a second Ctrl-C stops at once."""

    def __init__(self):
        self.requested = False

    def __call__(self) -> bool:
        return self.requested

    def _handle(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def __enter__(self):
        import signal

        self.previous = {sig: signal.signal(sig, self._handle) for sig in (signal.SIGINT, signal.SIGTERM)}
        return self

    def __exit__(self, *exc):
        import signal

        for sig, handler in self.previous.items():
            signal.signal(sig, handler)


class progress_bar:
    """A tqdm bar on stderr, one step per epoch, showing loss and accuracy; called with each epoch's stats."""

    def __init__(self, epochs: int, done: int, disable: bool):
        from tqdm import tqdm

        self.bar = tqdm(total=epochs, initial=done, unit="epoch", file=sys.stderr, disable=disable, leave=False)

    def __call__(self, stats: dict):
        self.bar.set_postfix(loss=f"{stats['loss']:.4f}", accuracy=f"{stats['accuracy']:.4f}", refresh=False)
        self.bar.update()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.bar.close()


@cli.command()
@model_option("The model file to evaluate.", must_exist=True)
@choose_dataset_option(None, "the model's data set")
@data_option
@click.option(
    "--plots",
    "plots_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Also write PNG figures to this folder (created if missing): confusion matrix, weight templates, "
    "learning curves and the most confident mistakes.",
)
@json_option
def evaluate(model_path, dataset_name, data, plots_dir, as_json):
    """Test-set accuracy, per-class precision, recall and F1, and the confusion matrix of a saved model."""
    from .data import load_dataset
    from .metrics import classification_summary, probabilities
    from .store import load_model

    saved = load_model(model_path)
    if dataset_name is None:
        dataset_name = saved.metadata["dataset"] if saved.metadata["dataset"] in DATASETS else "mnist"
    dataset = load_dataset(data_path(data, dataset_name), name=dataset_name)
    check_model_fits(saved, dataset)
    test_probabilities = probabilities(saved.W, saved.b, dataset.x_test)
    summary = classification_summary(dataset.y_test, test_probabilities.argmax(axis=1), saved.class_names)
    figures = []
    if plots_dir is not None:
        from .plots import write_evaluation_figures

        figures = write_evaluation_figures(plots_dir, saved, dataset.x_test, dataset.y_test, test_probabilities)
    if as_json:
        summary.pop("report")
        click.echo(json.dumps({"model": str(model_path), "n_test": len(dataset.y_test), **summary,
                               "figures": [str(path) for path in figures]}))
        return
    click.echo(f"test accuracy {summary['accuracy']:.2%} on {len(dataset.y_test)} images ({model_path})\n")
    click.echo(summary["report"])
    click.echo("confusion matrix (rows: true class, columns: predicted class)")
    click.echo(format_matrix(summary["confusion_matrix"], saved.class_names))
    for path in figures:
        click.echo(f"figure written: {path}")


def check_model_fits(saved, dataset) -> None:
    """Raise SoftmaxError unless the data set has the model's image size and classes, saying which data to use."""
    trained_on = saved.metadata["dataset"]
    if trained_on == "digits":
        remedy = "--dataset digits"
    elif trained_on in DATASETS:
        remedy = f"--dataset {trained_on}, with --data PATH to a local copy of it if it cannot be downloaded"
    else:
        remedy = f"--data PATH to a copy of {trained_on}"
    advice = f"evaluate it on the data it was trained on: {remedy}"
    if saved.image_shape != dataset.image_shape or len(saved.class_names) != dataset.n_classes:
        raise SoftmaxError(
            f"the model expects {saved.image_shape[0]}x{saved.image_shape[1]} images and "
            f"{len(saved.class_names)} classes but the data set {dataset.name} has "
            f"{dataset.image_shape[0]}x{dataset.image_shape[1]} images and {dataset.n_classes} classes: {advice}"
        )
    if saved.class_names != dataset.class_names:
        model_names, data_names = (", ".join(names[:3]) + (", ..." if len(names) > 3 else "")
                                   for names in (saved.class_names, dataset.class_names))
        raise SoftmaxError(
            f"the model was trained on {trained_on}, whose classes are {model_names}, but the data set "
            f"{dataset.name} has classes {data_names}: {advice}"
        )


def format_matrix(matrix, names) -> str:
    """Return the confusion matrix as text, one row per true class, every column as wide as the widest entry."""
    width = max(6, *(len(str(v)) + 1 for row in matrix for v in row), *(len(n) + 1 for n in names))
    lines = [" " * width + "".join(f"{n:>{width}}" for n in names)]
    lines += [f"{name:>{width}}" + "".join(f"{v:>{width}}" for v in row) for name, row in zip(names, matrix)]
    return "\n".join(lines)


@cli.command()
@click.argument("images", nargs=-1, required=True)
@model_option("The model file to predict with.", must_exist=True)
@click.option(
    "--top-k",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Show the k likeliest classes of each image: the prediction, then the k-1 next.",
)
@json_option
@click.option(
    "--csv",
    "as_csv",
    is_flag=True,
    help="Print CSV on stdout: a header, then one row per image with every class's probability (p_<class>).",
)
@click.option("--show", is_flag=True, help="Draw each image as the model sees it, in text, below its row.")
@click.option(
    "--save-preprocessed",
    "preprocessed_folder",
    type=click.Path(file_okay=False, path_type=Path),
    help="Save each image as the model sees it, a PNG of the model's input size, in this folder (created if needed).",
)
def predict(images, model_path, top_k, as_json, as_csv, show, preprocessed_folder):
    """The class of each IMAGE (PNG/JPEG files, folders or globs), with its probability and entropy.

    Images are first framed as the model's training images were: grayscale, light object on dark,
    cropped, then, for MNIST, scaled to fit 20x20 and centred by its centre of mass in 28x28; for data
    sets whose objects fill the frame (Fashion-MNIST, the 8x8 digits), scaled to fill it and centred
    (in the model's own image size).
    The entropy says how unsure the model is: 0 bits is certain, log2(number of classes) is no idea.
    An image that cannot be read gets one error line on stderr and the others are still predicted.

    \b
    Exit codes:
      0  every image was predicted
      1  no image could be predicted (or the model could not be read)
      2  wrong options or arguments
      3  some images were predicted, others could not be read
    """
    import csv

    from .images import CONVENTIONS, expand_inputs, load_image, save_preprocessed
    from .metrics import entropy_bits
    from .model import predict_proba
    from .store import load_model

    if as_json and as_csv:
        raise click.UsageError("--json and --csv cannot be used together: choose one output format")
    if show and (as_json or as_csv):
        raise click.UsageError("--show cannot be used with --json or --csv: its pictures would break their output")
    saved = load_model(model_path)
    names = saved.class_names
    convention = saved.metadata.get("preprocess", "mnist")  # model files older than the key are all MNIST's
    if not isinstance(convention, str) or convention not in CONVENTIONS:
        raise SoftmaxError(
            f"{model_path} asks for images framed as {convention!r}, which this softmax-cli does not know "
            f"({', '.join(CONVENTIONS)}): upgrade softmax-cli"
        )
    paths, failures = [], 0
    for text in images:  # one at a time, so that a name that matches nothing does not stop the others
        try:
            paths.extend(expand_inputs([text]))
        except SoftmaxError as e:
            print_error(e)
            failures += 1
    if not paths:
        return EXIT_ERROR
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
            pixels = load_image(path, shape=saved.image_shape, convention=convention)
            if preprocessed_folder:
                save_preprocessed(pixels, saved.image_shape, preprocessed_paths[i])
        except SoftmaxError as e:
            print_error(e)
            failures += 1
            continue
        probabilities = predict_proba(saved.W, saved.b, pixels[None])[0]
        ranked = (-probabilities).argsort(kind="stable")[:top_k]  # stable: ties keep the classes' order
        label, probability = names[ranked[0]], float(probabilities[ranked[0]])
        entropy = float(entropy_bits(probabilities))
        if as_json:
            top = [{"label": names[k], "probability": float(probabilities[k])} for k in ranked]
            click.echo(json.dumps({
                "path": str(path), "label": label, "probability": probability,
                "probabilities": probabilities.tolist(), "entropy_bits": entropy, "top": top,
            }))
        elif as_csv:
            rows.writerow([path, label, probability, entropy, *probabilities.tolist()])
        else:
            if not predicted:  # above the first row: a header over no rows would look like output
                click.echo(table.header(top_k))
            click.echo(table.row(path, probabilities, ranked, entropy))
            if show:
                click.echo(ascii_art(pixels, saved.image_shape))
        predicted += 1
    if not failures:
        return 0
    return EXIT_SOME_FAILED if predicted else EXIT_ERROR


def print_error(error: Exception) -> None:
    """Print the error as one `softmax: error:` line on stderr; returns None."""
    click.echo(f"softmax: error: {error}", err=True)


class PredictionTable:
    """The table `softmax predict` prints, one row per image; its columns are sized from all paths up front."""

    def __init__(self, paths, class_names):
        self.class_names = class_names
        self.path_width = max(len("path"), *(len(str(path)) for path in paths))
        self.name_width = max(len("class"), *(len(name) for name in class_names))

    def header(self, top_k: int) -> str:
        """Return the header line; with top_k > 1 it names the column of the next likeliest classes."""
        line = f"{'path':<{self.path_width}}  {'class':<{self.name_width}}  probability  entropy (bits)"
        return line + ("  next likeliest" if top_k > 1 else "")

    def row(self, path, probabilities, ranked, entropy: float) -> str:
        """Return the row of one image: the likeliest class (ranked[0]) first, then the other ranked classes."""
        first, *others = ranked
        line = (
            f"{str(path):<{self.path_width}}  {self.class_names[first]:<{self.name_width}}  "
            f"{probabilities[first]:>11.1%}  {entropy:>14.2f}"
        )
        for k in others:
            line += f"  {self.class_names[k]:<{self.name_width}} {probabilities[k]:>6.1%}"
        return line.rstrip()


SHADES = " .:-=+*#%@"  # from black (0) to full ink (1): the model sees a light digit on black


def ascii_art(pixels, shape) -> str:
    """Return the image as lines of text, one per pixel row, each pixel two characters wide to look square."""
    levels = (pixels.reshape(shape) * len(SHADES)).astype(int).clip(0, len(SHADES) - 1)
    return "\n".join("".join(SHADES[level] * 2 for level in row) for row in levels)


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


@cli.command()
@click.argument("out", type=click.Path(dir_okay=False, path_type=Path))
@model_option("The model file to export.", must_exist=True)
@click.option(
    "--format",
    "format_name",
    type=click.Choice(sorted(EXPORT_FORMATS)),
    default="keras",
    show_default=True,
    help="The format of OUT.",
)
def export(out, model_path, format_name):
    """Write the model to OUT in another framework's format, to serve it without softmax-cli.

    keras: OUT must end in .keras; keras.models.load_model reads it. The Keras model takes raw pixel
    values 0..255, each image flattened row by row into one row of height*width values (e.g. 784 for
    MNIST: pixels.reshape(len(pixels), -1)). A Rescaling(1/255) layer comes first, then
    Dense(classes, softmax) with the model's W and b, so model.predict gives softmax-cli's probabilities.
    """
    from .export import export_model
    from .store import load_model

    export_model(load_model(model_path), out, format_name)
    click.echo(f"exported {model_path} to {out} ({format_name})")


@cli.command()
@click.argument(
    "model_path",
    metavar="[MODEL]",
    required=False,
    default="model.npz",
    envvar="SOFTMAX_MODEL",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
)
@json_option
def info(model_path, as_json):
    """What the model file MODEL holds: its data set, classes, settings and how training went.

    MODEL defaults to model.npz, or to $SOFTMAX_MODEL when that is set. --json prints the file's
    whole metadata with the shapes of W and b.
    """
    from .store import load_model

    saved = load_model(model_path)
    file_bytes = model_path.stat().st_size
    if as_json:
        click.echo(json.dumps({
            "model": str(model_path),
            "file_bytes": file_bytes,
            "W_shape": list(saved.W.shape),
            "b_shape": list(saved.b.shape),
            "metadata": saved.metadata,
        }))
        return
    rows = model_facts(saved, file_bytes)
    width = max(len(label) for label, _ in rows) + 2
    click.echo(str(model_path))
    click.echo("\n".join(f"  {label:<{width}}{text}".rstrip() for label, text in rows))


def model_facts(saved, file_bytes: int) -> list[tuple[str, str]]:
    """Return the (label, text) rows `softmax info` prints about a loaded model."""
    metadata = saved.metadata
    height, width = saved.image_shape
    accuracy = metadata["test_accuracy"]
    history = metadata["history"]
    rows = [
        ("format version", str(metadata["format_version"])),
        ("softmax-cli version", metadata["softmax_cli_version"]),
        ("created", metadata["created"]),
        ("data set", metadata["dataset"]),
        ("image shape", f"{height}x{width} ({height * width} features)"),
        ("classes", f"{len(saved.class_names)}: {', '.join(saved.class_names)}"),
        ("test accuracy", "not measured" if accuracy is None else f"{accuracy:.2%}"),
        ("training seconds", f"{metadata['train_seconds']:.2f}"),
        ("epochs run", str(len(history))),
    ]
    if history:
        rows.append(("first epoch", format_epoch(history[0])))
        rows.append(("last epoch", format_epoch(history[-1])))
    validated = [(epoch, stats["val_loss"]) for epoch, stats in enumerate(history, 1) if "val_loss" in stats]
    if validated:
        epoch, val_loss = min(validated, key=lambda pair: pair[1])
        rows.append(("best validation loss", f"{val_loss:.4f} (epoch {epoch})"))
    rows.append(("W, b", f"{saved.W.shape} {saved.W.dtype}, {saved.b.shape} {saved.b.dtype}"))
    rows.append(("file size", f"{file_bytes:,} bytes"))
    rows.append(("settings", ""))
    rows += [(f"  {name}", str(value)) for name, value in metadata["settings"].items()]
    return rows


EPOCH_STATS = {"loss": ("loss", ".4f"), "accuracy": ("accuracy", ".2%"),
               "val_loss": ("validation loss", ".4f"), "val_accuracy": ("validation accuracy", ".2%")}


def format_epoch(stats: dict) -> str:
    """Return one epoch's loss and accuracy (and their validation values, when recorded) as text."""
    return ", ".join(f"{label} {stats[key]:{spec}}" for key, (label, spec) in EPOCH_STATS.items() if key in stats)


class NumberList(click.ParamType):
    """Comma-separated values, each checked by one Click type (e.g. 0.1,0.3,1); a repeated value counts once."""

    name = "x,y,..."

    def __init__(self, item_type: click.ParamType):
        self.item_type = item_type

    def convert(self, value, param, ctx):
        if isinstance(value, tuple):  # already converted: Click passes defaults through convert too
            return value
        items = [item.strip() for item in str(value).split(",")]
        if not all(items):
            self.fail(f"{value!r} is not a list of values: give one or more separated by commas, e.g. 1,2,3",
                      param, ctx)
        return tuple(dict.fromkeys(self.item_type.convert(item, param, ctx) for item in items))


@cli.command()
@click.option("--lr", "lr_values", type=NumberList(click.FloatRange(min=0, min_open=True)), default="0.1,0.3,1",
              show_default=True, help="Learning rates to try.")
@click.option("--batch-size", "batch_sizes", type=NumberList(BatchSize()), default="50,100,200", show_default=True,
              help="Batch sizes to try; 'full' is the whole training set in every step.")
@click.option("--l2", "l2_values", type=NumberList(click.FloatRange(min=0)), default="0,1e-4,1e-3",
              show_default=True, help="L2 penalties to try.")
@click.option(
    "--val-split",
    type=click.FloatRange(min=0, max=1, min_open=True, max_open=True),
    default=1 / 6,
    show_default="1/6",
    help="The fraction of the training set held out to score each setting on (1/6 of MNIST's is 10,000 images).",
)
@click.option("--epochs", type=click.IntRange(min=1), help=default_help("Passes over the training set.", "epochs"))
@click.option("--seed", type=int,
              help=default_help("Random seed for the validation split and the shuffling.", "seed"))
@config_option("A TOML file of the other settings (momentum, schedule, ...); --epochs and --seed override it.")
@dataset_option
@data_option
@click.option("--out", "out_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the best settings to this TOML file, for `softmax train --config FILE`.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar and no table: only the best settings.")
@json_option
def tune(lr_values, batch_sizes, l2_values, val_split, epochs, seed, config_file, dataset_name, data, out_path,
         quiet, as_json):
    """Choose the learning rate, batch size and L2 penalty by grid search on a validation split.

    Every combination of the --lr, --batch-size and --l2 values is trained on the training set minus
    a held-out part (--val-split) and scored on that part. The test set is never used, so the test
    accuracy `softmax train` reports with the chosen settings stays a fair estimate.

    The table ranks the settings by validation loss (the mean cross-entropy on the held-out images),
    lowest first: it moves smoothly with the weights, while accuracy moves in steps of one image and
    often ties. --out writes the best as a config file with every setting; `softmax train --config
    FILE` then trains with it on the whole training set.
    """
    from .data import load_dataset
    from .tune import search, write_best_config

    if out_path is not None and not out_path.parent.is_dir():  # said now, not after the whole search
        raise click.BadParameter(f"the folder {out_path.parent} does not exist", param_hint="--out")
    base = make_config(config_file, epochs=epochs, seed=seed)
    dataset = load_dataset(data_path(data, dataset_name), name=dataset_name)
    grid_size = len(lr_values) * len(batch_sizes) * len(l2_values)
    with progress_bar(grid_size * base.epochs, 0, disable=quiet) as bar:
        result = search(base, dataset.x_train, dataset.y_train, dataset.n_classes, val_split,
                        lr_values, batch_sizes, l2_values, on_epoch=bar)
    if out_path is not None:
        write_best_config(out_path, result, dataset.name)
    best = result.best
    if as_json:
        trials = [{"rank": rank, **trial.to_dict()} for rank, trial in enumerate(result.trials, 1)]
        click.echo(json.dumps({
            "ranked_by": "val_loss", "dataset": dataset.name, "n_train": result.n_train,
            "n_validation": result.n_validation, "seconds": result.seconds, "trials": trials,
            "best": best.config.to_dict(), "best_val_accuracy": best.val_accuracy, "best_val_loss": best.val_loss,
            "out": None if out_path is None else str(out_path),
        }))
        return
    if not quiet:
        click.echo(tune_table(result.trials))
        click.echo(f"\n{grid_size} settings in {result.seconds:.1f} s, each trained on {result.n_train:,} images and "
                   f"scored on {result.n_validation:,} held out of the {dataset.name} training set.")
    click.echo(
        f"best, by validation loss: lr {best.config.lr:g}, batch size {format_batch_size(best.config.batch_size)}, "
        f"l2 {best.config.l2:g} (validation accuracy {best.val_accuracy:.2%}, loss {best.val_loss:.4f})"
    )
    if out_path is not None:
        click.echo(f"written to {out_path}; train with it:  softmax train --config {out_path}")
    else:
        click.echo("save these settings for `softmax train --config FILE` with --out FILE")


def tune_table(trials) -> str:
    """Return the ranked table `softmax tune` prints, one row per trial, best first."""
    lines = [f"{'rank':>4}  {'lr':>8}  {'batch size':>10}  {'l2':>8}  {'val accuracy':>12}  {'val loss':>8}  "
             f"{'seconds':>7}"]
    for rank, trial in enumerate(trials, 1):
        config = trial.config
        settings = f"{rank:>4}  {config.lr:>8g}  {format_batch_size(config.batch_size):>10}  {config.l2:>8g}"
        scores = (f"{'diverged':>12}  {'-':>8}" if trial.problem
                  else f"{trial.val_accuracy:>12.2%}  {trial.val_loss:>8.4f}")
        lines.append(f"{settings}  {scores}  {trial.seconds:>7.2f}")
    return "\n".join(lines)


def format_batch_size(batch_size: int) -> str:
    return "full" if batch_size == 0 else str(batch_size)


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
        code = EXIT_INTERRUPTED
    sys.exit(code if isinstance(code, int) else 0)
