"""The math of softmax regression: logits, a stable softmax, cross-entropy and its gradient.

No state and no I/O: arrays in, arrays out. The two fast paths for the training loop
(fused_cross_entropy_grad, mse_logit_grad) write their result into the logits they are given.
"""

from __future__ import annotations

import numpy as np

PIXEL_SCALE = 1 / 255  # a model's features are its image's pixels (uint8, 0..255) times this: values in [0, 1]


def features(pixels: np.ndarray) -> np.ndarray:
    """Return the features a model takes for images (n, ...) of uint8 pixels: float32 rows of pixels / 255."""
    rows = np.asarray(pixels).reshape(len(pixels), -1).astype(np.float32)
    rows *= np.float32(PIXEL_SCALE)
    return rows


def one_hot(labels: np.ndarray, n_classes: int) -> np.ndarray:
    """Return float32 rows with a 1 in the column of each label and 0 elsewhere (scikit-learn's OneHotEncoder)."""
    labels = np.asarray(labels)
    if labels.size and (labels.min() < 0 or labels.max() >= n_classes):
        raise ValueError(f"labels must lie in 0..{n_classes - 1}, got {labels.min()}..{labels.max()}")
    return np.eye(n_classes, dtype=np.float32)[labels]


def logits(W: np.ndarray, b: np.ndarray, X: np.ndarray) -> np.ndarray:
    """Return the class scores X @ W + b, one row per sample."""
    return X @ W + b


def logsumexp(Z: np.ndarray, axis: int = 1, keepdims: bool = False) -> np.ndarray:
    """Return log(sum(exp(Z))) along axis, exact for any finite Z (the maximum is factored out)."""
    m = Z.max(axis=axis, keepdims=True)
    out = m + np.log(np.exp(Z - m).sum(axis=axis, keepdims=True))
    return out if keepdims else out.squeeze(axis)


def log_softmax(Z: np.ndarray) -> np.ndarray:
    """Return the log-probabilities of each row of logits; never takes log(0)."""
    return Z - logsumexp(Z, axis=1, keepdims=True)


def softmax(Z: np.ndarray) -> np.ndarray:
    """Return the class probabilities of each row of logits; rows sum to 1 and stay finite."""
    E = np.exp(Z - Z.max(axis=1, keepdims=True))
    return E / E.sum(axis=1, keepdims=True)


def predict_proba(W: np.ndarray, b: np.ndarray, X: np.ndarray) -> np.ndarray:
    """Return the class probabilities of each row of X."""
    return softmax(logits(W, b, X))


def loss_and_grad(W: np.ndarray, b: np.ndarray, X: np.ndarray, Y: np.ndarray):
    """Return the mean cross-entropy of softmax(X @ W + b) against one-hot Y, and its gradient (dW, db)."""
    Z = logits(W, b, X)
    log_p = log_softmax(Z)
    loss = -(Y * log_p).sum() / len(X)
    G = (np.exp(log_p) - Y) / len(X)  # d loss / d Z
    return float(loss), X.T @ G, G.sum(axis=0)


def fused_cross_entropy_grad(Z, true_index, row_max, true_logits, denominators) -> None:
    """Overwrite logits Z (m, k) with d(summed cross-entropy)/dZ = softmax(Z) - Y, allocating nothing.

    The fast path of loss_and_grad, for the training loop. true_index holds the flat index of each row's
    true class in Z (row * k + label). The loss of the batch is sum(log(denominators)) - sum(true_logits);
    both are filled here so that the loop can sum them once an epoch.
    """
    flat = Z.reshape(-1)
    np.max(Z, axis=1, keepdims=True, out=row_max)
    Z -= row_max                                   # the largest logit becomes 0: exp cannot overflow
    np.take(flat, true_index, out=true_logits)
    np.exp(Z, out=Z)
    np.sum(Z, axis=1, keepdims=True, out=denominators)  # >= 1, so its log is never log(0)
    Z /= denominators
    flat[true_index] -= 1


def mse_logit_grad(Z: np.ndarray, labels: np.ndarray) -> float:
    """Overwrite logits Z with d(summed squared error of softmax(Z) against one-hot labels)/dZ; return that sum.

    The squared error sums over the classes; training divides by the batch size like the cross-entropy.
    """
    P = softmax(Z)
    residual = P - one_hot(labels, Z.shape[1])
    dP = 2 * residual
    Z[...] = P * (dP - (dP * P).sum(axis=1, keepdims=True))  # the softmax Jacobian applied to dP
    return float((residual * residual).sum())
