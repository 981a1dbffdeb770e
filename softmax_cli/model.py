"""The math of softmax regression: logits, a stable softmax, cross-entropy and its gradient.

Every function here is pure: arrays in, arrays out, no state, no I/O.
"""

from __future__ import annotations

import numpy as np


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


def cross_entropy(Z: np.ndarray, Y: np.ndarray) -> float:
    """Return the mean cross-entropy of softmax(Z) against one-hot (or probability) rows Y."""
    return float(-(Y * log_softmax(Z)).sum() / len(Z))


def loss_and_grad(W: np.ndarray, b: np.ndarray, X: np.ndarray, Y: np.ndarray):
    """Return the mean cross-entropy of softmax(X @ W + b) against one-hot Y, and its gradient (dW, db)."""
    Z = logits(W, b, X)
    log_p = log_softmax(Z)
    loss = -(Y * log_p).sum() / len(X)
    G = (np.exp(log_p) - Y) / len(X)  # d loss / d Z
    return float(loss), X.T @ G, G.sum(axis=0)



def cross_entropy_logit_grad(Z: np.ndarray, labels: np.ndarray) -> tuple[float, np.ndarray]:
    """Return the summed cross-entropy of logits Z against integer labels, and d(mean loss)/dZ.

    The fast path of loss_and_grad: it overwrites Z with the gradient instead of allocating
    probabilities and a one-hot matrix.
    """
    rows = np.arange(len(Z))
    Z -= Z.max(axis=1, keepdims=True)
    true_logits = Z[rows, labels]
    np.exp(Z, out=Z)
    totals = Z.sum(axis=1, keepdims=True)
    loss = (np.log(totals[:, 0]) - true_logits).sum()  # log-sum-exp form: totals >= 1, never log(0)
    Z /= totals
    Z[rows, labels] -= 1
    Z /= len(Z)
    return float(loss), Z


def mse_logit_grad(Z: np.ndarray, labels: np.ndarray) -> tuple[float, np.ndarray]:
    """Return the summed squared error of softmax(Z) against one-hot labels, and d(mean loss)/dZ.

    The squared error sums over the classes; the mean is over the samples. Z is overwritten.
    """
    rows = np.arange(len(Z))
    P = softmax(Z)
    P[rows, labels] -= 1                                  # P - Y
    loss = float((P * P).sum())
    P[rows, labels] += 1
    dP = 2 * P
    dP[rows, labels] -= 2                                 # 2 (P - Y)
    Z[...] = P * (dP - (dP * P).sum(axis=1, keepdims=True)) / len(Z)  # the softmax Jacobian applied to dP
    return loss, Z


LOGIT_GRADIENTS = {"cross-entropy": cross_entropy_logit_grad, "mse": mse_logit_grad}
