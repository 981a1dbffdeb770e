"""The fast loop's epoch for long runs, compiled by numba: every step's products, softmax and update in one call.

A step of the default recipe is two small matrix products and about twenty NumPy calls of glue around them,
whose per-call overhead costs more than the products' arithmetic (bench/floor.py). Here one compiled call makes
Threads.SEGMENT steps. Each batch is cut into CHUNKS fixed pieces, each piece's gradient is made on its own, and
the pieces' gradients are summed in a fixed order before the update. The pieces are the same whatever the number
of threads, so the weights are too: one thread or two, the same bits.

The products take one of two forms, chosen by the data (Rows):
- dense: each piece's rows are cast, multiplied, put through the softmax and multiplied back TILE rows at a time
  (the tile stays in cache, so each pixel is cast once a step and no copy of the batch is made);
- sparse, for data with few non-zero values (MNIST: 19 %): the rows are compressed once a run (CSR), and each
  non-zero value adds its weights' row to the logits and its share to the gradient's row, sixteen classes at a
  time in two vector registers. The weights are laid out (groups of GROUP classes, features + 1, GROUP) for it.

Importing numba and loading the cached machine code costs about a second per process, so train.py imports
this module only for runs long enough to win that back (train.COMPILED_MIN_STEPS), and keeps its NumPy loop
when numba is missing: both loops are tested against the float64 reference loop. `epoch` has the contract of
Trainer.train_epoch's NumPy loop for the cross-entropy.

Threads: as many as the machine lets this process use, at most CHUNKS; NUMBA_NUM_THREADS=1 keeps one. A thread
that waits for a busy core can make a step forty times slower, so Threads times both ways now and then and
takes the faster one (the weights do not depend on it).
"""

from __future__ import annotations

import contextlib
import math
import os
import time
import types

import numba
import numpy as np
from llvmlite import ir
from numba.core import cgutils
from numba.extending import intrinsic

# pieces of every batch, each its own partial gradient, and at most this many threads: two, as more pieces cost
# more zeroing and summing of partial gradients a step (four made MNIST's epochs 6-8 % slower on two cores)
CHUNKS = 2
TILE = 8     # rows a piece multiplies at once: _add_gradient takes eight, _logits four at a time
GROUP = 16   # classes the sparse products take at once: two vector registers of eight float32
AHEAD = 2    # rows ahead of the one multiplied whose compressed values the sparse products start fetching
SPARSE_DENSITY = 0.25  # at most this fraction of values not zero: the sparse products (break-even 0.26 measured)
# the float rules the products may bend: reorder sums (to use vector registers) and fuse multiply-adds;
# never assume away NaN or infinity, which divergence checks rely on
_FASTMATH = {"nsz", "arcp", "contract", "reassoc"}
_jit = numba.njit(cache=True, nogil=True, error_model="numpy", fastmath=_FASTMATH)
# the sparse products' sixteen classes in vector registers: only fused multiply-adds, as reordering the sums over
# the pixels made LLVM vectorise those instead, with slow gathers of weights
_jit_lanes = numba.njit(cache=True, nogil=True, error_model="numpy", fastmath={"contract"})


@contextlib.contextmanager
def _vectorising():
    """Compile, within, with LLVM's SLP vectoriser on (numba's default is off): it puts the sixteen classes of
    the sparse products, written out lane by lane, into vector registers."""
    before, numba.config.SLP_VECTORIZE = numba.config.SLP_VECTORIZE, 1
    try:
        yield
    finally:
        numba.config.SLP_VECTORIZE = before


@intrinsic
def _prefetch(typingctx, array, offset):
    """Ask the processor to start fetching, into its caches, the byte at offset from the start of an array."""
    def codegen(context, builder, signature, arguments):
        data = context.make_array(signature.args[0])(context, builder, arguments[0])
        intp = context.get_value_type(numba.types.intp)
        address = builder.add(builder.ptrtoint(data.data, intp), arguments[1])
        byte_pointer, i32 = ir.IntType(8).as_pointer(), ir.IntType(32)
        prefetch = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(ir.VoidType(), [byte_pointer, i32, i32, i32]), "llvm.prefetch.p0i8")
        # read, keep in all cache levels, data
        builder.call(prefetch, [builder.inttoptr(address, byte_pointer), i32(0), i32(3), i32(1)])
        return context.get_dummy_value()
    return numba.types.void(array, numba.types.intp), codegen


@_jit
def _fetch_rows(X, rows):
    """Start fetching the rows of X named by rows (the next tile's, while this one is multiplied)."""
    for i in range(rows.shape[0]):
        start = rows[i] * X.strides[0]
        for offset in range(start, start + X.shape[1] * X.itemsize, 64):  # a cache line at a time
            _prefetch(X, offset)


