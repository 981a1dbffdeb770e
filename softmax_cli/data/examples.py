"""A person's own labelled examples, added to a data set's training images (`softmax train --add SOURCE`).

A source is a folder of class-named subfolders of image files (mydigits/7/a.png: the layout of Keras'
image_dataset_from_directory and torchvision's ImageFolder), each image framed exactly as `softmax predict` frames
it (images.load_image, by the data set's framing), or a Keras-layout .npz such as the drawing page downloads,
whose images are framed already. Each example weighs as much as `weight` training images (a sample weight), so
that a few dozen of them matter beside 60,000.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import SoftmaxError

DEFAULT_WEIGHT = 200.0  # what one added example counts for, in training images (see docs/usage.md)
MAX_EXAMPLES = 100_000


@dataclass(frozen=True)
class Examples:
    """Labelled images in a data set's framing: uint8 (n, h, w), their class indices, what each weighs."""

    images: np.ndarray
    labels: np.ndarray
    weight: float
    sources: tuple[str, ...]

    def fingerprint(self) -> str:
        """Return a digest of the images, labels and weight."""
        digest = hashlib.sha256(np.ascontiguousarray(self.images).tobytes())
        digest.update(np.asarray(self.labels, np.int64).tobytes())
        digest.update(repr(float(self.weight)).encode())
        return digest.hexdigest()

    def record(self, class_names) -> dict:
        """Return what a model file keeps of them: how many of each class, what each weighed, a fingerprint."""
        counts = np.bincount(self.labels, minlength=len(class_names))
        return {"count": int(len(self.labels)), "per_class": {name: int(n) for name, n in zip(class_names, counts)},
                "weight": float(self.weight), "fingerprint": self.fingerprint()}


def read_examples(sources, dataset, weight: float = DEFAULT_WEIGHT) -> Examples:
    """Return the examples of every source (paths) for dataset (a data.Dataset of images): framed as it is, its
    classes by name. Raises SoftmaxError naming the source, folder or file that is not usable."""
    if dataset.is_table:
        raise SoftmaxError("examples are images, and this data set is a table of features: add rows to the table")
    images, labels = [], []
    for source in map(Path, sources):
        read = _read_npz(source, dataset) if source.is_file() else _read_folder(source, dataset)
        images.append(read[0])
        labels.append(read[1])
    images, labels = np.concatenate(images), np.concatenate(labels)
    if len(labels) > MAX_EXAMPLES:
        raise SoftmaxError(f"{len(labels):,} examples are more than the {MAX_EXAMPLES:,} --add takes")
    return Examples(images, labels, float(weight), tuple(map(str, sources)))


def _read_folder(folder: Path, dataset) -> tuple[np.ndarray, np.ndarray]:
    from ..images import IMAGE_SUFFIXES, load_image

    if not folder.is_dir():
        raise SoftmaxError(f"--add {folder}: not a folder of class folders or an .npz of examples")
    index = {name: k for k, name in enumerate(dataset.class_names)}
    classes = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    unknown = [p.name for p in classes if p.name not in index]
    if unknown:
        raise SoftmaxError(f"--add {folder}: the folder {unknown[0]!r} is not one of the classes "
                           f"({', '.join(dataset.class_names)}): name each folder after its class")
    images, labels = [], []
    for class_folder in classes:
        for file in sorted(p for p in class_folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES):
            framed = load_image(file, dataset.image_shape, convention=dataset.image_convention(), name=str(file))
            images.append(np.round(framed.reshape(dataset.image_shape) * 255).astype(np.uint8))
            labels.append(index[class_folder.name])
    if not images:
        raise SoftmaxError(f"--add {folder}: no image files in class folders (such as {folder / '7' / 'a.png'})")
    return np.stack(images), np.array(labels, np.int64)


def _read_npz(path: Path, dataset) -> tuple[np.ndarray, np.ndarray]:
    from . import load_dataset

    examples = load_dataset(path, name=None)
    if examples.class_names != dataset.class_names or examples.image_shape != dataset.image_shape:
        raise SoftmaxError(f"--add {path}: its images ({'x'.join(map(str, examples.image_shape))}, classes "
                           f"{', '.join(examples.class_names)}) are not {dataset.name}'s")
    return np.asarray(examples.x_train), np.asarray(examples.y_train)
