"""Grid search: train every combination of learning rate, batch size and L2 strength, score each on images held
out of the training set, rank them, and write the best as a config file for `softmax train --config`.

Only the training set is ever seen here: the caller hands in training pixels and labels, so the test set stays
an unbiased estimate of the chosen model. Each trial is a run of the same pipeline as `softmax train --val-split`
(run.learn: the seeded split, then the training loop), so every trial holds out the same images. Settings are
ranked by validation loss (the mean cross-entropy on the held-out images) of the weights the run keeps (the best
epoch's with patience), lowest first: it moves smoothly with the weights, where accuracy moves in steps of one
image and ties between close settings.
"""

from __future__ import annotations

import itertools
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import run
from .config import TrainConfig
from .errors import SoftmaxError, TrainingDiverged
from .preprocess import preprocessed
from .train import split_validation

GRID_SETTINGS = ("lr", "batch_size", "l2")  # what the search varies; every other setting comes from the base
HEADER = "Chosen by `softmax tune` "          # how the config files tune writes begin, after "# "


@dataclass(frozen=True)
class Trial:
    """How one combination of settings did on the validation images; val_loss is None when training diverged."""

    config: TrainConfig
    val_loss: float | None
    val_accuracy: float | None
    seconds: float
    problem: str | None = None  # why there is no score, in one line

    def to_dict(self) -> dict:
        """Return the grid's settings and the scores as a JSON-able dict."""
        settings = {name: getattr(self.config, name) for name in GRID_SETTINGS}
        return {**settings, "val_accuracy": self.val_accuracy, "val_loss": self.val_loss,
                "seconds": self.seconds, "problem": self.problem}


@dataclass(frozen=True)
class TuneResult:
    """Every trial of a search, best first, and the images it was trained and scored on."""

    trials: list[Trial]
    n_train: int
    n_validation: int
    val_split: float
    seconds: float

    @property
    def best(self) -> Trial:
        return self.trials[0]


def expand_grid(base: TrainConfig, lr, batch_size, l2) -> list[TrainConfig]:
    """Return one copy of base per combination of the given values, in the order lr, then batch size, then l2."""
    return [base.replace(lr=a, batch_size=b, l2=c) for a, b, c in itertools.product(lr, batch_size, l2)]


def naming_the_trial(on_epoch, number: int, grid: list[TrainConfig]) -> Callable[[dict], None] | None:
    """Return on_epoch with each epoch's stats told which trial they are from: its number, the grid's size and the
    settings that vary (lr, batch_size, l2)."""
    if on_epoch is None:
        return None
    config = grid[number - 1]
    trial = {"trial": number, "trials": len(grid), "lr": config.lr, "batch_size": config.batch_size, "l2": config.l2,
             "epochs": config.epochs}
    return lambda stats: on_epoch({**stats, **trial})


def run_trial(config: TrainConfig, pixels, labels, n_classes: int, val_split: float,
              on_epoch: Callable[[dict], None] | None = None) -> Trial:
    """Return the validation scores of the weights that training with config on (pixels, labels) keeps.

    The run holds out val_split of the images as `softmax train --val-split` does; config's own val_split (what
    the chosen settings will train with) is not used for the search.
    """
    started = time.perf_counter()
    try:
        _, result = run.learn(config.replace(val_split=val_split), pixels, labels, n_classes, on_epoch=on_epoch)
    except TrainingDiverged as e:  # a learning rate too large for the others diverges; the rest of the grid goes on
        return Trial(config, None, None, time.perf_counter() - started, problem=str(e))
    seconds = time.perf_counter() - started
    kept = result.history[result.best_epoch - 1] if result.best_epoch else result.history[-1]
    if not math.isfinite(kept["val_loss"]):  # finite training steps can still average to weights that overflow
        problem = f"training diverged: the validation loss is {kept['val_loss']}"
        return Trial(config, None, None, seconds, problem=problem)
    return Trial(config, kept["val_loss"], kept["val_accuracy"], seconds)