@_jit
def _fetch_sparse_row(columns, values, lo, hi):
    """Start fetching the compressed values lo to hi - 1, columns and values (a row's, a few rows before it is
    multiplied)."""
    for offset in range(lo * columns.itemsize, hi * columns.itemsize + 63, 64):
        _prefetch(columns, offset)
    for offset in range(lo * values.itemsize, hi * values.itemsize + 63, 64):
        _prefetch(values, offset)


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


@_jit_lanes
def _group_logits(columns, values, W, z, bias):
    """Set z[:GROUP] to the logits of one compressed row for a group of GROUP classes: W (features + 1, GROUP), its
    last row the bias. Two chains of eight lanes, one vector register each."""
    w = W[W.shape[0] - 1]
    a0 = bias * w[0]; a1 = bias * w[1]; a2 = bias * w[2]; a3 = bias * w[3]
    a4 = bias * w[4]; a5 = bias * w[5]; a6 = bias * w[6]; a7 = bias * w[7]
    b0 = bias * w[8]; b1 = bias * w[9]; b2 = bias * w[10]; b3 = bias * w[11]
    b4 = bias * w[12]; b5 = bias * w[13]; b6 = bias * w[14]; b7 = bias * w[15]
    for t in range(columns.shape[0]):
        v = values[t]
        w = W[columns[t]]
        a0 += v * w[0]; a1 += v * w[1]; a2 += v * w[2]; a3 += v * w[3]
        a4 += v * w[4]; a5 += v * w[5]; a6 += v * w[6]; a7 += v * w[7]
        b0 += v * w[8]; b1 += v * w[9]; b2 += v * w[10]; b3 += v * w[11]
        b4 += v * w[12]; b5 += v * w[13]; b6 += v * w[14]; b7 += v * w[15]
    z[0] = a0; z[1] = a1; z[2] = a2; z[3] = a3; z[4] = a4; z[5] = a5; z[6] = a6; z[7] = a7
    z[8] = b0; z[9] = b1; z[10] = b2; z[11] = b3; z[12] = b4; z[13] = b5; z[14] = b6; z[15] = b7


@_jit_lanes
def _group_gradient(columns, values, G, z, bias):
    """Add the gradient of one compressed row, z[:GROUP] its d loss / d logits, to G (features + 1, GROUP)."""
    a0 = z[0]; a1 = z[1]; a2 = z[2]; a3 = z[3]; a4 = z[4]; a5 = z[5]; a6 = z[6]; a7 = z[7]
    b0 = z[8]; b1 = z[9]; b2 = z[10]; b3 = z[11]; b4 = z[12]; b5 = z[13]; b6 = z[14]; b7 = z[15]
    for t in range(columns.shape[0]):
        v = values[t]
        g = G[columns[t]]
        g[0] += v * a0; g[1] += v * a1; g[2] += v * a2; g[3] += v * a3
        g[4] += v * a4; g[5] += v * a5; g[6] += v * a6; g[7] += v * a7
        g[8] += v * b0; g[9] += v * b1; g[10] += v * b2; g[11] += v * b3
        g[12] += v * b4; g[13] += v * b5; g[14] += v * b6; g[15] += v * b7
    g = G[G.shape[0] - 1]
    g[0] += bias * a0; g[1] += bias * a1; g[2] += bias * a2; g[3] += bias * a3
    g[4] += bias * a4; g[5] += bias * a5; g[6] += bias * a6; g[7] += bias * a7
    g[8] += bias * b0; g[9] += bias * b1; g[10] += bias * b2; g[11] += bias * b3
    g[12] += bias * b4; g[13] += bias * b5; g[14] += bias * b6; g[15] += bias * b7


@_jit
def sparse_piece_gradient(starts, ends, columns, values, labels, predicted, W, G, z, bias, n_classes):
    """Set G to the summed gradient over the compressed rows whose values are starts[i] to ends[i] - 1; return their
    summed cross-entropy, and put each row's argmax in predicted. W and G are (groups, features + 1, GROUP), z
    (groups * GROUP) scratch; the classes from n_classes on are padding, their weights and gradient zero."""
    G[:, :, :] = 0.0
    bias = np.float32(bias)
    loss = 0.0
    n = starts.shape[0]
    for i in range(min(AHEAD, n)):
        _fetch_sparse_row(columns, values, starts[i], ends[i])
    for i in range(n):
        if i + AHEAD < n:  # random rows: hide their memory latency
            _fetch_sparse_row(columns, values, starts[i + AHEAD], ends[i + AHEAD])
        lo, hi = starts[i], ends[i]
        for g in range(W.shape[0]):
            _group_logits(columns[lo:hi], values[lo:hi], W[g], z[g * GROUP:(g + 1) * GROUP], bias)
        row_loss, predicted[i] = _softmax_row(z[:n_classes], labels[i])
        loss += row_loss
        z[n_classes:] = 0.0
        for g in range(W.shape[0]):
            _group_gradient(columns[lo:hi], values[lo:hi], G[g], z[g * GROUP:(g + 1) * GROUP], bias)
    return loss


