"""The fast loop's epoch for long runs, compiled by numba: every step's products, softmax and update in one call.

A step of the default recipe is two small matrix products and about twenty NumPy calls of glue around them,
whose per-call overhead costs more than the products' arithmetic (bench/floor.py). Here one compiled call makes
Threads.SEGMENT steps. Each batch is cut into CHUNKS fixed pieces; each piece's rows are cast, multiplied, put
through the softmax and multiplied back TILE rows at a time (the tile stays in cache, so each pixel is cast once
a step and no copy of the batch is made), and the pieces' gradients are summed in a fixed order before the
update. The pieces are the same whatever the number of threads, so the weights are too: one thread or four,
the same bits.

Importing numba and loading the cached machine code costs about a second per process, so train.py imports
this module only for runs long enough to win that back (train.COMPILED_MIN_STEPS), and keeps its NumPy loop
when numba is missing: both loops are tested against the float64 reference loop. `_epoch` has the contract of
Trainer.train_epoch's NumPy loop for the cross-entropy.

Threads: as many as the machine lets this process use, at most CHUNKS; NUMBA_NUM_THREADS=1 keeps one. A thread
that waits for a busy core can make a step forty times slower, so Threads times both ways now and then and
takes the faster one (the weights do not depend on it).
"""

from __future__ import annotations

import math
import os
import time
import types

import numba
import numpy as np
from llvmlite import ir
from numba.core import cgutils
from numba.extending import intrinsic

CHUNKS = 4   # pieces of every batch, each its own partial gradient (and at most this many threads)
TILE = 8     # rows a piece multiplies at once: _add_gradient takes eight, _logits four at a time
# the float rules the products may bend: reorder sums (to use vector registers) and fuse multiply-adds;
# never assume away NaN or infinity, which divergence checks rely on
_FASTMATH = {"nsz", "arcp", "contract", "reassoc"}
_jit = numba.njit(cache=True, nogil=True, error_model="numpy", fastmath=_FASTMATH)


@intrinsic
def _prefetch(typingctx, array, row, offset):
    """Ask the processor to start fetching, into its caches, the byte at offset in a row of a 2D array."""
    def codegen(context, builder, signature, arguments):
        data = context.make_array(signature.args[0])(context, builder, arguments[0])
        intp = context.get_value_type(numba.types.intp)
        row_stride = cgutils.unpack_tuple(builder, data.strides)[0]
        address = builder.add(builder.ptrtoint(data.data, intp),
                              builder.add(builder.mul(arguments[1], row_stride), arguments[2]))
        byte_pointer, i32 = ir.IntType(8).as_pointer(), ir.IntType(32)
        prefetch = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(ir.VoidType(), [byte_pointer, i32, i32, i32]), "llvm.prefetch.p0i8")
        # read, keep in all cache levels, data
        builder.call(prefetch, [builder.inttoptr(address, byte_pointer), i32(0), i32(3), i32(1)])
        return context.get_dummy_value()
    return numba.types.void(array, numba.types.intp, numba.types.intp), codegen


@_jit
def _fetch_rows(X, rows):
    """Start fetching the rows of X named by rows (the next tile's, while this one is multiplied)."""
    for i in range(rows.shape[0]):
        for offset in range(0, X.shape[1] * X.itemsize, 64):  # a cache line at a time
            _prefetch(X, rows[i], offset)


@_jit
def _softmax_row(z, label):
    """Return (cross-entropy, argmax) of the logits z against label; z becomes softmax(z) - one_hot(label)."""
    largest, best = z[0], 0
    for c in range(1, z.shape[0]):
        if z[c] > largest:
            largest, best = z[c], c
    true_logit = z[label] - largest
    total = 0.0
    for c in range(z.shape[0]):
        z[c] = math.exp(z[c] - largest)  # the largest logit becomes 0: exp cannot overflow
        total += z[c]
    for c in range(z.shape[0]):
        z[c] = z[c] / total
    z[label] -= 1
    return math.log(total) - true_logit, best  # total >= 1: never log(0)


@_jit
def _cast(X, row, x, bias):
    """Copy row `row` of X into x as float32, with the bias input last."""
    for j in range(X.shape[1]):
        x[j] = X[row, j]
    x[X.shape[1]] = bias


