"""The fast loop's compiled epoch: every step of an epoch, products, softmax and update, in one C call.

A step of the default recipe is two small matrix products and about twenty NumPy calls of glue around them,
whose per-call overhead costs more than the products' arithmetic (bench/floor.py). `_epoch.c` makes all the
steps of an epoch in one call instead, and multiplies only the values that are not zero (81 % of MNIST's pixels
are zero): the training rows are compressed once a fit (Rows, CSR), and each value adds its row of weights to
the logits and its share to the gradient, sixteen classes at a time in vector registers. For that the weights
are laid out (groups of LANES classes, features + 1, LANES) during the epoch and put back after it.

One thread makes the epoch: the two threads of earlier versions, meeting twice a step, paid for themselves only on
a quiet machine with large data, and were many times slower beside a busy process (docs/kernel.md). Each step's
batch is still cut in two pieces summed in a fixed order, so the bits are those the two threads gave. Compressing
the rows, once a fit and with no meeting point, takes up to PIECES threads (SOFTMAX_THREADS=1: one).

The extension is built when the package is installed (pyproject.toml) and loads in a millisecond, so every run takes
it, however short. Where it could not be built (no C compiler), this module does not import and train.py keeps
its NumPy loop; both loops are tested against the float64 reference loop. `epoch` has the contract of
Trainer._numpy_epoch.
"""

from __future__ import annotations

import os
import threading

import numpy as np

from . import _epoch  # ImportError where the extension was not built: train.py then keeps its NumPy loop
from .errors import SoftmaxError, shown
from .train import is_sparse


def _avx2_module():
    """Return _epoch_avx2, the kernel built with AVX2 and FMA (setup.py), where it was built and this processor has
    them, else None."""
    if not _epoch.processor_has_avx2():
        return None  # (its instructions would crash this processor, even at import)
    try:
        from . import _epoch_avx2
    except ImportError:
        return None
    return _epoch_avx2


KERNELS = {"any": _epoch}  # the kernel's forms this processor can run, by their instructions: "any", "avx2"
if (_avx2 := _avx2_module()) is not None:
    KERNELS["avx2"] = _avx2
_kernel = KERNELS.get("avx2", _epoch)  # the fastest form this processor runs, unless use_instructions says otherwise


def use_instructions(use: str = "best") -> str:
    """Make later epochs take the fastest kernel this processor runs ("best") or the one for any processor ("any",
    for tests: every form must give the reference loop's results); return the instructions of the one taken."""
    global _kernel
    name = "avx2" if use != "any" and "avx2" in KERNELS else "any"
    _kernel = KERNELS[name]
    return name


def instructions() -> str:
    """Return the instructions of the kernel later epochs take: "avx2" or "any"."""
    return "avx2" if _kernel is KERNELS.get("avx2") else "any"


LANES = _epoch.LANES    # classes a group holds: in vectors of four floats (any processor) or eight (AVX2)
MAX_GROUPS = _epoch.MAX_GROUPS  # at most LANES * MAX_GROUPS = 1024 classes (the kernel's scratch for a row's logits)
LOSSES = {"cross-entropy": 0, "mse": 1}
WIDE_FEATURES = 2**16   # more features than this: columns as uint32 instead of uint16
TWO_THREADS_FROM = 2**22  # values (MNIST has 47 million): fewer are compressed on one thread
PIECES = 2              # threads that compress the rows at most (each a half)


