"""Where data comes from, and what a data set is: `load_dataset` gives a checked Dataset that knows its name.

The name (`--dataset`) decides the class names and the shape expected, also when the files come from a local
path (`--data`, SOFTMAX_DATA), and data that is not the named set is refused; name=None reads the user's own
data as it is. `check_model_fits` refuses to evaluate a model on data it was not made for.

    datasets.py  what each named data set is: class names, image shape, the fingerprint of its training set
    sources.py   keras.datasets, scikit-learn's digits, a local .npz or IDX folder
    formats.py   reading IDX and .npz files within bounds checked from their headers
    cache.py     fast verified copies of local data sets and of arrays computed from them
    dataset.py   the Dataset and its checks
    examples.py  a person's labelled examples (train --add): class-named folders of images, or an .npz
"""

from __future__ import annotations

import dataclasses
import math
import os
from pathlib import Path

import numpy as np

from ..errors import SoftmaxError
from . import datasets, sources
from .cache import cached_array
from .dataset import Dataset, make_dataset, make_table
from .datasets import FASHION_CLASS_NAMES, KNOWN
from .formats import IDX_FILES, KEYS, is_csv, read_csv

__all__ = ["Dataset", "load_dataset", "check_model_fits", "cached_array", "FASHION_CLASS_NAMES", "IDX_FILES",
           "KEYS", "KNOWN"]


def load_dataset(path: str | os.PathLike | None = None, name: str | None = "mnist", target: str | None = None) -> Dataset:
    """Return the data set called name, read from path (a Keras .npz, or a folder of one or four IDX files) if given.

    A .csv file at path, or an .npz of feature rows (x and y, or x_train ... whose rows are no square images), is a
    table: its rows are features as they are (target names a CSV's label column), split by the tool when it has
    no test part (see dataset.make_table).

    With name None, the data at path is the user's own: its name is its file's or folder's, its class names its
    .npz's class_names or "0".."k-1"; unless its training set is a known data set's genuine one (by fingerprint),
    which then gets that data set's name and class names.
    """
    spec = datasets.named(name)
    if path is None:
        if spec is None:
            raise SoftmaxError("your own data needs a path: set {setting} to its .npz or IDX folder", setting="data")
        arrays, where, source = sources.download(spec.name, spec.title)
        own_name, key, local = spec.name, None, None
    else:
        path = Path(path)
        local = os.path.abspath(path)
        local = local if local.isprintable() and len(local) <= 4096 else None  # as a model file's metadata holds
        if path.is_file() and is_csv(path):
            _check_no_images_asked(spec, path)
            rows, labels, names = read_csv(path, target)
            return dataclasses.replace(make_table(path.resolve().stem, rows, labels, names, str(path)), path=local)
        arrays, where, source, own_name, key = sources.read_local(path, name)
        if "x" in arrays or (is_table_rows(arrays["x_train"]) and np.ndim(arrays["x_test"]) == 2):
            _check_no_images_asked(spec, path)
            return dataclasses.replace(_npz_table(arrays, own_name, source), path=local)
    if spec is None:
        dataset = make_dataset(own_name, arrays, where, source, cache_key=key, path=local)
        spec = datasets.identify(dataset.fingerprint())
        if spec is None:
            return dataset
    dataset = make_dataset(spec.name, arrays, where, source, spec.class_names, cache_key=key, path=local)
    datasets.check_is(spec, dataset)
    return dataset


def is_table_rows(x: np.ndarray) -> bool:
    """Return whether an .npz's x_train holds feature rows rather than images: 2-D, and not flattened square
    images (uint8 pixels, or of at least 8x8 pixels 0..255 or 0..1) as data sets of images save them."""
    if x.ndim != 2 or x.dtype.kind not in "iuf" or not x.size:
        return False
    side = math.isqrt(x.shape[1])
    if side * side != x.shape[1]:
        return True
    if x.dtype == np.uint8:
        return False
    return bool(side < 8 or x.min() < 0 or x.max() > 255)


def _check_no_images_asked(spec, path: Path) -> None:
    if spec is not None:
        raise SoftmaxError(f"{path} is a table of features, not {spec.title}: leave out {{setting}} to train on it",
                           setting="dataset")


