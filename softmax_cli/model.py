"""The math of softmax regression: logits, a stable softmax, cross-entropy and its gradient.

No state and no I/O: arrays in, arrays out. The two fast paths for the training loop
(fused_cross_entropy_grad, mse_logit_grad) write their result into the logits they are given.
"""

from __future__ import annotations

import numpy as np

PIXEL_SCALE = 1 / 255  # a model's features are its image's pixels (uint8, 0..255) times this: values in [0, 1]


def feature_scale(dtype) -> float:
    """Return what features() multiplies data of this dtype by: PIXEL_SCALE for uint8 pixels, else 1."""
    return PIXEL_SCALE if np.dtype(dtype) == np.uint8 else 1.0


def features(images: np.ndarray) -> np.ndarray:
    """Return the float32 rows a model takes for images (n, height, width), already preprocessed (preprocess.py).

    uint8 images are pixels 0..255 and are scaled by PIXEL_SCALE; float images (a person's framed photo) are
    intensities already in [0, 1]. Every form of the model (the .npz's W, the estimator, the Keras export) takes
    these rows: flattened pixels / 255.
    """
    images = np.asarray(images)
    rows = images.reshape(len(images), -1).astype(np.float32)
    scale = feature_scale(images.dtype)
    if scale != 1:
        rows *= np.float32(scale)
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


def loss_and_grad(W: np.ndarray, b: np.ndarray, X: np.ndarray, Y: np.ndarray, weights=None):
    """Return the mean cross-entropy of softmax(X @ W + b) against one-hot Y, and its gradient (dW, db); with
    weights (one a row), the weighted mean: sum(w_i * loss_i) / sum(w_i), 0 where the weights sum to 0."""
    w, total = _row_weights(X, weights)
    Z = logits(W, b, X)
    log_p = log_softmax(Z)
    loss = -(w * Y * log_p).sum() / total
    G = w * (np.exp(log_p) - Y) / total  # d loss / d Z
    return float(loss), X.T @ G, G.sum(axis=0)


def mse_loss_and_grad(W, b, X, Y, weights=None):
    """Return the mean squared error of softmax(X @ W + b) against one-hot Y (summed over classes), and (dW, db);
    with weights, the weighted mean as loss_and_grad."""
    w, total = _row_weights(X, weights)
    P = softmax(logits(W, b, X))
    residual = P - Y
    dP = 2 * w * residual / total
    G = P * (dP - (dP * P).sum(axis=1, keepdims=True))  # d loss / d Z: the softmax Jacobian applied to dP
    return float((w * residual**2).sum() / total), X.T @ G, G.sum(axis=0)


def _row_weights(X: np.ndarray, weights) -> tuple:
    """Return (each row's weight as a column, or 1, and the weights' sum: what a mean divides by; 1 where it is 0)."""
    if weights is None:
        return 1.0, len(X)
    total = float(np.sum(weights))
    return np.asarray(weights, np.float64)[:, None], total if total > 0 else 1.0


def fused_cross_entropy_grad(Z: np.ndarray, true_index: np.ndarray, weights=None) -> float:
    """Return the summed cross-entropy of softmax(Z) against the true classes; Z becomes its gradient softmax(Z) - Y.

    The fast path of loss_and_grad for the training loop, with mse_logit_grad's contract: Z (m, k) is C-contiguous
    and true_index holds the flat index of each row's true class in Z (row * k + label). weights (m,) float32, or
    None: each row's loss and gradient multiplied by its weight (weights of 1 give the same bits as None).
    """
    flat = Z.reshape(-1)
    Z -= Z.max(axis=1, keepdims=True)          # the largest logit becomes 0: exp cannot overflow
    true_logits = flat[true_index]
    np.exp(Z, out=Z)
    denominators = Z.sum(axis=1, keepdims=True)  # >= 1, so its log is never log(0)
    Z /= denominators
    flat[true_index] -= 1
    if weights is None:
        return float(np.log(denominators).sum(dtype=np.float64) - true_logits.sum(dtype=np.float64))
    Z *= weights[:, None]
    return float((np.log(denominators) * weights[:, None]).sum(dtype=np.float64)
                 - (true_logits * weights).sum(dtype=np.float64))


def mse_logit_grad(Z: np.ndarray, true_index: np.ndarray, weights=None) -> float:
    """Return the summed squared error of softmax(Z) against one-hot labels; Z becomes its gradient d error / dZ.

    Same contract as fused_cross_entropy_grad. The squared error sums over the classes; training divides by the
    batch size like the cross-entropy.
    """
    P = softmax(Z)
    residual = P.copy()
    residual.reshape(-1)[true_index] -= 1      # P - Y
    dP = 2 * residual
    Z[...] = P * (dP - (dP * P).sum(axis=1, keepdims=True))  # the softmax Jacobian applied to dP
    if weights is None:
        return float((residual * residual).sum(dtype=np.float64))
    Z *= weights[:, None]
    return float((residual * residual * weights[:, None]).sum(dtype=np.float64))
