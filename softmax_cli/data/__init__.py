"""Where data comes from, and what a data set is: `load_dataset` gives a checked Dataset that knows its name.

The name (`--dataset`) decides the class names and the shape expected, also when the files come from a local
path (`--data`, SOFTMAX_DATA), and data that is not the named set is refused; name=None reads the user's own
data as it is. `check_model_fits` refuses to evaluate a model on data it was not made for.

    datasets.py  what each named data set is: class names, image shape, the fingerprint of its training set
    sources.py   keras.datasets, scikit-learn's digits, a local .npz or IDX folder
    formats.py   reading IDX and .npz files within bounds checked from their headers
    cache.py     fast verified copies of local data sets and of arrays computed from them
    dataset.py   the Dataset and its checks
"""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import SoftmaxError
from . import datasets, sources
from .cache import cached_array
from .dataset import Dataset, make_dataset
from .datasets import FASHION_CLASS_NAMES, KNOWN
from .formats import IDX_FILES, KEYS

__all__ = ["Dataset", "load_dataset", "check_model_fits", "cached_array", "FASHION_CLASS_NAMES", "IDX_FILES",
           "KEYS", "KNOWN"]


def load_dataset(path: str | os.PathLike | None = None, name: str | None = "mnist") -> Dataset:
    """Return the data set called name, read from path (a Keras .npz, or a folder of one or four IDX files) if given.

    With name None, the data at path is the user's own: its name is its file's or folder's, its class names its
    .npz's class_names or "0".."k-1"; unless its training set is a known data set's genuine one (by fingerprint),
    which then gets that data set's name and class names.
    """
    spec = datasets.named(name)
    if path is None:
        if spec is None:
            raise SoftmaxError("your own data needs a path: set {setting} to its .npz or IDX folder", setting="data")
        arrays, where, source = sources.download(spec.name, spec.title)
        own_name, key = spec.name, None
    else:
        arrays, where, source, own_name, key = sources.read_local(Path(path), name)
    local = None if path is None else os.path.abspath(path)
    local = local if local is not None and local.isprintable() and len(local) <= 4096 else None  # as metadata holds
    if spec is None:
        dataset = make_dataset(own_name, arrays, where, source, cache_key=key, path=local)
        spec = datasets.identify(dataset.fingerprint())
        if spec is None:
            return dataset
    dataset = make_dataset(spec.name, arrays, where, source, spec.class_names, cache_key=key, path=local)
    datasets.check_is(spec, dataset)
    return dataset


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
    if tuple(saved.image_shape) != tuple(dataset.image_shape):
        size = "x".join(map(str, saved.image_shape))
        raise SoftmaxError(f"the model takes {size}-pixel images but {dataset.source} holds "
                           f"{'x'.join(map(str, dataset.image_shape))}: {advice}", setting="dataset")


def _listed(names, shown: int = 4) -> str:
    """Return class names as a message lists them: the first few, then how many more."""
    names = list(names)
    more = f", … ({len(names)} in all)" if len(names) > shown else ""
    return ", ".join(names[:shown]) + more
