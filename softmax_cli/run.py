"""A training run as a whole, fresh or resumed: check where it will write, split, fit, score, save.

`train_model` is what `softmax train` does, as a library function that prints nothing: the CLI, bench/ and the
tests call it, and `learn` (split off the validation set, fit) is the part the estimator and tune share with it.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import model, store
from .config import ADD_WEIGHT, TrainConfig
from .errors import EXIT_USAGE, SoftmaxError
from .metrics import loss_and_accuracy
from .preprocess import preprocessed
from .train import Trainer, TrainResult, checked_weights, fit, split_validation, validation_rows

HISTORY_SUFFIXES = (".csv", ".json")


@dataclass
class Resumed:
    """An interrupted run read from its checkpoint, ready to go on: its trainer and the data it was trained on."""

    path: Path
    trainer: Trainer
    dataset: str         # the data set's name, as --dataset gives it
    training_data: str   # the fingerprint of the training set it was trained on

    @property
    def config(self) -> TrainConfig:
        return self.trainer.config


def read_checkpoint(path) -> Resumed:
    """Return the run saved in the checkpoint at path, validated; any problem is one SoftmaxError line."""
    checkpoint = store.load_checkpoint(path)
    return Resumed(Path(path), Trainer.from_checkpoint(checkpoint), checkpoint.dataset, checkpoint.training_data)


def checkpoint_path_for(model_path) -> Path:
    """Return where an interrupted run's checkpoint goes: next to the model, model.npz -> model.ckpt.npz."""
    model_path = Path(model_path)
    stem = model_path.name[: -len(".npz")] if model_path.name.endswith(".npz") else model_path.name
    return model_path.with_name(f"{stem}.ckpt.npz")


@dataclass
class RunResult:
    """What a training run did: its scores and files, or, when interrupted, where its checkpoint is."""

    config: TrainConfig
    dataset: str
    fit: TrainResult
    model_path: Path
    checkpoint_path: Path | None = None  # set when the run was interrupted and saved there
    test_loss: float | None = None
    test_accuracy: float | None = None
    warning: str | None = None  # a fit that ended no better than chance on its own training data says so here
    added: dict | None = None  # the examples added to the training set (data.examples.Examples.summary), if any

    @property
    def interrupted(self) -> bool:
        return self.checkpoint_path is not None

    def summary(self) -> dict:
        """Return the run as the JSON object `softmax train --json` prints."""
        return {
            "test_accuracy": self.test_accuracy,
            "test_loss": self.test_loss,
            "train_seconds": self.fit.train_seconds,
            "epochs": self.fit.epochs_run,
            "stopped_early": self.fit.stopped_early,
            "best_epoch": self.fit.best_epoch,
            "model": str(self.model_path),
            "dataset": self.dataset,
            "settings": self.config.to_dict(),
            "warning": self.warning,
            "added": self.added,
        }


def check_destinations(model_path, history_path=None, reads: Iterable = (), resumed_from=None) -> None:
    """Raise SoftmaxError, before any work, unless the run can write its model, history and checkpoint where asked.

    reads are the files the same command reads (data, config): none of them is ever written over. A resumed run
    (resumed_from, its checkpoint) saves a new interruption back into that checkpoint, and nothing else there.
    An existing model file is only replaced by a model file, a history file by a history file.
    """
    from .safe_io import check_destination

    reads = [Path(path) for path in reads if path is not None and Path(path).exists()]
    if history_path is not None and Path(history_path).suffix not in HISTORY_SUFFIXES:
        raise SoftmaxError("{setting} must end in .csv or .json", EXIT_USAGE, setting="history")
    checkpoint = Path(resumed_from) if resumed_from is not None else checkpoint_path_for(model_path)
    others = [*reads, *([checkpoint] if resumed_from is not None else [])]
    check_destination(model_path, "model file", reads=others, is_kind=store.is_model_file)
    check_destination(checkpoint, "checkpoint", reads=reads, is_kind=store.is_checkpoint_file)
    if history_path is not None:
        check_destination(history_path, "history file", reads=[*others, model_path], is_kind=is_history_file)