def usable_threads() -> int:
    """Return how many threads compressing the rows may use: the cores this process may run on, at most PIECES, at most
    SOFTMAX_THREADS where it is set."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    limit = os.environ.get("SOFTMAX_THREADS", "").strip()
    if limit:
        # isascii: str.isdigit takes '٢' and '²'; no int() of the digits, which raises past 4,300 of them
        digits = limit.lstrip("0")
        if not (limit.isascii() and limit.isdigit() and digits):
            raise SoftmaxError(f"SOFTMAX_THREADS must be a whole number at least 1, got {shown(limit, 40)}: "
                               "set it to 1 to train on one thread, or unset it")
        cores = min(cores, int(digits) if len(digits) < 4 else cores)
    return max(1, min(PIECES, cores))


def supports(n_classes: int, loss: str) -> bool:
    """Return whether the compiled epoch can train this many classes with this loss."""
    return loss in LOSSES and n_classes <= LANES * MAX_GROUPS


class Rows:
    """The rows of a 2D training set X compressed as the compiled epoch reads them (CSR): indptr (where each row
    starts among the values), columns (uint16, or uint32 past WIDE_FEATURES features) and values (uint8 for pixels,
    else float32)."""

    def __init__(self, X: np.ndarray):
        self.X = X
        self.floats = X.dtype != np.uint8
        self.wide = X.shape[1] > WIDE_FEATURES
        if is_sparse(X):  # already compressed: taken as the dense rows would be (sorted columns, no zero stored)
            X = X.tocsr().astype(np.float32)  # a copy
            X.sum_duplicates()
            X.eliminate_zeros()
            self.indptr = X.indptr.astype(np.int64)
            self.columns = X.indices.astype(np.uint32 if self.wide else np.uint16)
            self.values, self.floats = X.data, True
            self.density = X.nnz / max(1, X.shape[0] * X.shape[1])
            return
        data = np.ascontiguousarray(X, np.float32 if self.floats else np.uint8)
        # large data: the two halves of the rows on two threads (the C loops let go of the GIL), counted, then filled
        # in place; small data (digits' fits) was 1.4x slower so beside a busy core: one thread
        two = usable_threads() > 1 and X.size >= TWO_THREADS_FROM  # (a bad SOFTMAX_THREADS fails at any size)
        halves = [data[: len(data) // 2], data[len(data) // 2:]] if two else [data]
        starts = [np.empty(len(half) + 1, np.int64) for half in halves]
        _on_threads([lambda half=half, start=start: _epoch.compress(half, len(half), X.shape[1], self.floats,
                                                                    self.wide, start)
                     for half, start in zip(halves, starts)])
        ends = np.cumsum([start[-1] for start in starts])
        self.columns = np.empty(ends[-1], np.uint32 if self.wide else np.uint16)
        self.values = np.empty(ends[-1], np.float32 if self.floats else np.uint8)
        _on_threads([lambda half=half, start=start, lo=end - start[-1], hi=end: _epoch.compress(
                         half, len(half), X.shape[1], self.floats, self.wide, start, self.columns[lo:hi],
                         self.values[lo:hi])
                     for half, start, end in zip(halves, starts, ends)])
        self.indptr = np.concatenate([starts[0][:-1], *(start[:-1] + end for start, end in zip(starts[1:], ends)),
                                      ends[-1:]])
        self.density = self.indptr[-1] / max(1, X.size)


def _on_threads(calls) -> None:
    """Make each call, the first on this thread and each other one on a thread of its own, all at once; raise
    what any of them raised."""
    raised = []

    def call_catching(call):
        try:
            call()
        except BaseException as e:  # (MemoryError) raised again below, on the caller's thread
            raised.append(e)

    threads = [threading.Thread(target=call_catching, args=(call,)) for call in calls[1:]]
    for thread in threads:
        thread.start()
    call_catching(calls[0])
    for thread in threads:
        thread.join()
    if raised:
        raise raised[0]


def _grouped(array: np.ndarray, groups: int) -> np.ndarray:
    """Return a (classes, features + 1) array laid out (groups, features + 1, LANES), padded with zero classes."""
    k, d1 = array.shape
    padded = np.zeros((groups * LANES, d1), array.dtype)
    padded[:k] = array
    return np.ascontiguousarray(padded.reshape(groups, LANES, d1).transpose(0, 2, 1))


def epoch(rows: Rows, order, labels, predicted, weights, velocity, summed, lrs, first_averaged: int, batch_size: int,
          gradient_scale: float, l2: float, momentum: float, bias: float, loss: str, row_weights=None) -> float:
    """Make the len(lrs) steps of an epoch over rows, as Trainer._numpy_epoch does: update weights, velocity
    (classes, features + 1) and summed in place, put each row's argmax in predicted; return the summed loss.
    row_weights (in the epoch's order, like labels) weigh each row's loss and gradient; None: all 1."""
    k, d1 = weights.shape
    groups = -(-k // LANES)
    laid_out = [_grouped(array, groups) for array in (weights, velocity, summed)]
    argmax = np.empty(len(order), np.int64)
    total = _kernel.epoch(
        rows.indptr, rows.columns, rows.values, np.ascontiguousarray(order, np.int64),
        np.ascontiguousarray(labels, np.int64), argmax, *laid_out, np.empty((PIECES, *laid_out[0].shape), np.float32),
        np.ascontiguousarray(lrs, np.float64),
        np.empty(0, np.float32) if row_weights is None else np.ascontiguousarray(row_weights, np.float32),
        first_averaged, batch_size, d1 - 1, groups, k,
        gradient_scale, l2, momentum, bias, LOSSES[loss], rows.wide, rows.floats)
    for array, grouped in zip((weights, velocity, summed), laid_out):
        array[:] = grouped.transpose(0, 2, 1).reshape(groups * LANES, d1)[:k]
    predicted[:] = argmax
    return total
