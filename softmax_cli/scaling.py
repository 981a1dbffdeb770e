"""The defaults that need no tuning, for SoftmaxRegression(lr="auto"): standardised features, a step size from
their curvature, and enough gradient steps on a small data set.

The loss of softmax cross-entropy has a Hessian bounded by 0.5 * the largest eigenvalue of X1.T @ X1 / n, where X1
is the features with a column of ones for the bias (Böhning's bound); a gradient step of STEP_FACTOR / that bound
is then safe whatever the features' scale. Standardising first (each feature to mean 0 and variance 1) makes the
problem well conditioned where features have different scales or sit far from 0 (a feature around 1000); the
model learned on the standardised features is folded back into weights for the raw ones. The CLI does none of
this: its pixels have a fixed scale and its defaults were measured on MNIST.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .train import is_sparse

STEP_FACTOR = 1.0  # lr = STEP_FACTOR / curvature bound (measured on iris, wine, breast_cancer, digits: docs/usage.md)
MIN_STEPS = 250  # at least this many gradient steps: on bench/any_data.py's sets (4 split seeds) 1000 read no
#                  better, at 4 times the time; 150 left the loss still falling (ConvergenceWarning)
MIN_BATCHES = 4  # batches an epoch at least: a set smaller than 4 batches gets smaller ones (iris: 4 of 27 rows)
MAX_EPOCHS = 100_000  # the epochs setting's ceiling
CONVERGED_DROP = 1e-2  # a training loss still falling by this fraction in the last epoch has not converged
POWER_ITERATIONS = 50
POWER_TOLERANCE = 1e-6  # power iteration stops once its estimate rises by less than this fraction


@dataclass(frozen=True)
class Standardiser:
    """Per-feature centre and scale: x -> (x - mean) / scale; sparse features are scaled only (kept sparse)."""

    mean: np.ndarray
    scale: np.ndarray

    @classmethod
    def fitted(cls, X, sample_weight=None) -> "Standardiser":
        w = np.ones(X.shape[0]) if sample_weight is None else np.asarray(sample_weight, np.float64)
        w = w / w.sum()
        if is_sparse(X):
            mean = np.asarray(X.T @ w, np.float64).ravel()
            square = np.asarray(X.multiply(X).T @ w, np.float64).ravel()
            scale = np.sqrt(np.maximum(square - mean**2, 0))
            mean = np.zeros_like(mean)  # not centred: centring would make every stored zero a number
        else:
            mean = w @ np.asarray(X, np.float64)
            scale = np.sqrt(w @ (np.asarray(X, np.float64) - mean) ** 2)
        scale[~(scale > 1e-12 * max(1.0, float(np.abs(mean).max(initial=0))))] = 1.0  # a constant feature stays
        return cls(mean, scale)

    def transform(self, X):
        if is_sparse(X):
            return X.multiply((1 / self.scale).astype(X.dtype)).tocsr()
        return ((X - self.mean) / self.scale).astype(X.dtype)

    def fold(self, W: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Return (W, b) for raw features from the (W, b) learned on the standardised ones."""
        raw_W = W / self.scale[:, None]
        return raw_W, b - self.mean @ raw_W


def curvature(X) -> float:
    """Return 0.5 * the largest eigenvalue of X1.T @ X1 / n (X1 = X with a column of ones), by power iteration."""
    n, d = X.shape
    # a seeded random start: a fixed one such as all ones can be orthogonal to the top eigenvector (two standardised
    # features correlated negatively: the Keras lab's blobs gave 0.5 instead of 0.74)
    v = np.random.default_rng(0).standard_normal(d + 1)
    v /= np.linalg.norm(v)
    value = 0.0
    for _ in range(POWER_ITERATIONS):
        u = np.asarray(X @ v[:d], np.float64).ravel() + v[d]
        w = np.append(np.asarray(X.T @ u, np.float64).ravel(), u.sum()) / n
        value, previous = float(np.linalg.norm(w)), value
        if value == 0:
            return 0.0
        v = w / value
        if value - previous <= POWER_TOLERANCE * value:  # the estimate rises to the eigenvalue: it has arrived
            break
    return 0.5 * value


def step_size(X, momentum: float) -> float:
    """Return the learning rate for features X: STEP_FACTOR / the curvature bound, within the lr setting's range."""
    bound = curvature(X)
    return float(min(1e6, STEP_FACTOR / bound)) if bound > 0 else 1.0


def batch_size_for(batch_size, n_rows: int):
    """Return batch_size, or a smaller one that makes MIN_BATCHES batches of n_rows: a small set's epoch is then
    several steps, not one call of the training loop (its fixed cost, tens of microseconds) for each step. On
    iris this took SoftmaxRegression()'s fit from 1.5 times LogisticRegression's time to half of it, at 100 % both."""
    if batch_size == "full":
        return batch_size
    return max(1, min(int(batch_size), math.ceil(n_rows / MIN_BATCHES)))


def epochs_for(epochs: int, n_rows: int, batch_size) -> int:
    """Return at least epochs, and enough of them for MIN_STEPS gradient steps over n_rows in batches."""
    batches = 1 if batch_size == "full" else max(1, math.ceil(n_rows / int(batch_size)))
    return int(min(MAX_EPOCHS, max(epochs, math.ceil(MIN_STEPS / batches))))
