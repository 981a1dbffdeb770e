"""A person's own labelled examples, added to a training set: `softmax train --add SOURCE`.

A source is either a folder of class-named subfolders of image files (mydigits/7/a.png: the layout of Keras'
image_dataset_from_directory and torchvision's ImageFolder) or a Keras-layout .npz (x_train and y_train, such as
the drawing page downloads). Every image is framed as `predict` frames a person's image for the model
(images.CONVENTIONS, the one framing function), so that the examples look to training as the person's other
images will look to the model later.

Each example weighs more than one image of the data set (config.ADD_WEIGHT, train.fit's sample_weight): a few
dozen among MNIST's 60,000 would otherwise change nothing. It is trained on as copies that share its weight
(training_rows), so that no step is made mostly of one example. Nothing here prints: image files that cannot be used are
named in Examples.skipped, and the caller says so.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import SoftmaxError
from . import _listed

# The most one copy of an example weighs, in images of the data set. train.fit makes each step the weighted mean of
# its batch, so one example weighing 200 would make most of its batch's step (200 / 319 of a batch of 120), and each
# batch that holds none would pull the model back: on the tuning half of bench/add.py (5 of each digit, weight 200),
# 1 copy read 82.2 % of the other digits with an MNIST validation accuracy of 94.27 %; 10 copies 82.7 % and 94.64 %;
# 100 copies (2 images' weight each) 84.1 % and 94.95 % (95.30 % with no examples).
COPY_WEIGHT = 2.0


@dataclass(frozen=True, eq=False)  # eq=False: comparing numpy arrays with == has no single truth value
class Examples:
    """Labelled examples framed as predict frames them: uint8 images the data set's shape, and their class numbers."""

    pixels: np.ndarray          # uint8 (n, height, width), 0..255, light on black
    labels: np.ndarray          # int64 (n,), class numbers of class_names
    class_names: tuple[str, ...]
    sources: tuple[str, ...]    # what they were read from, as given
    skipped: tuple[str, ...] = ()  # one line for each image that could not be used, naming it

    def __len__(self) -> int:
        return len(self.labels)

    def counts(self) -> dict[str, int]:
        """Return how many examples each class has, every class named (0 for a class with none)."""
        return dict(zip(self.class_names, np.bincount(self.labels, minlength=len(self.class_names)).tolist()))

    def fingerprint(self) -> str:
        """Return a digest of the framed images and their labels: equal for the same examples, wherever from."""
        digest = hashlib.sha256()
        for array in (self.pixels, self.labels):
            digest.update(f"{array.shape}".encode())
            digest.update(np.ascontiguousarray(array))
        return digest.hexdigest()

    def summary(self, weight: float) -> dict:
        """Return what a model file records of them (store's "added" field): count per class, fingerprint, weight."""
        return {"count": self.counts(), "fingerprint": self.fingerprint(), "weight": float(weight)}