@_jit
def _update(weights, velocity, summed, partial, decay, scale, lr, momentum, averaged):
    """Make one step of heavy-ball momentum on the weights, all flat, in float32 as the NumPy loop does: the
    gradient is the sum of the pieces' partial gradients (partial, one row each) in their order, times scale, plus
    decay (l2, 0 at the bias) times the weights. Add the new weights to summed if averaged."""
    scale, lr, momentum = np.float32(scale), np.float32(lr), np.float32(momentum)
    for e in range(weights.shape[0]):
        gradient = partial[0, e]
        for p in range(1, CHUNKS):
            gradient += partial[p, e]
        step = gradient * scale + decay[e] * weights[e]
        if momentum != 0:
            step += momentum * velocity[e]
            velocity[e] = step
        weights[e] -= lr * step
        if averaged:
            summed[e] += weights[e]


def _dense_epoch(X, order, labels, predicted, weights, velocity, summed, decay, lrs, first_averaged, batch_size,
                 gradient_scale, momentum, bias, partial, tiles, zs, losses, first, stop):
    """Make steps first to stop - 1 of an epoch over the rows of X in `order` (labels in the same order); return
    their summed loss.

    Step s has learning rate lrs[s] and adds its new weights to summed from step first_averaged on; the weights
    are (classes, features + 1). partial, tiles, zs and losses are scratch, as epoch() makes them: no index is
    checked here.
    """
    n, size = order.shape[0], weights.size
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
        _update(weights.reshape(size), velocity.reshape(size), summed.reshape(size), partial.reshape((CHUNKS, size)),
                decay, gradient_scale / m, lrs[s], momentum, s >= first_averaged)
    return loss


def _sparse_epoch(starts, ends, columns, values, labels, predicted, weights, velocity, summed, decay, lrs,
                  first_averaged, batch_size, gradient_scale, momentum, bias, n_classes, partial, zs, losses, first,
                  stop):
    """_dense_epoch for compressed rows, the weights (groups, features + 1, GROUP): row i of the epoch (in its
    order) has the values starts[i] to ends[i] - 1."""
    n, size = starts.shape[0], weights.size
    loss = 0.0
    for s in range(first, stop):
        start = s * batch_size
        m = min(batch_size, n - start)
        per = (m + CHUNKS - 1) // CHUNKS
        for p in numba.prange(CHUNKS):
            lo, hi = start + min(m, p * per), start + min(m, (p + 1) * per)
            losses[p] = sparse_piece_gradient(starts[lo:hi], ends[lo:hi], columns, values, labels[lo:hi],
                                              predicted[lo:hi], weights, partial[p], zs[p], bias, n_classes)
        for p in range(CHUNKS):
            loss += losses[p]
        _update(weights.reshape(size), velocity.reshape(size), summed.reshape(size), partial.reshape((CHUNKS, size)),
                decay, gradient_scale / m, lrs[s], momentum, s >= first_averaged)
    return loss


def _named(function, name: str):
    """Return a copy of function called name: numba's cache files are named after a function, so the serial and
    the parallel machine code of one function need two names."""
    copy = types.FunctionType(function.__code__, function.__globals__, name, function.__defaults__)
    copy.__qualname__, copy.__doc__ = name, function.__doc__
    return copy


def _kernels(function, name: str):
    """Return the serial and the parallel machine code of an epoch function, (serial, parallel)."""
    return (numba.njit(cache=True, nogil=True, error_model="numpy")(_named(function, f"{name}_serial")),
            numba.njit(cache=True, nogil=True, error_model="numpy", parallel=True)(
                _named(function, f"{name}_parallel")))


DENSE = _kernels(_dense_epoch, "dense_epoch")
SPARSE = _kernels(_sparse_epoch, "sparse_epoch")


@_jit
def _row_starts(X):
    """Return where each row of X starts among its non-zero values, and the end of the last (the CSR indptr)."""
    indptr = np.zeros(X.shape[0] + 1, np.int64)
    for i in range(X.shape[0]):
        count = 0
        for j in range(X.shape[1]):
            count += X[i, j] != 0
        indptr[i + 1] = indptr[i] + count
    return indptr


@_jit
def _compress(X, indptr, columns, values):
    """Fill columns and values with the non-zero values of X, row by row, indptr[i] where row i starts."""
    for i in range(X.shape[0]):
        t = indptr[i]
        for j in range(X.shape[1]):
            if X[i, j] != 0:
                columns[t], values[t] = j, X[i, j]
                t += 1