def rank(trials: list[Trial]) -> list[Trial]:
    """Return the trials best first: lowest validation loss, then highest accuracy; diverged ones last, in order."""
    return sorted(trials, key=lambda t: (t.val_loss is None, t.val_loss or 0.0, -(t.val_accuracy or 0.0)))


def search(
    base: TrainConfig,
    pixels: np.ndarray,
    labels: np.ndarray,
    n_classes: int,
    val_split: float,
    lr,
    batch_size,
    l2,
    on_epoch: Callable[[dict], None] | None = None,
) -> TuneResult:
    """Return the ranked trials of every grid combination, trained on the training images minus a validation split.

    pixels and labels are the training set only, uint8 images before base.preprocess (done once here, for every
    trial). The split is seeded by base.seed, so each combination sees the same images; on_epoch is called after
    every epoch of every trial, its stats naming the trial (`trial`, `trials`, `lr`, `batch_size`, `l2`, `epochs`). Raises SoftmaxError when no combination trained without diverging, so the best
    trial always has scores.
    """
    # The split of the indices, to refuse a split that leaves no images on one side before any training, and to
    # count each side: the same function, seed and sizes as the split of the images each run makes.
    indices = np.arange(len(labels))
    n_train, n_validation = (len(part) for part in split_validation(indices, indices, val_split, base.seed)[1::2])
    started = time.perf_counter()
    pixels = preprocessed(pixels, base.preprocess)  # from the cache when deskewed before
    grid = expand_grid(base, lr, batch_size, l2)
    trials = [run_trial(config, pixels, labels, n_classes, val_split, naming_the_trial(on_epoch, number, grid))
              for number, config in enumerate(grid, 1)]
    if all(trial.problem for trial in trials):
        raise SoftmaxError(f"training diverged with every one of the {len(trials)} settings: try smaller {{setting}} "
                           "values", setting="lr")
    return TuneResult(rank(trials), n_train, n_validation, val_split, time.perf_counter() - started)


def best_config_text(result: TuneResult, dataset_name: str, path: str | Path) -> str:
    """Return the best settings as TOML, every TrainConfig setting, under comments saying how they were chosen."""
    best = result.best
    header = [
        f"{HEADER}from {len(result.trials)} combinations of lr, batch_size and l2, ranked by",
        (f"validation loss on {result.n_validation:,} images held out of the {dataset_name} training set"
         f" (val_split {result.val_split:.4g});"),
        f"trained on the other {result.n_train:,}. The test set was not used.",
        f"Validation accuracy {best.val_accuracy:.2%}, validation loss {best.val_loss:.4f}.",
        f"Train with:  softmax train --config {path}",
    ]
    lines = [f"# {line}" for line in header]
    lines += [f"{name} = {toml_value(value)}" for name, value in best.config.to_dict().items()]
    return "\n".join(lines) + "\n"


def toml_value(value) -> str:
    """Return a setting (a number or a string) written as a TOML value that reads back as the same type."""
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string of plain text is a valid TOML basic string
    if isinstance(value, float):
        return repr(value)  # always has a '.' or an exponent (or is inf/nan), so TOML reads a float back
    return str(value)


def write_best_config(path: str | Path, result: TuneResult, dataset_name: str) -> Path:
    """Return path, after writing the best settings there as a TOML config file, atomically."""
    from .safe_io import write_atomically

    path = Path(path)
    text = best_config_text(result, dataset_name, path)
    write_atomically(path, lambda temporary: Path(temporary).write_text(text), "write the best settings to",
                     example_name="best.toml")
    return path


def is_tune_file(path) -> bool:
    """Return whether the file at path is a config file tune wrote (so that another one may replace it)."""
    try:
        with open(path, "rb") as file:
            start = file.read(len(HEADER) + 2)
    except OSError:
        return False
    return start == f"# {HEADER}".encode()
