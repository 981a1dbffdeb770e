"""Predicting one person's image: the one way from an image file (or its bytes) to a model's answer.

`softmax predict` and `softmax serve` both call predict_image, so that a drawing sent to the web page and the same
image given to the command line get the same framing, the same preprocessing and the same probabilities.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from .config import TOP_K
from .errors import SoftmaxError
from . import images
from .images import load_image
from .metrics import entropy_bits
from .model import features, predict_proba
from .preprocess import preprocessed
from .store import SavedModel


@dataclass(frozen=True, eq=False)  # eq=False: comparing numpy arrays with == has no single truth value
class Prediction:
    """A model's answer for one image, with the image as it was framed and as the model saw it."""

    class_names: tuple[str, ...]
    framed: np.ndarray         # float32 image_shape in [0, 1]: framed as the training images were, before preprocessing
    input: np.ndarray          # float32 image_shape in [0, 1]: what the model saw (framed, then deskewed if asked for)
    probabilities: np.ndarray  # float32 (n_classes,), finite, summing to 1
    ranked: np.ndarray         # the top_k likeliest classes' indices, likeliest first (ties keep the classes' order)
    doubt: str | None = None   # why the image does not look like one digit (images.doubt), or None

    @property
    def label(self) -> str:
        return self.class_names[self.ranked[0]]

    @property
    def probability(self) -> float:
        return float(self.probabilities[self.ranked[0]])

    @property
    def entropy_bits(self) -> float:
        return float(entropy_bits(self.probabilities))

    def as_json(self, path) -> dict:
        """Return what `softmax predict --json` prints for the image at path: plain JSON values, all finite; "warning"
        only when the image does not look like one digit."""
        return {
            "path": str(path),
            "label": self.label,
            "probability": self.probability,
            "probabilities": self.probabilities.tolist(),
            "entropy_bits": self.entropy_bits,
            "top": [{"label": self.class_names[k], "probability": float(self.probabilities[k])} for k in self.ranked],
            **({"warning": self.doubt} if self.doubt else {}),
        }


def predict_image(
    saved: SavedModel, source: str | os.PathLike | bytes, top_k: int = 1, name: str | None = None
) -> Prediction:
    """Return the saved model's prediction for the image at source (a path, or an image file's bytes).

    The image is framed as the model's training images were (saved.framing) and preprocessed as they were
    (saved.preprocess). name is what messages call the image (default: the path, or "the image" for bytes).
    The prediction's doubt says when the framed image does not look like one digit (images.doubt).
    Raises SoftmaxError when the image cannot be read, holds no digit (images.NoDigit), or the model gives
    probabilities that are not finite numbers (weights so large that the logits overflow).
    """
    top_k = TOP_K.check(top_k)
    shape = saved.image_shape
    framed = load_image(source, shape, convention=saved.framing, name=name).reshape(shape)
    rows = features(preprocessed(framed[None], saved.preprocess))
    with np.errstate(over="ignore", invalid="ignore"):  # an overflow is reported below, in words
        probabilities = predict_proba(saved.W, saved.b, rows)[0]
    if not np.isfinite(probabilities).all():
        shown = name or ("the image" if isinstance(source, (bytes, bytearray, memoryview)) else str(source))
        largest = float(np.abs(saved.W).max())
        raise SoftmaxError(
            f"the model's probabilities for {shown} are not finite numbers (its weights reach "
            f"{largest:.3g}, so the class scores overflow): retrain the model"
        )
    ranked = (-probabilities).argsort(kind="stable")[:top_k]  # stable: ties keep the classes' order
    # The signs of doubt were measured on digits of MNIST's size: a tiny frame or another framing has its own.
    doubt = images.doubt(framed) if saved.framing == "mnist" and min(shape) >= images.MNIST_BOX else None
    return Prediction(saved.class_names, framed, rows[0].reshape(shape), probabilities, ranked, doubt)
