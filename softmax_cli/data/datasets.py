"""What each named data set is: its class names, image shape and the fingerprint of its genuine training set.

A data set knows what it is: the name the user gives (`--dataset`) decides the class names and the shape
expected, also when the files come from a local path, and data that is not the named set is refused here.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import SoftmaxError

FASHION_CLASS_NAMES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)
DIGIT_NAMES = tuple("0123456789")


@dataclass(frozen=True)
class NamedDataset:
    """A data set known by name: what its files must hold."""

    name: str                      # as --dataset spells it
    title: str                     # as people write it
    class_names: tuple[str, ...]
    image_shape: tuple[int, int]
    fingerprint: str               # Dataset.fingerprint() of the genuine training set
    files: str                     # where its files come from, for advice


KNOWN = {spec.name: spec for spec in (
    NamedDataset("mnist", "MNIST", DIGIT_NAMES, (28, 28),
                 "a354ceb508cf3f4c56a2fecf49133e72ecffbd59937aa1ab79ec90d2c362df52", "MNIST's files"),
    NamedDataset("fashion_mnist", "Fashion-MNIST", FASHION_CLASS_NAMES, (28, 28),
                 "c26eaea4ff026a74d390bec19fa00a025f0dc1cf6651d61d36cadd6d12a1e9cc", "Fashion-MNIST's files"),
    NamedDataset("digits", "scikit-learn's digits", DIGIT_NAMES, (8, 8),
                 "caf2c360292f62efb3b95cf9e70522fa6f99308a09ca78b2a59f255bf21972a2", "scikit-learn's digits"),
)}


def named(name: str | None) -> NamedDataset | None:
    """Return the known data set of this name; None (the user's own data) stays None."""
    if name is None:
        return None
    if name not in KNOWN:
        raise SoftmaxError(f"unknown data set {name!r}: choose one of {', '.join(KNOWN)} (or none, for your own "
                           "data)", setting="dataset")
    return KNOWN[name]


def identify(fingerprint: str) -> NamedDataset | None:
    """Return the known data set whose genuine training set has this fingerprint, if any."""
    return next((spec for spec in KNOWN.values() if spec.fingerprint == fingerprint), None)


def check_is(spec: NamedDataset, dataset) -> None:
    """Raise SoftmaxError unless dataset (a Dataset) can be the named data set: its shape, classes and identity."""
    found = identify(dataset.fingerprint())
    if found is not None and found is not spec:
        raise SoftmaxError(
            f"{dataset.source} holds the training images of {found.title}, not of {spec.title}: point {{setting}} "
            f"at {spec.files} (or give no data path, to download them), or name the data set {found.name}",
            setting="data")
    n_classes = int(max(dataset.y_train.max(), dataset.y_test.max())) + 1  # labels past the names are refused before
    if tuple(dataset.image_shape) != spec.image_shape or n_classes != len(spec.class_names):
        height, width = dataset.image_shape
        raise SoftmaxError(
            f"{dataset.source} holds {height}x{width} images in {n_classes} classes, not the "
            f"{spec.image_shape[0]}x{spec.image_shape[1]} in {len(spec.class_names)} of {spec.title}: point "
            f"{{setting}} at {spec.files}, or name the data set it is", setting="data")
