"""A data set as training sees it: uint8 images and int64 labels, checked, with its name and class names."""

from __future__ import annotations

import hashlib
import math
import re
from dataclasses import dataclass

import numpy as np

from .. import store
from ..errors import SoftmaxError
from ..images import MNIST_BOX, MNIST_SIDE
from .cache import cached_array

CONVENTION_SAMPLE = 1000  # training images measured to tell how a data set frames its objects
# An object spanning more of the frame than midway between MNIST's box (20/28) and the whole frame fills it.
FILLS_FRAME = (MNIST_BOX / MNIST_SIDE + 1) / 2
WEIGHT_BYTES = 4  # a model file stores W as float32


@dataclass(frozen=True, eq=False)
class Dataset:
    """A train/test split of grayscale images with integer labels, checked and ready to train on."""

    name: str
    x_train: np.ndarray  # uint8, (n_train, height, width), 0..255
    y_train: np.ndarray  # int64, (n_train,), 0..n_classes-1
    x_test: np.ndarray
    y_test: np.ndarray
    class_names: tuple[str, ...]
    source: str  # where it was read from, for messages and the model file
    cache_key: str | None = None  # the cache key of its source, if read through the cache: its fingerprint is kept too
    path: str | None = None  # the local files' absolute path (None: downloaded or bundled), kept in the model file
    # A table's (a CSV's, or an .npz of feature rows): x is float32 (n, d) rows of these named features, no images.
    feature_names: tuple[str, ...] | None = None
    split: dict | None = None  # how the tool split a source with no test part: seed, test_fraction, fingerprint

    @property
    def is_table(self) -> bool:
        return self.feature_names is not None

    @property
    def image_shape(self) -> tuple[int, int]:
        """The images' (height, width); a table's rows are (1, d): one row of d features, as a model file says."""
        return (1, self.x_train.shape[1]) if self.is_table else self.x_train.shape[1:]

    @property
    def n_classes(self) -> int:
        return len(self.class_names)

    @property
    def n_features(self) -> int:
        return math.prod(self.image_shape)

    def fingerprint(self) -> str:
        """Return a digest of the training images and labels: equal for the same data, wherever it was read from.

        Computed once a process (the arrays are read-only), and for data read through the cache, once a source:
        hashing MNIST's 47 MB takes 45 to 60 ms, a tenth of `softmax train`'s whole process.
        """
        if "_fingerprint" not in self.__dict__:
            fingerprint = None
            if self.cache_key is not None:
                kept = str(cached_array(f"fingerprint {self.cache_key}", lambda: np.array(self._digest())))
                fingerprint = kept if re.fullmatch("[0-9a-f]{64}", kept) else None
            object.__setattr__(self, "_fingerprint", fingerprint or self._digest())  # frozen: not a field, a memo
        return self.__dict__["_fingerprint"]

    def _digest(self) -> str:
        digest = hashlib.sha256()
        for array in (self.x_train, self.y_train):  # always uint8 and int64 (see _pixels and _labels)
            digest.update(f"{array.shape}".encode())
            digest.update(np.ascontiguousarray(array))
        return digest.hexdigest()

    def image_convention(self) -> str:
        """Return how the images frame their object, which predict must repeat: "mnist" or "fill" (see images.py).

        "fill" when, in the median of about CONVENTION_SAMPLE evenly spaced training images that are not blank, the
        bounding box of the pixels at least half as bright as the brightest spans more than FILLS_FRAME of the frame
        on its longer side. Measured: MNIST 0.71 (its 20/28 box), Fashion-MNIST 0.96, scikit-learn's digits 1.
        """
        if self.is_table:
            return "mnist"  # no images to frame: predict reads a table's rows as they are
        sample = self.x_train[:: max(1, len(self.x_train) // CONVENTION_SAMPLE)]  # spaced: a set may be sorted
        sample = sample[sample.max(axis=(1, 2)) > 0]
        if not len(sample):
            return "mnist"
        peak = sample.max(axis=(1, 2), keepdims=True)
        ink = sample >= peak - peak // 2  # half the peak, rounded up, in uint8: no float copy of the sample
        extent = np.maximum(_spanned_fraction(ink.any(axis=2)), _spanned_fraction(ink.any(axis=1)))
        extent, middle = np.sort(extent), len(extent) // 2  # the median (np.median imports numpy.ma: 8 ms a run)
        median = extent[middle] if len(extent) % 2 else (extent[middle - 1] + extent[middle]) / 2
        return "fill" if median > FILLS_FRAME else "mnist"


def _spanned_fraction(present: np.ndarray) -> np.ndarray:
    """Return, for each row of booleans (each with a True), the fraction of it from its first True to its last."""
    first = present.argmax(axis=1)
    last = present.shape[1] - 1 - present[:, ::-1].argmax(axis=1)
    return (last - first + 1) / present.shape[1]


def make_dataset(name: str, arrays: dict[str, np.ndarray], where: dict[str, str], source: str,
                 class_names: tuple[str, ...] | None = None, cache_key: str | None = None,
                 path: str | None = None) -> Dataset:
    """Return the checked Dataset; class names are class_names, else the arrays' own, else "0".."k-1"."""
    x_train, x_test = (_pixels(arrays[key], where[key]) for key in ("x_train", "x_test"))
    y_train, y_test = (_labels(arrays[key], where[key]) for key in ("y_train", "y_test"))
    for images, labels, x, y in ((x_train, y_train, "x_train", "y_train"), (x_test, y_test, "x_test", "y_test")):
        if len(images) != len(labels):
            raise SoftmaxError(f"{where[x]} has {len(images)} images but {where[y]} has {len(labels)} labels")
    if x_train.shape[1:] != x_test.shape[1:]:
        train_size, test_size = ("x".join(map(str, x.shape[1:])) for x in (x_train, x_test))
        raise SoftmaxError(f"{source}: training images are {train_size} pixels but test images are {test_size}")
    labels_end = int(max(y_train.max(), y_test.max())) + 1
    if class_names is None and "class_names" in arrays:
        class_names = _class_names(arrays["class_names"], where["class_names"])
    elif class_names is None:
        if labels_end > store.MAX_CLASSES:
            raise SoftmaxError(f"{source}: labels run up to {labels_end - 1}, more classes than the "
                               f"{store.MAX_CLASSES} a model may have: labels must be class numbers 0..k-1")
        # A class that no training image has means labels that are not class numbers, or a damaged label file:
        # a flipped bit in one MNIST label would otherwise make a model of up to 256 classes.
        absent = np.flatnonzero(np.bincount(y_train, minlength=labels_end) == 0)  # (np.unique sorts: 20 ms)
        if len(absent):
            missing = int(absent[0])
            raise SoftmaxError(
                f"{source}: labels run up to {labels_end - 1} but no training image has label {missing}: "
                "labels must be class numbers 0..k-1, each with training images (is a label file damaged?)"
            )
        class_names = tuple(str(label) for label in range(labels_end))
    for labels, key in ((y_train, "y_train"), (y_test, "y_test")):
        if labels.max() >= len(class_names):
            raise SoftmaxError(
                f"{where[key]}: label {labels.max()} is out of range: there are {len(class_names)} classes"
                f" (0..{len(class_names) - 1})"
            )
    model_bytes = math.prod(x_train.shape[1:]) * len(class_names) * WEIGHT_BYTES
    if model_bytes > store.MAX_WEIGHT_BYTES:
        raise SoftmaxError(f"{source}: a model of {'x'.join(map(str, x_train.shape[1:]))}-pixel images in "
                           f"{len(class_names)} classes would take {model_bytes:,} bytes, more than the "
                           f"{store.MAX_WEIGHT_BYTES:,} a model file may hold: use smaller images")
    for array in (x_train, y_train, x_test, y_test):
        array.setflags(write=False)  # shared by everything that reads the data set: nobody edits it in place
    return Dataset(name, x_train, y_train, x_test, y_test, tuple(class_names), source, cache_key, path)


def _pixels(images: np.ndarray, where: str) -> np.ndarray:
    """Return images as uint8 (n, height, width) 0..255, from (n, h, w), (n, h, w, 1) or (n, side*side)."""
    if images.ndim == 4 and images.shape[-1] == 1:
        images = images[..., 0]
    elif images.ndim == 2 and math.isqrt(images.shape[1]) ** 2 == images.shape[1]:
        side = math.isqrt(images.shape[1])
        images = images.reshape(len(images), side, side)
    if images.ndim != 3:
        raise SoftmaxError(
            f"{where}: images have shape {images.shape}; expected (n, height, width), (n, height, width, 1)"
            " or (n, d) with d a square number"
        )
    if images.size == 0:
        raise SoftmaxError(f"{where}: there are no images (shape {images.shape})")
    if images.dtype == np.uint8:
        return images
    if images.dtype.kind in "iu":
        low, high = images.min(), images.max()
        if low < 0 or high > 255:
            raise SoftmaxError(f"{where}: pixel values run {low}..{high}; expected 0..255")
        return images.astype(np.uint8)
    if images.dtype.kind != "f":
        raise SoftmaxError(f"{where}: pixels are {images.dtype}; expected numbers 0..255 (or 0..1)")
    if not np.isfinite(images).all():
        raise SoftmaxError(f"{where}: some pixels are NaN or infinite")
    if images.max() <= 1:  # float images are often stored in 0..1
        images = images * 255
    low, high = images.min(), images.max()
    if low < 0 or high > 255:
        raise SoftmaxError(f"{where}: pixel values run {low:g}..{high:g}; expected 0..255 (or 0..1)")
    return np.rint(images).astype(np.uint8)


def _labels(labels: np.ndarray, where: str) -> np.ndarray:
    """Return labels as a 1-D int64 array of class numbers, which must be whole and not negative."""
    if labels.ndim != 1:
        raise SoftmaxError(f"{where}: labels have shape {labels.shape}; expected one label per image, shape (n,)")
    if len(labels) == 0:
        raise SoftmaxError(f"{where}: there are no labels")
    if labels.dtype.kind not in "iuf":
        raise SoftmaxError(f"{where}: labels are {labels.dtype}; expected whole numbers 0..k-1")
    if labels.dtype.kind == "f" and not (np.isfinite(labels).all() and (labels == np.round(labels)).all()):
        raise SoftmaxError(f"{where}: labels must be whole numbers 0..k-1, found fractional or NaN values")
    if labels.min() < 0:
        raise SoftmaxError(f"{where}: labels must be class numbers 0..k-1, found {labels.min()}")
    if labels.max() > 2**31:  # no class number, and it would wrap round on the cast below
        raise SoftmaxError(f"{where}: labels must be class numbers 0..k-1, found {labels.max()}")
    return labels.astype(np.int64)


def _class_names(names: np.ndarray, where: str) -> tuple[str, ...]:
    """Return the class names an .npz carries: 2 to store.MAX_CLASSES names, each one a model file accepts."""
    if names.ndim != 1 or not 2 <= len(names) <= store.MAX_CLASSES or names.dtype.kind != "U":
        raise SoftmaxError(f"{where}: class_names must be a 1-D array of 2 to {store.MAX_CLASSES} strings, "
                           f"got {names.dtype} {names.shape}")
    class_names = tuple(str(name) for name in names.tolist())
    bad = next((name for name in class_names if not store.is_class_name(name)), None)
    if bad is not None:
        raise SoftmaxError(f"{where}: class name {bad[:40]!r} is not printable text of 1 to 200 characters "
                           "without $: rename the class")
    twice = next((name for k, name in enumerate(class_names) if name in class_names[:k]), None)
    if twice is not None:  # two classes of one name: every prediction of either would read the same
        raise SoftmaxError(f"{where}: the class name {twice[:40]!r} is given twice: each class needs its own name")
    return class_names


TEST_FRACTION = 0.2  # held out of a source with no test part, as the seed tutorial does
SPLIT_SEED = 0       # always the same split, so that evaluate scores the test rows train held out
MAX_TABLE_CLASSES = 1000


def make_table(name: str, rows: np.ndarray, labels: np.ndarray, feature_names: tuple[str, ...], source: str,
               test: tuple[np.ndarray, np.ndarray] | None = None) -> Dataset:
    """Return the checked Dataset of a table: feature rows (n, d), their labels (strings or numbers), the features'
    names; split seeded and stratified, TEST_FRACTION held out, unless test gives the test rows and labels.

    Class names are the labels' distinct values, in numeric order when they are all numbers, else sorted.
    """
    rows = np.asarray(rows)
    if rows.ndim != 2 or rows.dtype.kind not in "iuf" or not rows.size:
        raise SoftmaxError(f"{source}: feature rows must be a 2-D array of numbers (n, d), got {rows.dtype} "
                           f"{rows.shape}")
    everything = rows if test is None else np.concatenate([rows, np.asarray(test[0])])
    all_labels = np.asarray(labels) if test is None else np.concatenate([np.asarray(labels), np.asarray(test[1])])
    if not np.isfinite(everything).all():
        bad = int(np.flatnonzero(~np.isfinite(everything).all(axis=1))[0])
        raise SoftmaxError(f"{source}: row {bad + 1} holds a NaN or infinite value: every feature must be a number")
    if len(all_labels) != len(everything) or all_labels.ndim != 1:
        raise SoftmaxError(f"{source}: {len(everything)} rows but labels of shape {all_labels.shape}")
    class_names, codes = _classes(all_labels, source)
    features = everything.astype(np.float32)
    if test is None:
        digest = hashlib.sha256(np.ascontiguousarray(features)).hexdigest()
        test_rows = stratified_test_rows(codes, TEST_FRACTION, SPLIT_SEED)
        split = {"seed": SPLIT_SEED, "test_fraction": TEST_FRACTION, "rows": len(features), "fingerprint": digest}
    else:
        test_rows = np.arange(len(rows), len(features))
        split = None
    is_test = np.zeros(len(features), bool)
    is_test[test_rows] = True
    arrays = (features[~is_test], codes[~is_test], features[is_test], codes[is_test])
    if not len(arrays[2]):
        raise SoftmaxError(f"{source}: too few rows to hold {TEST_FRACTION:.0%} out for testing")
    model_bytes = features.shape[1] * len(class_names) * WEIGHT_BYTES
    if model_bytes > store.MAX_WEIGHT_BYTES:
        raise SoftmaxError(f"{source}: a model of {features.shape[1]:,} features in {len(class_names)} classes would "
                           f"take {model_bytes:,} bytes, more than the {store.MAX_WEIGHT_BYTES:,} a model file may hold")
    for array in arrays:
        array.setflags(write=False)
    return Dataset(name, *arrays, class_names, source, feature_names=tuple(feature_names), split=split)


def stratified_test_rows(codes: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """Return the indices of the rows held out: in each class, a seeded random round(fraction * its rows)."""
    rng = np.random.default_rng(seed)
    held = []
    for label in range(int(codes.max()) + 1):
        members = np.flatnonzero(codes == label)
        held.append(rng.permutation(members)[: int(np.floor(fraction * len(members) + 0.5))])
    return np.sort(np.concatenate(held))


def _classes(labels: np.ndarray, source: str) -> tuple[tuple[str, ...], np.ndarray]:
    """Return the class names of labels and each label's class number."""
    texts = np.array([str(label).strip() for label in labels.tolist()]) if labels.dtype.kind != "U" else labels
    names, codes = np.unique(texts, return_inverse=True)
    try:
        numbers = np.array([float(name) for name in names])
    except ValueError:
        numbers = None
    if numbers is not None:  # numeric labels: in numeric order, "2.0" named "2"
        order = np.argsort(numbers, kind="stable")
        rank = np.empty_like(order)
        rank[order] = np.arange(len(order))
        codes = rank[codes]
        names = [f"{number:g}" for number in numbers[order]]
    names = tuple(str(name) for name in names)
    if len(names) < 2:
        raise SoftmaxError(f"{source}: the label column holds one class ({names[0]!r}): a classifier needs at "
                           "least two")
    if len(names) > min(MAX_TABLE_CLASSES, store.MAX_CLASSES):
        raise SoftmaxError(f"{source}: the label column holds {len(names):,} classes, more than the "
                           f"{min(MAX_TABLE_CLASSES, store.MAX_CLASSES)} a model may have (is it the label column?)")
    bad = next((name for name in names if not store.is_class_name(name)), None)
    if bad is not None:
        raise SoftmaxError(f"{source}: class name {bad[:40]!r} is not printable text of 1 to 200 characters without "
                           "$: rename the class")
    return names, codes.astype(np.int64)