def learn(config: TrainConfig, pixels: np.ndarray, labels: np.ndarray, n_classes: int,
          trainer: Trainer | None = None, on_epoch: Callable[[dict], None] | None = None,
          should_stop: Callable[[], bool] | None = None, sample_weight: np.ndarray | None = None,
          ) -> tuple[Trainer, TrainResult]:
    """Return the trainer and the result of fitting config to (pixels, labels) less config's validation split.

    pixels are uint8 images or float features; a given trainer (a resumed run) goes on from where it stopped.
    """
    validation = None
    if config.val_split:
        if sample_weight is not None:  # the training rows' weights
            sample_weight = checked_weights(sample_weight, len(labels))[
                validation_rows(len(labels), config.val_split, config.seed)[0]]
        pixels, labels, *validation = split_validation(pixels, labels, config.val_split, config.seed)
    if trainer is None:
        trainer = Trainer(config, int(np.prod(pixels.shape[1:])), n_classes)
    return trainer, fit(trainer, pixels, labels, on_epoch=on_epoch, validation=validation, should_stop=should_stop,
                        sample_weight=sample_weight)


def no_better_than_chance(result: TrainResult, labels: np.ndarray) -> str | None:
    """Return a warning when the last epoch's training accuracy is no better than always answering the commonest
    class (as SoftmaxRegression's ConvergenceWarning says), else None."""
    chance = np.bincount(labels).max() / len(labels)
    accuracy = result.history[-1]["accuracy"] if result.history else 0.0
    if accuracy > chance:
        return None
    return (f"the training accuracy ({accuracy:.2%}) is no better than always answering the commonest class "
            f"({chance:.2%}): it learned nothing it can use; check that the features say something about the labels, or "
            "try another learning rate or more epochs")


def fitted_to_the_table(config: TrainConfig, dataset, given) -> TrainConfig:
    """Return config with the learning rate, batch size and epochs chosen from a table's own data where the user did
    not choose them (given: the names of the settings the user chose), as SoftmaxRegression(lr='auto') chooses them:
    the step its standardised features' curvature allows, scaling.MIN_BATCHES batches an epoch at least, and at least
    scaling.MIN_STEPS gradient steps. Images keep config's."""
    if not dataset.is_table:
        return config
    from . import scaling

    features = scaling.Standardiser.fitted(dataset.x_train).transform(dataset.x_train)
    n_train = len(dataset.y_train) - (int(round(len(dataset.y_train) * config.val_split)) if config.val_split else 0)
    batch_size = config.batch_size if "batch_size" in given else scaling.batch_size_for(config.batch_size, n_train)
    return config.replace(lr=None if "lr" in given else scaling.step_size(features, config.momentum),
                          batch_size=batch_size,
                          epochs=None if "epochs" in given else scaling.epochs_for(config.epochs, n_train, batch_size))