def training_rows(examples: Examples, weight: float, n_data: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return (pixels, labels, sample weights) to train on for examples that each weigh weight images of a data set
    of n_data images: each example as copies of at most COPY_WEIGHT each, as many copies of them all as the data
    set has images at most (then each copy weighs more), at least one of each."""
    copies = max(1, min(math.ceil(weight / COPY_WEIGHT), n_data // len(examples)))
    return (np.tile(examples.pixels, (copies, 1, 1)), np.tile(examples.labels, copies),
            np.full(copies * len(examples), weight / copies, np.float32))


def read_examples(sources, class_names, shape: tuple[int, int], framing: str) -> Examples:
    """Return the examples in sources (folders of class-named subfolders, or Keras-layout .npz files), each image
    framed by convention framing (images.CONVENTIONS) into shape, labelled by class_names' order.

    Raises SoftmaxError in one line for a source that does not exist or is neither, a subfolder that is not one of
    class_names, an .npz of other images or labels, or sources that give no usable example. An image file that
    cannot be read or holds no digit is left out and named in Examples.skipped.
    """
    class_names = tuple(class_names)
    pixels, labels, skipped = [], [], []
    for source in sources:
        path = Path(source)
        if path.is_dir():
            more = _read_folder(path, class_names, shape, framing, skipped)
        elif path.is_file():
            more = _read_npz(path, class_names, shape, framing)
        else:
            raise SoftmaxError(f"examples {source} do not exist: give a folder of class-named subfolders of images "
                               "or a Keras-layout .npz")
        pixels.append(more[0])
        labels.append(more[1])
    pixels = np.concatenate(pixels) if pixels else np.zeros((0, *shape), np.uint8)
    labels = np.concatenate(labels) if labels else np.zeros(0, np.int64)
    if not len(labels):
        raise SoftmaxError(f"no example could be used in {', '.join(map(str, sources))}"
                           + (f" ({skipped[0]})" if skipped else ""))
    return Examples(pixels, labels, class_names, tuple(map(str, sources)), tuple(skipped))


def is_example_folder(path) -> bool:
    """Return whether path is a folder of class-named subfolders (and no data set's .npz or IDX files)."""
    from .formats import IDX_FILES

    path = Path(path)
    if not path.is_dir() or any(path.glob("*.npz")) or any(
            (path / stem).exists() or (path / f"{stem}.gz").exists() for stem in IDX_FILES.values()):
        return False
    return any(p.is_dir() and not p.name.startswith(".") for p in path.iterdir())


def as_dataset(examples: Examples):
    """Return the examples as a data set (data.Dataset) whose training and test sets are both the examples: what
    `softmax evaluate --data FOLDER` scores a model on."""
    from .dataset import make_dataset

    source = ", ".join(examples.sources)
    arrays = {"x_train": examples.pixels, "y_train": examples.labels, "x_test": examples.pixels,
              "y_test": examples.labels}
    return make_dataset(Path(examples.sources[0]).name, arrays, {key: f"{source} ({key})" for key in arrays}, source,
                        examples.class_names)


def _read_folder(folder: Path, class_names, shape, framing, skipped: list) -> tuple[np.ndarray, np.ndarray]:
    """Return the framed images and labels of a folder of class-named subfolders; unusable images go to skipped."""
    from ..images import load_image

    subfolders = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not subfolders:
        raise SoftmaxError(f"folder {folder} has no class subfolders: put each class's images in a subfolder named "
                           f"after it ({_listed(class_names)}), e.g. {folder / class_names[0] / 'a.png'}")
    unknown = [p.name for p in subfolders if p.name not in class_names]
    if unknown:
        raise SoftmaxError(f"{folder / unknown[0]} is not named after one of the model's classes "
                           f"({_listed(class_names)}): name each subfolder after the class of its images")
    images, labels = [], []
    for subfolder in subfolders:
        label = class_names.index(subfolder.name)
        for file in sorted(p for p in subfolder.iterdir() if p.is_file() and not p.name.startswith(".")):
            try:
                framed = load_image(file, shape, convention=framing)
            except SoftmaxError as e:
                skipped.append(str(e))
                continue
            images.append(_as_pixels(framed, shape))
            labels.append(label)
    if not images and not skipped:
        raise SoftmaxError(f"folder {folder} has no images in its class subfolders")
    return np.array(images, np.uint8).reshape(-1, *shape), np.array(labels, np.int64)


def read_drawings(body: bytes, class_names, shape: tuple[int, int], framing: str, name: str = "the drawings",
                  max_bytes: int | None = None, max_examples: int | None = None) -> Examples:
    """Return the examples in the bytes of a Keras-layout .npz (what the drawing page downloads and sends to
    /api/learn), framed as read_examples frames an .npz's images; any problem is one SoftmaxError line. An array
    that would take more than max_bytes is refused before it is read (a small body may unpack to gigabytes), and
    more than max_examples images before any is framed."""
    class_names = tuple(class_names)
    pixels, labels = _read_npz(name, class_names, shape, framing, file=io.BytesIO(body), max_bytes=max_bytes,
                               max_examples=max_examples)
    return Examples(pixels, labels, class_names, (name,))


def _read_npz(path, class_names, shape, framing, file=None, max_bytes: int | None = None,
              max_examples: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Return the framed images and labels of a Keras-layout .npz (x_train, y_train; class_names if it has them):
    the file at path, or the open binary file given (path then names it in messages); no array larger than
    max_bytes (default: a data set's limit, formats.MAX_ARRAY_BYTES)."""
    from .. import safe_io
    from ..images import CONVENTIONS, NoDigit
    from .dataset import _class_names, _labels, _pixels
    from .formats import MAX_ARRAY_BYTES, read_checked

    largest = MAX_ARRAY_BYTES if max_bytes is None else max_bytes
    bounds = {"max_member_bytes": largest, "max_total_bytes": 4 * largest}
    try:
        with (safe_io.open_npz(path, "the examples file", **bounds) if file is None else
              contextlib.nullcontext(safe_io.NpzArchive(file, path, "the examples file", **bounds))) as archive:
            if not {"x_train", "y_train"} <= set(archive.names):
                raise SoftmaxError(f"{path} is not a Keras-layout .npz of examples: it holds "
                                   f"{', '.join(archive.names) or 'nothing'}, not x_train and y_train")
            arrays = read_checked(archive, path, ("x_train", "y_train", "class_names", "framing"))
    except safe_io.DamagedFile as e:
        raise SoftmaxError(f"cannot read the examples {path}: {e.reason}") from None
    images = _pixels(arrays["x_train"], f"{path} (x_train)")
    labels = _labels(arrays["y_train"], f"{path} (y_train)")
    if len(images) != len(labels):
        raise SoftmaxError(f"{path} has {len(images)} images in x_train but {len(labels)} labels in y_train")
    if max_examples is not None and len(images) > max_examples:
        raise SoftmaxError(f"{path}: {len(images)} images are more than the {max_examples} taken at once: send fewer")
    if images.shape[1:] != tuple(shape):
        raise SoftmaxError(f"{path} holds {'x'.join(map(str, images.shape[1:]))}-pixel images but the model takes "
                           f"{'x'.join(map(str, shape))}: give images of the model's size, or image files")
    own_names = (_class_names(arrays["class_names"], f"{path} (class_names)") if "class_names" in arrays
                 else class_names)
    if labels.max() >= len(own_names):
        raise SoftmaxError(f"{path} (y_train): label {labels.max()} is out of range: the model has "
                           f"{len(class_names)} classes (0..{len(class_names) - 1})")
    if own_names != class_names:
        raise SoftmaxError(f"{path}'s classes ({_listed(own_names)}) are not the model's ({_listed(class_names)})")
    blank = np.flatnonzero(images.reshape(len(images), -1).max(axis=1) == 0)
    if _framed_as(arrays) == framing:  # the drawing page's own: framed as predict frames them already
        if len(blank):
            raise SoftmaxError(f"{path}: image {blank[0]} of x_train holds no digit (it is blank): leave it out")
        return np.asarray(images, np.uint8), labels
    frame = CONVENTIONS[framing]
    framed = []
    for number, image in enumerate(images):
        try:
            framed.append(_as_pixels(frame(image / np.float32(255), shape), shape))
        except NoDigit:
            raise SoftmaxError(f"{path}: image {number} of x_train holds no digit (it is blank): leave it out") \
                from None
    return np.array(framed, np.uint8), labels


def _framed_as(arrays: dict) -> str | None:
    """Return the framing an .npz says its images have (its "framing" member, which the drawing page writes: its
    drawings are the images predict framed), or None."""
    said = np.asarray(arrays.get("framing", ())).reshape(-1)
    return str(said[0]) if said.size == 1 and said.dtype.kind == "U" else None


def _as_pixels(framed: np.ndarray, shape) -> np.ndarray:
    """Return a framed image (float in [0, 1]) as the data set's uint8 pixels, 0..255."""
    return np.rint(np.clip(framed, 0, 1) * 255).astype(np.uint8).reshape(shape)
