"""The text the commands print: tables, one epoch's figures, a model's facts, an image drawn in characters.

Names come from users and from model files (paths, class names, metadata): whatever holds one is printed through
`say` or `error_line`, which escape control characters (errors.printable), so that a file called
$'a\\e]0;title\\a.png' cannot retitle or clear the terminal, nor a newline in a name add a line.
"""

from __future__ import annotations

import click

from ..errors import printable

EPOCH_STATS = {"loss": ("loss", ".4f"), "accuracy": ("training accuracy", ".2%"),
               "val_loss": ("validation loss", ".4f"), "val_accuracy": ("validation accuracy", ".2%")}
SHADES = " .:-=+*#%@"  # from black (0) to full ink (1): the model sees a light digit on black


def say(text: str, err: bool = False) -> None:
    """Print text, line by line with its control characters escaped, on stdout (stderr with err)."""
    click.echo("\n".join(map(printable, text.split("\n"))), err=err)


def error_line(message: str) -> str:
    """Return the line a problem is shown as on stderr, its control characters escaped."""
    return f"softmax: error: {printable(message)}"


def format_epoch(stats: dict) -> str:
    """Return one epoch's loss and training accuracy (and their validation values, when recorded) as text; a tune
    trial's epoch is named by its trial and settings first."""
    if "trial" in stats:
        return (f"trial {stats['trial']}/{stats['trials']} (lr {stats['lr']:g}, batch size "
                f"{format_batch_size(stats['batch_size'])}, l2 {stats['l2']:g}) epoch {stats['epoch']}/{stats['epochs']}: "
                + format_epoch({key: value for key, value in stats.items() if key != "trial"}))
    return ", ".join(f"{label} {stats[key]:{spec}}" for key, (label, spec) in EPOCH_STATS.items() if key in stats)


def format_matrix(matrix, names) -> str:
    """Return the confusion matrix as text, one row per true class, every column as wide as the widest entry."""
    width = max(6, *(len(str(v)) + 1 for row in matrix for v in row), *(len(n) + 1 for n in names))
    lines = [" " * width + "".join(f"{n:>{width}}" for n in names)]
    lines += [f"{name:>{width}}" + "".join(f"{v:>{width}}" for v in row) for name, row in zip(names, matrix)]
    return "\n".join(lines)


def format_batch_size(batch_size) -> str:
    return str(batch_size)


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
        ("data set", metadata["dataset"] if metadata["data_path"] is None
         else f"{metadata['dataset']}, from {metadata['data_path']}"),
        ("image shape", f"{height}x{width} ({height * width} features)"),
        ("classes", f"{len(saved.class_names)}: {', '.join(saved.class_names)}"),
        ("framing", saved.framing),
        ("preprocessing", saved.preprocess),
        ("test accuracy", "not measured" if accuracy is None else f"{accuracy:.2%}"),
        ("training seconds", f"{metadata['train_seconds']:.2f}"),
        ("epochs run", str(len(history))),
    ]
    features, split = metadata.get("feature_names"), metadata.get("split")
    if features is not None:  # a table's model: its features in place of the image's shape, framing, preprocessing
        shown = ", ".join(features[:12]) + (f", … ({len(features)} in all)" if len(features) > 12 else "")
        rows[4:8] = [("features", f"{len(features)}: {shown}"), rows[5]]
        if split is not None:
            rows.insert(6, ("test split", f"{split['test_fraction']:.0%} of {split['rows']:,} rows held out, "
                                          f"stratified, seed {split['seed']}"))
    if history:
        rows.append(("first epoch", format_epoch(history[0])))
        rows.append(("last epoch", format_epoch(history[-1])))
    validated = [(stats["epoch"], stats["val_loss"]) for stats in history if "val_loss" in stats]
    if validated:
        epoch, val_loss = min(validated, key=lambda pair: pair[1])
        rows.append(("best validation loss", f"{val_loss:.4f} (epoch {epoch})"))
    if metadata.get("best_epoch") is not None:
        rows.append(("weights kept", f"epoch {metadata['best_epoch']} (stopped early)"))
    if metadata.get("added") is not None:
        rows.append(("examples added", added_text(metadata["added"])))
        rows.append(("  their fingerprint", metadata["added"]["fingerprint"]))
    rows.append(("W, b", f"{saved.W.shape} {saved.W.dtype}, {saved.b.shape} {saved.b.dtype}"))
    rows.append(("file size", f"{file_bytes:,} bytes"))
    rows.append(("settings", ""))
    rows += [(f"  {name}", str(value)) for name, value in metadata["settings"].items()]
    return rows


def added_text(added: dict) -> str:
    """Return the examples `train --add` added (store's "added" field) in words: how many, of which classes, weight."""
    count = added["count"]
    total = sum(count.values())
    per_class = ", ".join(f"{name}: {n}" for name, n in count.items())
    return (f"{total} example{'' if total == 1 else 's'} ({per_class}), each weighing {added['weight']:g} "
            "training images")


def facts_table(title: str, rows: list[tuple[str, str]]) -> str:
    """Return a title line and its (label, text) rows, the labels in one column."""
    width = max(len(label) for label, _ in rows) + 2
    return "\n".join([title, *(f"  {label:<{width}}{text}".rstrip() for label, text in rows)])


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


class PredictionTable:
    """The table `softmax predict` prints, one row per image; its columns are sized from all paths up front.

    Paths and class names are shown escaped (errors.printable): a row is one line whatever the names hold.
    """

    def __init__(self, paths, class_names):
        self.class_names = [printable(name) for name in class_names]
        self.path_width = max(len("path"), *(len(printable(path)) for path in paths))
        self.name_width = max(len("class"), *(len(name) for name in self.class_names))

    def header(self, top_k: int) -> str:
        """Return the header line; with top_k > 1 it names the column of the next likeliest classes."""
        line = f"{'path':<{self.path_width}}  {'class':<{self.name_width}}  probability  entropy (bits)"
        return line + ("  next likeliest" if top_k > 1 else "")

    def row(self, path, probabilities, ranked, entropy: float) -> str:
        """Return the row of one image: the likeliest class (ranked[0]) first, then the other ranked classes."""
        first, *others = ranked
        line = (
            f"{printable(path):<{self.path_width}}  {self.class_names[first]:<{self.name_width}}  "
            f"{probabilities[first]:>11.1%}  {entropy:>14.2f}"
        )
        for k in others:
            line += f"  {self.class_names[k]:<{self.name_width}} {probabilities[k]:>6.1%}"
        return line.rstrip()


def ascii_art(pixels, shape) -> str:
    """Return the image as lines of text, one per pixel row, each pixel two characters wide to look square."""
    import numpy as np  # here, not at the top: `softmax --help` needs no NumPy

    levels = (np.asarray(pixels).reshape(shape) * len(SHADES)).astype(int).clip(0, len(SHADES) - 1)
    return "\n".join("".join(SHADES[level] * 2 for level in row) for row in levels)
