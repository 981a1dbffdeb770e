"""Teaching a model a person's own labelled examples in about a second: the drawing page's "Teach the model".

A lesson goes on training the model from where it is, with its own settings (learning rate, momentum, batch size,
l2, averaging; the loss LESSON_LOSS), for TEACH_EPOCHS epoch over its data set's training images plus the examples. Each example
weighs LESSON_WEIGHT images, as copies that share that weight (data.examples.training_rows), as `softmax train --add`
weighs its examples; `train --add` trains from scratch instead, which takes the model's whole run.
Every lesson starts from the model as it was loaded: teaching twice with more drawings is one lesson of them all.

What a lesson did is measured honestly, never on the examples a model was taught: the examples are dealt into up to
FOLDS folds (3 from BIG_LESSON examples) (each class spread over them), and each fold is read by a model taught on the other folds only. "before"
is the untaught model on the same examples. Measured by bench/teach.py on scikit-learn's digits (writers not in
MNIST, as a stand-in for a person's drawings): the same writers' other digits, read at 74.5 % by the deskewed MNIST
model, are read at 86.8 % after a lesson of 5 of each digit (86.8 % by `train --add`), MNIST's test set going from
95.04 % to 94.55 % (94.71 %); a lesson of 500 drawings answers in 0.44 s (0.61 s beside a busy core).

Nothing here prints or writes a file: the taught model is held in memory (Lesson.model) with its file's bytes
(Lesson.file), which every command reads once saved.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .config import TrainConfig
from .errors import SoftmaxError

TEACH_EPOCHS = 1  # the lesson's epochs: one pass reads the examples as well as the whole run does (see above)
FOLDS = 5         # the folds of the honest measure: each costs one more lesson
BIG_LESSON = 200  # from this many examples, 3 folds (of 67 and more: enough to measure), so that 500 take under 1 s
# The images of the data set each example weighs: chosen on bench/teach.py's tuning half by `train --add`'s rule (the
# lightest within a point of the best reading of the other digits that keeps MNIST's validation accuracy within half
# a point): 5 of each digit taught at 100 read 84.2 % of the other digits, MNIST 95.00 % (95.30 % untaught); at
# 150 and 200, 84.8 % and 84.7 %, MNIST 94.77 % and 94.78 %.
LESSON_WEIGHT = 100.0
# The loss a lesson takes, whatever the model was trained with: the cross-entropy's gradient grows with how wrong the
# model is on an example, the squared error's stays small. On bench/teach.py's tuning half, the preset "best" (mse)
# taught 5 of each digit read the other digits at 81.8 % with its own loss and 83.9 % with the cross-entropy (MNIST
# validation 95.42 % untaught, 95.25 % and 95.06 %).
LESSON_LOSS = "cross-entropy"
# The added copies of all examples together, at most this fraction of the data set's images: 500 drawings are
# then 24 copies each (of 8 images' weight) rather than 100 (of 2), and a lesson of them stays within a second.
EXTRA_ROWS = 0.2


class CannotTeach(SoftmaxError):
    """The model cannot be taught: its training data cannot be had (the message says why and what to do)."""


@dataclass(frozen=True, eq=False)
class Lesson:
    """What teaching did: the taught model, its file, and its figures."""

    model: object            # store.SavedModel, the taught model
    file: bytes              # its model file, as save_model writes it
    examples: int
    counts: dict             # class name -> examples of it
    before: float            # the untaught model's accuracy on the examples
    after: float | None      # each fold read by a model taught on the others (None: too few examples to fold)
    folds: int
    test_before: float | None  # the data set's test accuracy, untaught and taught
    test_after: float | None
    seconds: float

    def to_dict(self) -> dict:
        """Return the figures as plain JSON values (what POST /api/learn answers)."""
        return {"examples": self.examples, "counts": self.counts, "before": self.before, "after": self.after,
                "folds": self.folds, "test_accuracy_before": self.test_before,
                "test_accuracy_after": self.test_after, "seconds": round(self.seconds, 3)}


class Teacher:
    """Teaches lessons to a model: the model as loaded (a store.SavedModel) and its training data, which
    load_data() returns (a data.Dataset) at the first lesson; a problem loading it is a SoftmaxError then."""

    def __init__(self, saved, load_data: Callable[[], object]):
        self.saved, self._load_data = saved, load_data
        self._data = None  # (dataset, its preprocessed training images, its preprocessed test images)
        self._loading = threading.Lock()

    def lesson(self, examples) -> Lesson:
        """Return the Lesson of teaching the model examples (data.examples.Examples, framed for it)."""
        from . import store
        from .data.examples import training_rows
        from .metrics import loss_and_accuracy
        from .model import features
        from .preprocess import preprocessed

        started = time.perf_counter()
        dataset, pixels, test_pixels = self._training_data()
        saved = self.saved
        config = TrainConfig.from_dict(saved.metadata["settings"], "the model's settings").replace(
            epochs=TEACH_EPOCHS, loss=LESSON_LOSS)
        config = dataclasses.replace(config, val_split=0.0, patience=0)  # every image is taught on
        weight = LESSON_WEIGHT
        taught = dataclasses.replace(examples, pixels=preprocessed(examples.pixels, saved.preprocess))
        extra_rows = max(len(examples), int(EXTRA_ROWS * len(pixels)))

        def taught_on(members: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            """Return the (W, b) of the lesson of the examples numbered members."""
            part = dataclasses.replace(taught, pixels=taught.pixels[members], labels=taught.labels[members])
            rows, labels, weights = training_rows(part, weight, extra_rows)
            return _go_on(config, saved.W, saved.b, np.concatenate([pixels, rows]),
                          np.concatenate([dataset.y_train, labels]),
                          np.concatenate([np.ones(len(dataset.y_train), np.float32), weights]))

        rows = features(taught.pixels)
        before = loss_and_accuracy(saved.W, saved.b, rows, taught.labels)[1]
        folds = min(FOLDS if len(examples) < BIG_LESSON else 3, len(examples))
        after = None
        if folds >= 2:
            fold = _folds(taught.labels, folds)
            right = 0
            for k in range(folds):
                W, b = taught_on(np.flatnonzero(fold != k))
                held = fold == k
                right += loss_and_accuracy(W, b, rows[held], taught.labels[held])[1] * np.count_nonzero(held)
            after = float(right / len(examples))
        W, b = taught_on(np.arange(len(examples)))
        test_rows = features(test_pixels)
        test_before = loss_and_accuracy(saved.W, saved.b, test_rows, dataset.y_test)[1]
        test_loss, test_after = loss_and_accuracy(W, b, test_rows, dataset.y_test)
        metadata = {**saved.metadata, "test_loss": test_loss, "test_accuracy": test_after,
                    "added": examples.summary(weight)}
        file = store.model_bytes(W, b, metadata)
        return Lesson(store.model_from_bytes(file), file, len(examples), examples.counts(), before, after, folds,
                      test_before, test_after, time.perf_counter() - started)

    def _training_data(self):
        """Return the data set and its preprocessed training and test images, loaded and checked once."""
        with self._loading:
            if self._data is None:
                from .data import check_model_fits
                from .preprocess import preprocessed

                try:
                    dataset = self._load_data()
                    if dataset.is_table:
                        raise SoftmaxError(f"{dataset.source} is a table of features, not the images the model "
                                           "was trained on")
                    check_model_fits(self.saved, dataset)
                except SoftmaxError as e:
                    raise CannotTeach(str(e)) from None
                key = dataset.fingerprint()
                self._data = (dataset, preprocessed(dataset.x_train, self.saved.preprocess, key=key),
                              preprocessed(dataset.x_test, self.saved.preprocess))
            return self._data


def _go_on(config: TrainConfig, W, b, pixels, labels, sample_weight) -> tuple[np.ndarray, np.ndarray]:
    """Return the (W, b) of training on from W and b with config over (pixels, labels) with sample weights."""
    from .train import Trainer, fit

    trainer = Trainer.starting_from(config, W, b, pixels.dtype)
    result = fit(trainer, pixels, labels, sample_weight=sample_weight)
    return result.W, result.b


def _folds(labels: np.ndarray, folds: int) -> np.ndarray:
    """Return each example's fold: the examples of each class dealt round the folds in turn, a class's first one
    to the fold after the last class's last one, so that the folds' sizes differ by one at most."""
    fold = np.empty(len(labels), np.intp)
    dealt = 0
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        fold[members] = (dealt + np.arange(len(members))) % folds
        dealt += len(members)
    return fold