@_jit
def _logits(tile, W, z):
    """Set z[:TILE] to the logits tile @ W.T: four rows and two classes at a time, each weight and pixel loaded
    from cache once for eight multiply-adds."""
    k, d1 = W.shape
    for h in range(0, TILE, 4):
        x0, x1, x2, x3 = tile[h], tile[h + 1], tile[h + 2], tile[h + 3]
        for c in range(0, k - 1, 2):
            w, v = W[c], W[c + 1]
            a0 = a1 = a2 = a3 = b0 = b1 = b2 = b3 = np.float32(0.0)
            for j in range(d1):
                a0 += x0[j] * w[j]
                a1 += x1[j] * w[j]
                a2 += x2[j] * w[j]
                a3 += x3[j] * w[j]
                b0 += x0[j] * v[j]
                b1 += x1[j] * v[j]
                b2 += x2[j] * v[j]
                b3 += x3[j] * v[j]
            z[h, c], z[h + 1, c], z[h + 2, c], z[h + 3, c] = a0, a1, a2, a3
            z[h, c + 1], z[h + 1, c + 1], z[h + 2, c + 1], z[h + 3, c + 1] = b0, b1, b2, b3
        if k % 2:  # the last class of an odd number
            w = W[k - 1]
            a0 = a1 = a2 = a3 = np.float32(0.0)
            for j in range(d1):
                a0 += x0[j] * w[j]
                a1 += x1[j] * w[j]
                a2 += x2[j] * w[j]
                a3 += x3[j] * w[j]
            z[h, k - 1], z[h + 1, k - 1], z[h + 2, k - 1], z[h + 3, k - 1] = a0, a1, a2, a3


@_jit
def _add_gradient(tile, z, G):
    """Add z[:TILE].T @ tile to G: eight rows at a time, each gradient entry loaded and stored once for eight."""
    x0, x1, x2, x3, x4, x5, x6, x7 = tile[0], tile[1], tile[2], tile[3], tile[4], tile[5], tile[6], tile[7]
    for c in range(G.shape[0]):
        g = G[c]
        z0, z1, z2, z3, z4, z5, z6, z7 = z[0, c], z[1, c], z[2, c], z[3, c], z[4, c], z[5, c], z[6, c], z[7, c]
        for j in range(G.shape[1]):
            g[j] += (z0 * x0[j] + z1 * x1[j] + z2 * x2[j] + z3 * x3[j]) + (
                z4 * x4[j] + z5 * x5[j] + z6 * x6[j] + z7 * x7[j])


@_jit
def piece_gradient(X, rows, labels, predicted, W, G, tile, z, bias):
    """Set G to the summed gradient (softmax - Y).T @ x over the rows of X named by rows; return their summed
    cross-entropy, and put each row's argmax in predicted.

    W is (classes, features + 1) raw weights, the last column the bias; tile (TILE, features + 1) and
    z (TILE, classes) are scratch. A last tile of fewer rows is filled with rows of zeros (bias too), whose
    gradient is exactly zero.
    """
    G[:, :] = 0.0
    loss = 0.0
    for i in range(0, rows.shape[0], TILE):
        m = min(TILE, rows.shape[0] - i)
        for q in range(m):
            _cast(X, rows[i + q], tile[q], bias)
        tile[m:, :] = 0.0
        _fetch_rows(X, rows[i + TILE:i + 2 * TILE])  # random rows of MNIST: memory latency, hidden this way
        _logits(tile, W, z)
        for q in range(m):
            row_loss, predicted[i + q] = _softmax_row(z[q], labels[i + q])
            loss += row_loss
        z[m:TILE, :] = 0.0
        _add_gradient(tile, z, G)
    return loss


