"""Where the benchmark's MNIST copy is, and its pixels as the features every competitor trains on."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
DEFAULT_DATA = REPO.parent / "shared" / "data" / "mnist" / "mnist.npz"


def data_path() -> Path:
    """Return the data set to benchmark on: $SOFTMAX_DATA (a folder or an .npz), else the shared copy."""
    return Path(os.environ.get("SOFTMAX_DATA") or DEFAULT_DATA).resolve()


def features(dtype) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Return (X_train, y_train, X_test, y_test): pixels / 255 as rows of 784 values in dtype, integer labels."""
    # softmax-cli's own loader, so that every competitor reads the data in the same time from the same copy.
    from softmax_cli.data import load_dataset

    dataset = load_dataset(data_path())

    def rows(pixels):
        X = pixels.reshape(len(pixels), -1).astype(dtype)
        X /= 255  # in place: a second copy of the training set would count in every competitor's peak memory
        return X

    return rows(dataset.x_train), dataset.y_train, rows(dataset.x_test), dataset.y_test