class Rows:
    """The rows of a 2D training set X as the compiled epoch reads them: X itself, or, for data with at most
    SPARSE_DENSITY non-zero values (or with sparse=True), compressed: indptr, columns, values (CSR; the values
    float32, or uint8 for pixels)."""

    def __init__(self, X: np.ndarray, sparse: bool | None = None):
        self.X = X
        self.indptr = _row_starts(X)
        self.density = self.indptr[-1] / max(1, X.size)
        self.sparse = self.density <= SPARSE_DENSITY if sparse is None else sparse
        if self.sparse:
            self.columns = np.empty(self.indptr[-1], np.uint16 if X.shape[1] < 2**16 else np.uint32)
            self.values = np.empty(self.indptr[-1], np.uint8 if X.dtype == np.uint8 else np.float32)
            _compress(X, self.indptr, self.columns, self.values)


def _grouped(array: np.ndarray, groups: int) -> np.ndarray:
    """Return a (classes, features + 1) array laid out (groups, features + 1, GROUP), padded with zero classes."""
    k, d1 = array.shape
    padded = np.zeros((groups * GROUP, d1), array.dtype)
    padded[:k] = array
    return np.ascontiguousarray(padded.reshape(groups, GROUP, d1).transpose(0, 2, 1))


def epoch(threads: Threads, rows: Rows, order, labels, predicted, weights, velocity, summed, lrs, first_averaged: int,
          batch_size: int, gradient_scale: float, l2: float, momentum: float, bias: float) -> float:
    """Make the len(lrs) steps of an epoch over rows, as Trainer.train_epoch's NumPy loop does for the
    cross-entropy: update weights, velocity (classes, features + 1) and summed in place, put each row's argmax in
    predicted; return the summed loss."""
    k, d1 = weights.shape
    lrs = np.asarray(lrs, np.float64)
    losses = np.empty(CHUNKS)
    if not rows.sparse:
        decay = np.full((k, d1), l2, np.float32)
        decay[:, -1] = 0  # the bias is not decayed
        return threads.run(
            DENSE, len(lrs), rows.X, order, labels, predicted, weights, velocity, summed, decay.reshape(-1), lrs,
            first_averaged, batch_size, gradient_scale, momentum, bias,
            np.empty((CHUNKS, k, d1), np.float32), np.empty((CHUNKS, TILE, d1), np.float32),
            np.empty((CHUNKS, 2 * TILE, k), np.float32), losses)  # 2 * TILE rows: the pieces' z apart in the cache
    groups = -(-k // GROUP)
    laid_out = [_grouped(array, groups) for array in (weights, velocity, summed)]
    decay = np.full((groups, d1, GROUP), l2, np.float32)
    decay[:, -1] = 0
    loss = threads.run(
        SPARSE, len(lrs), rows.indptr[order], rows.indptr[order + 1], rows.columns, rows.values, labels, predicted,
        *laid_out,
        decay.reshape(-1), lrs, first_averaged, batch_size, gradient_scale, momentum, bias, k,
        np.empty((CHUNKS, groups, d1, GROUP), np.float32), np.empty((CHUNKS, 2 * groups * GROUP), np.float32), losses)
    for array, grouped in zip((weights, velocity, summed), laid_out):
        array[:] = grouped.transpose(0, 2, 1).reshape(groups * GROUP, d1)[:k]
    return loss


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

    def run(self, kernels, n_steps: int, *arguments) -> float:
        """Return the summed loss of the n_steps steps of kernel(*arguments, first, stop), made segment by segment,
        kernel one of kernels, (serial, parallel)."""
        loss, first = 0.0, 0
        if self.threads > 1:
            try:
                numba.set_num_threads(self.threads)  # (for this Python thread's parallel kernels)
            except ValueError as e:
                self._one_thread(e)
        with _vectorising():  # (the kernels compile the first time)
            while first < n_steps:
                way = self._way()
                steps = self.SEGMENT
                if way != self.current or way not in self.per_step:  # a timing
                    loss += self._run(kernels, way, arguments, first, first + 1)
                    first, steps = first + 1, self.PROBE
                    if first == n_steps:
                        break
                stop = min(n_steps, first + steps)
                started = time.perf_counter()
                loss += self._run(kernels, way, arguments, first, stop)
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

    def _run(self, kernels, way: str, arguments, first: int, stop: int) -> float:
        serial, parallel = kernels
        if way == "parallel" and self.threads > 1:
            try:
                return parallel(*arguments, first, stop)
            except ValueError as e:
                self._one_thread(e)
        return serial(*arguments, first, stop)

    def _one_thread(self, error: ValueError) -> None:
        """Go on with one thread if error says that no threading layer (neither OpenMP nor TBB) could be loaded;
        else raise it."""
        if "threading layer" not in str(error):
            raise error
        self.threads, self.current = 1, "serial"

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