def _epoch(X, order, labels, predicted, weights, velocity, summed, lrs, first_averaged, batch_size,
           gradient_scale, l2, momentum, bias, partial, tiles, zs, losses, first, stop):
    """Make steps first to stop - 1 of an epoch over the rows of X in `order` (labels in the same order); return
    their summed loss.

    Step s has learning rate lrs[s] and adds its new weights to summed from step first_averaged on. Heavy-ball
    momentum on the raw weights, the bias (last column) not decayed: Trainer.train_epoch's NumPy loop.
    partial, tiles, zs and losses are scratch, as scratch() makes them: no index is checked here.
    """
    n = order.shape[0]
    k, d1 = weights.shape
    bias_column = d1 - 1
    loss = 0.0
    for s in range(first, stop):
        start = s * batch_size
        m = min(batch_size, n - start)
        per = ((m + CHUNKS - 1) // CHUNKS + TILE - 1) // TILE * TILE  # whole tiles but in the last piece
        for p in numba.prange(CHUNKS):
            lo, hi = start + min(m, p * per), start + min(m, (p + 1) * per)
            losses[p] = piece_gradient(X, order[lo:hi], labels[lo:hi], predicted[lo:hi], weights, partial[p],
                                       tiles[p], zs[p], bias)
        for p in range(CHUNKS):
            loss += losses[p]
        scale, lr, averaged = gradient_scale / m, lrs[s], s >= first_averaged
        for a in range(k):
            for j in range(d1):
                gradient = partial[0, a, j]
                for p in range(1, CHUNKS):
                    gradient += partial[p, a, j]
                step = gradient * scale
                if l2 != 0 and j != bias_column:
                    step += l2 * weights[a, j]
                if momentum != 0:
                    step += momentum * velocity[a, j]
                    velocity[a, j] = step
                weights[a, j] -= lr * step
                if averaged:
                    summed[a, j] += weights[a, j]
    return loss


def scratch(n_classes: int, n_inputs: int) -> tuple[np.ndarray, ...]:
    """Return _epoch's scratch arrays (partial, tiles, zs, losses) for weights of shape (n_classes, n_inputs)."""
    return (np.empty((CHUNKS, n_classes, n_inputs), np.float32),
            np.empty((CHUNKS, TILE, n_inputs), np.float32),
            np.empty((CHUNKS, 2 * TILE, n_classes), np.float32),  # 2 * TILE rows: the pieces' z apart in the cache
            np.empty(CHUNKS))


def _named(function, name: str):
    """Return a copy of function called name: numba's cache files are named after a function, so the serial and
    the parallel machine code of one function need two names."""
    copy = types.FunctionType(function.__code__, function.__globals__, name, function.__defaults__)
    copy.__qualname__, copy.__doc__ = name, function.__doc__
    return copy


epoch_serial = numba.njit(cache=True, nogil=True, error_model="numpy")(_named(_epoch, "epoch_serial"))
epoch_parallel = numba.njit(cache=True, nogil=True, error_model="numpy", parallel=True)(
    _named(_epoch, "epoch_parallel"))


def usable_threads() -> int:
    """Return how many threads an epoch may use: the cores this process may run on, NUMBA_NUM_THREADS, CHUNKS."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(CHUNKS, cores, numba.config.NUMBA_NUM_THREADS))


class Threads:
    """Runs an epoch's steps a segment at a time, each on one thread or several, whichever was faster when last
    timed. The other way is timed again on a few steps now and then, less and less often while it keeps losing.
    Before a timing, one step runs untimed: it loads the way's machine code the first time, and wakes its threads.
    """

    SEGMENT = 25      # steps of one call
    PROBE = 5         # steps of a timing: few, as a way can be forty times slower
    PROBE_EVERY = 40  # segments between two timings of the slower way, at first; doubled each time it loses
    WIN = 0.8         # the other way is taken when its step took less than this fraction of the current way's

    def __init__(self, threads: int | None = None):
        self.threads = usable_threads() if threads is None else threads  # at most this many
        self.per_step: dict[str, float] = {}  # seconds a step took, by way: the current's running mean
        self.current = "parallel" if self.threads > 1 else "serial"
        self.interval = self.PROBE_EVERY
        self.until_probe = self.interval

    def epoch(self, n_steps: int, *arguments) -> float:
        """Return the summed loss of the n_steps steps of _epoch(*arguments, first, stop), made segment by segment."""
        loss, first = 0.0, 0
        while first < n_steps:
            way = self._way()
            steps = self.SEGMENT
            if way != self.current or way not in self.per_step:  # a timing
                loss += self._run(way, arguments, first, first + 1)
                first, steps = first + 1, self.PROBE
                if first == n_steps:
                    break
            stop = min(n_steps, first + steps)
            started = time.perf_counter()
            loss += self._run(way, arguments, first, stop)
            self._record(way, (time.perf_counter() - started) / (stop - first))
            first = stop
        return loss

    def _way(self) -> str:
        if self.threads == 1:
            return "serial"
        other = "serial" if self.current == "parallel" else "parallel"
        if self.current not in self.per_step:
            return self.current
        return other if other not in self.per_step or self.until_probe <= 0 else self.current

    def _run(self, way: str, arguments, first: int, stop: int) -> float:
        if way == "parallel" and self.threads > 1:
            numba.set_num_threads(self.threads)
            try:
                return epoch_parallel(*arguments, first, stop)
            except ValueError as e:  # no threading layer (neither OpenMP nor TBB) could be loaded: one thread
                if "threading layer" not in str(e):
                    raise
                self.threads, self.current = 1, "serial"
        return epoch_serial(*arguments, first, stop)

    def _record(self, way: str, seconds: float) -> None:
        if self.threads == 1:
            return
        if way == self.current:  # a running mean, so that one disturbed segment does not decide
            last = self.per_step.get(way)
            self.per_step[way] = seconds if last is None else 0.75 * last + 0.25 * seconds
            self.until_probe -= 1
        else:  # a timing of the other way: take it if it was clearly faster, else time it half as often
            self.per_step[way] = seconds
            if seconds < self.WIN * self.per_step.get(self.current, math.inf):
                self.current, self.interval = way, self.PROBE_EVERY
            else:
                self.interval = min(2 * self.interval, 64 * self.PROBE_EVERY)
            self.until_probe = self.interval
