"""The fast loop's per-step glue, compiled by numba: gather and cast a batch, the softmax gradient, the update.

A step of the default recipe is two small matrix products (BLAS, as fast as they get) and about twenty NumPy
calls of glue around them, whose per-call overhead costs more than the products' arithmetic (bench/floor.py).
These three loops do the same glue in three calls. Importing numba and loading the cached machine code costs
about half a second per process, so train.py imports this module only for runs long enough to win that back
(train.COMPILED_MIN_STEPS), and keeps its NumPy loop when numba is missing: both loops are tested against the
float64 reference loop. Each function has the contract of the NumPy glue it replaces.
"""

from __future__ import annotations

import math

import numba

_jit = numba.njit(cache=True, nogil=True, error_model="numpy")


@_jit
def gather_cast(X, rows, batch):
    """Copy the rows of X (uint8 pixels or float features) into batch's first columns, as float32."""
    for i in range(rows.shape[0]):
        row = rows[i]
        for j in range(X.shape[1]):
            batch[i, j] = X[row, j]


@_jit
def cross_entropy_grad(Z, labels, predicted):
    """Return the summed cross-entropy of softmax(Z) against labels; Z becomes softmax(Z) - Y.

    As model.fused_cross_entropy_grad, and predicted gets each row's argmax (the first of equal logits).
    """
    loss = 0.0
    for i in range(Z.shape[0]):
        largest, best = Z[i, 0], 0
        for c in range(1, Z.shape[1]):
            if Z[i, c] > largest:
                largest, best = Z[i, c], c
        predicted[i] = best
        true_logit = Z[i, labels[i]] - largest
        total = 0.0
        for c in range(Z.shape[1]):
            Z[i, c] = math.exp(Z[i, c] - largest)  # the largest logit becomes 0: exp cannot overflow
            total += Z[i, c]
        loss += math.log(total) - true_logit  # total >= 1: never log(0)
        for c in range(Z.shape[1]):
            Z[i, c] = Z[i, c] / total
        Z[i, labels[i]] -= 1
    return loss


@_jit
def update(weights, velocity, gradient, gradient_scale, l2, momentum, lr, summed, add_to_sum):
    """One heavy-ball step on the raw weights (the last column, the bias, is not decayed); when add_to_sum, add
    the new weights to summed (float64), for the average of the weights."""
    bias = weights.shape[1] - 1
    for a in range(weights.shape[0]):
        for j in range(weights.shape[1]):
            step = gradient[a, j] * gradient_scale
            if l2 != 0 and j != bias:
                step += l2 * weights[a, j]
            if momentum != 0:
                step += momentum * velocity[a, j]
                velocity[a, j] = step
            weights[a, j] -= lr * step
            if add_to_sum:
                summed[a, j] += weights[a, j]