def _npz_table(arrays: dict, name: str, source: str) -> Dataset:
    """Return the table an .npz of feature rows holds: x and y split by the tool, or x_train ... as they are."""
    x, y = (arrays["x"], arrays["y"]) if "x" in arrays else (arrays["x_train"], arrays["y_train"])
    test = None if "x" in arrays else (arrays["x_test"], arrays["y_test"])
    x = np.asarray(x)
    if x.ndim != 2:
        raise SoftmaxError(f"{source} (x): feature rows must have shape (n, d), got {x.shape}")
    names = arrays.get("feature_names")
    if names is not None and (names.ndim != 1 or len(names) != x.shape[1] or names.dtype.kind != "U"):
        raise SoftmaxError(f"{source} (feature_names): expected {x.shape[1]} strings, got {names.dtype} {names.shape}")
    names = tuple(map(str, names.tolist())) if names is not None else tuple(f"x{i}" for i in range(x.shape[1]))
    class_names = arrays.get("class_names")
    if class_names is not None:
        y, test = _named(class_names, y, source), test and (test[0], _named(class_names, test[1], source))
    return make_table(name, x, y, names, source, test=test)


def _named(class_names: np.ndarray, labels: np.ndarray, source: str) -> np.ndarray:
    labels = np.asarray(labels)
    if labels.dtype.kind not in "iu" or labels.min() < 0 or labels.max() >= len(class_names):
        raise SoftmaxError(f"{source}: labels must be class numbers 0..{len(class_names) - 1} of its class_names")
    return np.asarray(class_names)[labels]


def check_model_fits(saved, dataset: Dataset) -> None:
    """Raise SoftmaxError unless dataset is data the model saved (a store.SavedModel) was made for.

    Compared: the data set each is (by its training set's fingerprint, where known), the class names and the
    image shape. The advice names the data the model was trained on, so that following it works.
    """
    training_data = saved.metadata.get("training_data")
    # A format-1 model has no fingerprint: its data set's name is all it says about its data.
    model_set = datasets.identify(training_data) if training_data else KNOWN.get(saved.dataset)
    data_set = datasets.identify(dataset.fingerprint())
    if model_set is not None:
        advice = (f"evaluate it with {{setting}} {model_set.name} and {model_set.files} as its data "
                  "(or no data path, to download them)")
    else:
        advice = f"evaluate it on the data it was trained on ({saved.dataset}, whose classes are its own)"
    if model_set is not None and data_set is not None and model_set is not data_set:
        raise SoftmaxError(f"the model was trained on {model_set.name} but this data is {data_set.name} "
                           f"({dataset.source}): {advice}", setting="dataset")
    if tuple(saved.class_names) != tuple(dataset.class_names):
        raise SoftmaxError(f"the model's classes ({_listed(saved.class_names)}) are not this data's "
                           f"({_listed(dataset.class_names)}, {dataset.source}): {advice}", setting="dataset")
    model_features = saved.metadata.get("feature_names")
    if model_features is not None or dataset.is_table:
        if model_features is None or not dataset.is_table:
            kind = "a table's rows" if model_features is not None else "images"
            raise SoftmaxError(f"the model takes {kind} but {dataset.source} holds "
                               f"{'a table' if dataset.is_table else 'images'}: {advice}", setting="data")
        if tuple(model_features) != tuple(dataset.feature_names):
            raise SoftmaxError(f"the model's features ({_listed(model_features)}) are not this data's "
                               f"({_listed(dataset.feature_names)}, {dataset.source}): {advice}", setting="data")
    if tuple(saved.image_shape) != tuple(dataset.image_shape):
        size = "x".join(map(str, saved.image_shape))
        raise SoftmaxError(f"the model takes {size}-pixel images but {dataset.source} holds "
                           f"{'x'.join(map(str, dataset.image_shape))}: {advice}", setting="dataset")


def _listed(names, shown: int = 4) -> str:
    """Return class names as a message lists them: the first few, then how many more."""
    names = list(names)
    more = f", … ({len(names)} in all)" if len(names) > shown else ""
    return ", ".join(names[:shown]) + more