def train_model(dataset, config: TrainConfig, model_path, *, resumed: Resumed | None = None, history_path=None,
                reads: Iterable = (), on_epoch: Callable[[dict], None] | None = None,
                should_stop: Callable[[], bool] | None = None, added=None, add_weight: float | None = None,
                ) -> RunResult:
    """Return the RunResult of training on dataset (a data.Dataset) and saving the model to model_path.

    With resumed, the run goes on from its checkpoint (its settings win; config must be resumed.config). When
    should_stop() turns true, the run is saved as a checkpoint for resuming instead, and no model is written.
    added (data.examples.Examples) are trained on besides dataset's training set, each weighing add_weight
    (default config.ADD_WEIGHT) images of it (as copies that share the weight: data.examples.training_rows); the
    test set stays dataset's own.
    """
    from .data.examples import training_rows

    model_path = Path(model_path)
    add_weight = ADD_WEIGHT.check(ADD_WEIGHT.default if add_weight is None else add_weight)
    check_destinations(model_path, history_path, reads, resumed.path if resumed else None)
    training_data = training_fingerprint(dataset, added, add_weight)
    if resumed is not None and (resumed.training_data != training_data
                                or resumed.trainer.n_classes != dataset.n_classes):
        raise SoftmaxError(f"{resumed.path} was made on other data: resume with the {{setting}} it was trained on "
                           "(and the same {add}, if it was given any)", setting="data", mentions=("add",))
    if (dataset.y_train == dataset.y_train[0]).all():  # said now, not at the save after the whole run
        raise SoftmaxError(f"{dataset.source}: every training image has the label "
                           f"{dataset.class_names[dataset.y_train[0]]}: a classifier needs at least two classes")
    pixels = preprocessed(dataset.x_train, config.preprocess, key=dataset.fingerprint())
    labels, sample_weight = dataset.y_train, None
    if added is not None:
        added_pixels, added_labels, added_weights = training_rows(added, add_weight, len(labels))
        pixels = np.concatenate([pixels, preprocessed(added_pixels, config.preprocess)])
        labels = np.concatenate([labels, added_labels])
        sample_weight = np.concatenate([np.ones(len(dataset.y_train), np.float32), added_weights])
    scaler = None
    if dataset.is_table:  # features of any scales: trained standardised, the model folded back to the raw ones
        from .scaling import Standardiser

        scaler = Standardiser.fitted(pixels)
        pixels = scaler.transform(pixels)
    trainer, result = learn(config, pixels, labels, dataset.n_classes,
                            resumed.trainer if resumed else None, on_epoch, should_stop, sample_weight)
    if scaler is not None:
        W, b = scaler.fold(result.W, result.b)
        result = dataclasses.replace(result, W=W.astype(np.float32), b=b.astype(np.float32))
    run = RunResult(config, dataset.name, result, model_path, warning=no_better_than_chance(result, dataset.y_train),
                    added=None if added is None else added.summary(add_weight))
    if result.interrupted:
        run.checkpoint_path = resumed.path if resumed else checkpoint_path_for(model_path)
        store.save_checkpoint(run.checkpoint_path, trainer.to_checkpoint(dataset.name, training_data))
        return run
    test_features = model.features(preprocessed(dataset.x_test, config.preprocess))
    run.test_loss, run.test_accuracy = loss_and_accuracy(result.W, result.b, test_features, dataset.y_test)
    metadata = store.model_metadata(config, dataset, result, run.test_loss, run.test_accuracy, added=run.added)
    store.save_model(model_path, result.W, result.b, metadata)
    if history_path is not None:
        write_history(result.history, history_path)
    if resumed is not None:
        resumed.path.unlink(missing_ok=True)  # the run it held is finished and saved
    return run


def training_fingerprint(dataset, added=None, add_weight: float = 1.0) -> str:
    """Return the fingerprint of what a run trains on: dataset's training set, with added examples and their weight
    if any (so that a run resumes only on the same examples)."""
    if added is None:
        return dataset.fingerprint()
    import hashlib

    return hashlib.sha256(f"{dataset.fingerprint()} {added.fingerprint()} {float(add_weight)!r}".encode()).hexdigest()


def history_text(history: list[dict], suffix: str) -> str:
    """Return the per-epoch history as CSV or JSON text (suffix ".csv" or ".json"), every epoch's keys as columns."""
    if suffix == ".json":
        return json.dumps(history, indent=1, allow_nan=False) + "\n"
    columns = list(dict.fromkeys(key for stats in history for key in stats))
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(history)
    return text.getvalue()


def write_history(history: list[dict], path) -> None:
    """Write the per-epoch history to path as CSV or JSON, whichever its name says, atomically; returns None."""
    from .safe_io import write_atomically

    text = history_text(history, Path(path).suffix)
    write_atomically(path, lambda temporary: Path(temporary).write_text(text), "write the history to",
                     example_name="history.csv")


def is_history_file(path) -> bool:
    """Return whether the file at path is a history softmax-cli wrote (so that it may be replaced by another)."""
    try:
        with open(path, "rb") as file:
            start = file.read(64)
    except OSError:
        return False
    return start.startswith(b"epoch,") or start.lstrip().startswith(b"[") and b'"epoch"' in start or start == b"[]\n"

