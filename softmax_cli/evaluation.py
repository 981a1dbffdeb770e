"""Evaluating a saved model on a data set: which data, whether the model fits it, and its scores.

The one home of `softmax evaluate`'s work; the command parses its options and prints what `evaluate` returns,
and tests and bench call it the same way. Nothing here prints.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .config import DATASETS
from .errors import SoftmaxError


@dataclass(frozen=True)
class Evaluation:
    """A model's scores on a data set's test images."""

    dataset: object              # the data.Dataset evaluated on
    probabilities: np.ndarray    # (n_test, classes): the model's probabilities for each test image
    accuracy: float
    per_class: dict              # class name -> precision, recall, f1, support
    macro_avg: dict              # precision, recall, f1 averaged over the classes present (see metrics)
    confusion_matrix: list       # rows: true class, columns: predicted class
    report: str                  # the text report, scikit-learn's classification_report

    def to_dict(self) -> dict:
        """Return the scores as plain JSON values."""
        return {"n_test": len(self.dataset.y_test), "accuracy": self.accuracy, "per_class": self.per_class,
                "macro_avg": self.macro_avg, "confusion_matrix": self.confusion_matrix}


def dataset_to_evaluate_on(saved, dataset_name: str | None, files: bool, local_copy: bool = False) -> str | None:
    """Return the name of the data set to evaluate the model saved (a store.SavedModel) on; None: the data at hand,
    read as it is.

    dataset_name is the one asked for. Without it: files named by the user are their own data, read as they are;
    otherwise the data set the model was made for, when it is a known one (a local copy is used if it holds it).
    A model of its own data needs that data: its files, or a local copy.
    """
    if dataset_name is not None or files:
        return dataset_name
    if saved.dataset in DATASETS:
        return saved.dataset
    if not local_copy:
        raise SoftmaxError(f"the model was trained on its own data ({saved.dataset}): set {{setting}} to that "
                           "data's files", setting="data")
    return None


def remembered_data(saved):
    """Return the local data the model saved was trained on, read again from the path its file keeps, while it is
    still that data (its training set's fingerprint); None when the file keeps none, or the data is gone or changed.

    So that `softmax evaluate` after `make train` (which points SOFTMAX_DATA at a local MNIST) needs no download.
    """
    from .data import load_dataset

    path, fingerprint = saved.metadata.get("data_path"), saved.metadata.get("training_data")
    if path is None or fingerprint is None:
        return None
    try:
        dataset = load_dataset(path, name=saved.dataset if saved.dataset in DATASETS else None)
    except SoftmaxError:
        return None
    return dataset if dataset.fingerprint() == fingerprint else None


def evaluate(saved, dataset) -> Evaluation:
    """Return the scores of the model saved (a store.SavedModel) on dataset's test set (a data.Dataset).

    Data the model was not made for (another data set, other classes or image size) is refused with a SoftmaxError;
    the test images get the model's own preprocessing (e.g. deskewing) before they become features.
    """
    from .data import check_model_fits
    from .metrics import classification_summary
    from .model import features, predict_proba
    from .preprocess import preprocessed

    check_model_fits(saved, dataset)
    probabilities = predict_proba(saved.W, saved.b, features(preprocessed(dataset.x_test, saved.preprocess)))
    summary = classification_summary(dataset.y_test, probabilities.argmax(axis=1), saved.class_names)
    return Evaluation(dataset=dataset, probabilities=probabilities, **summary)
