"""The training loop: shuffle, slice a batch, take a gradient step, report once an epoch.

Mini-batch gradient descent with heavy-ball momentum, a learning-rate schedule, iterate averaging (the saved model
is the mean of the weights over the last part of training) and early stopping. Two loops with one contract:
`reference_fit`, plain float64 NumPy on model.loss_and_grad to read and check against, and `Trainer.train_epoch`,
the fast one, which makes an epoch's steps in one call of the compiled epoch (compiled.py) where its C extension
was built, and otherwise with NumPy calls (_numpy_epoch).

The fast loops' weights (Trainer.weights) are laid out for them; this is the one place that says how, and
Trainer.coefficients turns them into the model's W (features, classes) and b:
- Class-major, (classes, features + 1), the bias last: the bias is the weight of an extra input column held at
  1/scale, so one product gives the logits and one the gradient of weights and bias together. This is the
  layout compiled.epoch takes (and lays out in its own groups of classes while it runs).
- In raw units, W_raw = W * scale, where scale is model.feature_scale of the data (1/255 for uint8 pixels, 1 for
  float features): the training rows stay as they came (uint8 pixels, a quarter of float32's memory) and are
  multiplied by W_raw as they are, with the scale folded into the weights once instead of into every pixel.
  A step moves W_raw by scale times W's step, and W's gradient is scale times the product of the raw rows and
  d loss / d logits: so that product is multiplied by scale**2 (gradient_scale); the l2 term is l2 * W_raw.
The NumPy loop also makes every buffer of batch size once an epoch; both take the epoch's training loss and
accuracy from the forward passes the steps make anyway.
"""

from __future__ import annotations

import copy
import math
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from threadpoolctl import ThreadpoolController

from . import DISTRIBUTION, model, store
from .config import FULL_BATCH, TrainConfig
from .errors import SoftmaxError, TrainingDiverged
from .metrics import loss_and_accuracy

# Divergence, beyond NaN and infinity: a sane run's epoch loss stays below the untrained model's (log K for the
# cross-entropy) or near it, and its logits stay in the tens. Each bound is far from any sane run (the defaults,
# lr 3, the MSE defaults reach a few percent of them) and close to every blown-up one measured (lr 1e30 gives
# losses of 1e29 and logits of 1e30; MSE at lr 1e30 keeps a bounded loss but logits of 1e31).
LOSS_MARGIN = 10.0     # the cross-entropy may not exceed this many times log K, nor this many times epoch 1's
MAX_LOGIT = 1e4        # float32 softmax is saturated far below this: no sane model's logits get there
PROBE_ROWS = 1000      # the logits are checked on this many training samples after each epoch (a fraction of a ms)


REINSTALL = f"pip install --no-cache-dir --force-reinstall {DISTRIBUTION}"  # past pip's cached compiler-less wheel


def training_loop() -> tuple[bool, str]:
    """Return whether training takes the compiled epoch, and a line naming the loop that runs: the compiled epoch's
    form (its instruction set, and the threads that compress the rows) or the NumPy loop and why."""
    if os.environ.get("SOFTMAX_NUMPY_LOOP"):
        return False, "the NumPy loop: SOFTMAX_NUMPY_LOOP is set"
    try:
        from . import compiled
    except ImportError:
        return False, ("the NumPy loop, several times slower: the compiled epoch was not built when softmax-cli was "
                       f"installed (no C compiler?); with one, reinstall it: {REINSTALL}")
    threads = compiled.usable_threads()
    return True, (f"the compiled epoch, {compiled.instructions()} kernel, one thread (its rows compressed "
                  f"on up to {threads} thread{'s' if threads > 1 else ''})")


_BLAS: list[ThreadpoolController] = []


def _blas() -> ThreadpoolController:
    """Return the controller of the BLAS thread pools, made once: making one reads the process's loaded libraries
    (3 ms, a third of a small data set's whole fit)."""
    if not _BLAS:
        _BLAS.append(ThreadpoolController())
    return _BLAS[0]


def _compiled():
    """Return the compiled epoch's module (compiled.py), or None where its extension was not built or with
    SOFTMAX_NUMPY_LOOP set."""
    if os.environ.get("SOFTMAX_NUMPY_LOOP"):  # the NumPy loop alone: for tests, and for anyone who wants it
        return None
    try:
        from . import compiled
    except ImportError:
        return None
    return compiled


def is_sparse(X) -> bool:
    """Return whether X is a scipy.sparse matrix or array (without importing scipy where nobody has)."""
    module = sys.modules.get("scipy.sparse")
    return module is not None and module.issparse(X)


def lr_factor(schedule: str, progress):
    """Return what the learning rate is multiplied by after a fraction `progress` of all steps (a number, or an
    array of them: then an array)."""
    progress = np.minimum(progress, 1.0)
    if schedule == "linear":
        return 1.0 - progress
    if schedule == "cosine":
        return 0.5 * (1.0 + np.cos(np.pi * progress))
    return np.ones_like(progress)


def split_validation(pixels: np.ndarray, labels: np.ndarray, fraction: float, seed: int):
    """Return (train_pixels, train_labels, val_pixels, val_labels), a seeded random split of the training set
    (a scipy.sparse matrix split as CSR rows)."""
    train, val = validation_rows(len(labels), fraction, seed)
    if is_sparse(pixels):
        pixels = pixels.tocsr()  # (COO cannot take rows)
    return pixels[train], labels[train], pixels[val], labels[val]


def validation_rows(n: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Return (the training rows, the validation rows) of split_validation's split of n samples: sample weights
    are split with the training rows' indices."""
    order = np.random.default_rng([seed, 1]).permutation(n)
    n_val = int(round(fraction * n))
    if not 0 < n_val < n:
        raise SoftmaxError(
            f"a validation split of {fraction:g} of {n} samples leaves {n - n_val} for training "
            f"and {n_val} for validation: choose a {{setting}} that leaves some of each", setting="val_split"
        )
    return order[n_val:], order[:n_val]


def checked_weights(sample_weight, n: int) -> np.ndarray | None:
    """Return sample_weight as float32 (n,), or None for None; raise SoftmaxError unless there is one finite weight
    of at least 0 a sample and they do not all weigh 0."""
    if sample_weight is None:
        return None
    try:
        weights = np.asarray(sample_weight, np.float64)
    except (TypeError, ValueError):
        raise SoftmaxError("sample_weight must be numbers, one a sample") from None
    if weights.shape != (n,):
        raise SoftmaxError(f"sample_weight must hold one weight a sample ({n}), not an array of shape {weights.shape}")
    if not (np.isfinite(weights).all() and (weights >= 0).all() and weights.sum() > 0):
        raise SoftmaxError("sample_weight must be finite and at least 0, and not all 0")
    return weights.astype(np.float32)


def steps_per_epoch(config: TrainConfig, n: int) -> tuple[int, int]:
    """Return (batch size, steps of one epoch) for n training samples."""
    batch_size = n if config.batch_size == FULL_BATCH else min(config.batch_size, n)
    return batch_size, math.ceil(n / batch_size)


def reference_fit(config: TrainConfig, X: np.ndarray, labels: np.ndarray, n_classes: int, sample_weight=None):
    """Return (W, b, history) of the run run.learn makes, computed plainly in float64: what the fast loop must equal.

    X is uint8 pixels or float features, as for run.learn; W and b apply to model.features(X). The same validation
    split, shuffling order, momentum, schedule, l2, averaging and early stopping as run.learn and Trainer: with
    val_split each epoch's record holds its model's validation loss and accuracy; with patience, training stops
    after patience epochs without a better validation loss, and W and b are the best epoch's model. sample_weight
    (one a sample, or None) weighs each sample's loss and gradient: each step's gradient, and each epoch's loss and
    accuracy, are the weighted means sum(w_i * x_i) / sum(w_i) of its samples (a step whose weights sum to 0 moves
    only by l2 and momentum); the validation loss is unweighted.
    """
    validation = None
    sample_weight = checked_weights(sample_weight, len(labels))
    if is_sparse(X):  # the reference is plain dense arithmetic
        X = X.toarray()
    if config.val_split:
        if sample_weight is not None:
            sample_weight = sample_weight[validation_rows(len(labels), config.val_split, config.seed)[0]]
        X, labels, val_X, val_labels = split_validation(X, labels, config.val_split, config.seed)
        validation = model.features(val_X).astype(np.float64), val_labels
    X, Y = model.features(X).astype(np.float64), model.one_hot(labels, n_classes).astype(np.float64)
    loss_and_grad = model.loss_and_grad if config.loss == "cross-entropy" else model.mse_loss_and_grad
    n, d = X.shape
    weights = np.ones(n) if sample_weight is None else sample_weight.astype(np.float64)
    batch_size, n_steps = steps_per_epoch(config, n)
    total_steps = config.epochs * n_steps
    average_start = total_steps - int(config.average * total_steps)
    rng = np.random.default_rng(config.seed)
    W, b = np.zeros((d, n_classes)), np.zeros(n_classes)
    velocity_W, velocity_b = np.zeros_like(W), np.zeros_like(b)
    averaged = []  # (epoch, W, b) after each step whose weights the model averages
    history, best, epochs_since_best, step = [], None, 0, 0
    for epoch in range(1, config.epochs + 1):
        order = rng.permutation(n)
        loss_sum = correct = 0.0
        for start in range(0, n, batch_size):
            batch = order[start:start + batch_size]
            # forward and backward
            right = model.logits(W, b, X[batch]).argmax(axis=1) == labels[batch]
            correct += weights[batch] @ right
            loss, grad_W, grad_b = loss_and_grad(W, b, X[batch], Y[batch], weights[batch])
            loss_sum += loss * weights[batch].sum()
            grad_W = grad_W + config.l2 * W  # the bias is not decayed
            # the learning rate of this step, heavy-ball momentum, update
            lr = config.lr * lr_factor(config.schedule, step / total_steps)
            velocity_W = config.momentum * velocity_W + grad_W
            velocity_b = config.momentum * velocity_b + grad_b
            W, b = W - lr * velocity_W, b - lr * velocity_b
            step += 1
            # the weights the model averages: the run's last steps; with early stopping, which may end the run
            # after any epoch, every step
            if config.average and (config.patience or step > average_start):
                averaged.append((epoch, W, b))
        # the model of this epoch: the mean of the averaged weights (with early stopping, those of its last
        # _window(average, epoch) epochs), else the last weights
        first_epoch = epoch - _window(config.average, epoch) if config.patience else 0
        window = [(W_step, b_step) for e, W_step, b_step in averaged if e > first_epoch]
        model_W, model_b = (np.mean([w for w, _ in window], axis=0), np.mean([c for _, c in window], axis=0)) \
            if window else (W, b)
        history.append({"epoch": epoch, "loss": loss_sum / weights.sum(), "accuracy": correct / weights.sum()})
        if validation is not None:
            history[-1]["val_loss"], history[-1]["val_accuracy"] = loss_and_accuracy(model_W, model_b, *validation)
        # early stopping: keep the best epoch's model, stop after patience epochs without a better one
        if config.patience:
            if best is None or history[-1]["val_loss"] < best[0]:
                best, epochs_since_best = (history[-1]["val_loss"], model_W, model_b), 0
            else:
                epochs_since_best += 1
                if epochs_since_best >= config.patience:
                    break
    return (best[1], best[2], history) if config.patience else (model_W, model_b, history)


class Trainer:
    """The state of one training run, advanced an epoch at a time; it can be saved and resumed after any epoch.

    The weights are kept in the fast loops' layout, explained in the module's docstring: class-major (classes,
    features + 1), the bias last, in raw units. coefficients() gives them as the model's W and b.
    """

    def __init__(self, config: TrainConfig, n_features: int, n_classes: int):
        self.config = config
        self.scale: float | None = None  # feature_scale of the data, set by the first epoch
        self.weights = np.zeros((n_classes, n_features + 1), np.float32)  # raw units; last column: the bias
        self.velocity = np.zeros_like(self.weights)
        # iterate averaging: the weights after each averaged step, summed (float64) in blocks of steps, and how
        # many steps each block holds; the model is the mean of the last blocks (model_weights)
        self.sums: list[np.ndarray] = []
        self.summed_steps: list[int] = []
        self.step = 0
        self.epoch = 0
        self.rng = np.random.default_rng(config.seed)
        self.history: list[dict] = []
        # early stopping (stop_early): the best validation loss so far, its epoch and its model weights
        self.best_val_loss = math.inf
        self.best_epoch: int | None = None
        self.best_weights: np.ndarray | None = None
        self.epochs_since_best = 0
        # compiled.Rows of the data the compiled epochs read (compressed once a fit): fit() forgets them,
        # as the caller may change X in place between two fits
        self.rows = None

    @classmethod
    def starting_from(cls, config: TrainConfig, W: np.ndarray, b: np.ndarray, dtype) -> Trainer:
        """Return a trainer whose run goes on from a model's W (features, classes) and b, on data of dtype: its
        weights laid out as the module's docstring says, its momentum, averaging and epochs starting afresh."""
        trainer = cls(config, W.shape[0], W.shape[1])
        trainer.scale = model.feature_scale(dtype)
        trainer.weights[:, :-1] = W.T * trainer.scale
        trainer.weights[:, -1] = b * trainer.scale
        return trainer

    @property
    def n_classes(self) -> int:
        return self.weights.shape[0]

    @property
    def n_features(self) -> int:
        return self.weights.shape[1] - 1

    @property
    def moving_window(self) -> bool:
        """Return whether the averaged steps are the last epochs so far (early stopping may end the run after any
        epoch) rather than the last steps of the whole run."""
        return bool(self.config.patience and self.config.average)

    def model_weights(self) -> np.ndarray:
        """Return the raw weights the model has now: the mean of the averaged steps' weights, else the last ones.

        Without early stopping, every averaged step (the last `average` fraction of the run's) is summed in one
        block. With it, the model of epoch e averages its last _window(average, e) epochs, a block each.
        """
        if not self.sums:
            return self.weights
        last = _window(self.config.average, self.epoch) if self.moving_window else len(self.sums)
        return (sum(self.sums[-last:]) / sum(self.summed_steps[-last:])).astype(np.float32)

    def coefficients(self, raw: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Return (W (features, classes), b (classes,)) for model.features of the data, of raw or model_weights()."""
        raw = self.model_weights() if raw is None else raw
        scale = np.float32(self.scale or 1.0)
        return np.ascontiguousarray(raw[:, :-1].T) / scale, raw[:, -1] / scale

    def kept_coefficients(self) -> tuple[np.ndarray, np.ndarray]:
        """Return the (W, b) the run keeps: those of the best epoch when early stopping has seen one, else now's."""
        return self.coefficients(self.best_weights if self.best_epoch is not None else None)

    def train_epoch(self, X: np.ndarray, labels: np.ndarray, sample_weight: np.ndarray | None = None) -> dict:
        """Make one shuffled pass over (X, labels); return the epoch number, training loss and accuracy (with
        sample_weight, float32 (n,) from checked_weights, their weighted means; each step's gradient too)."""
        config, n = self.config, X.shape[0]
        self._adopt_scale(X.dtype)
        batch_size, n_steps = steps_per_epoch(config, n)
        # the first of this epoch's steps whose weights are averaged: the last `average` fraction of the run's steps
        # (partial_fit's epochs may vary in length), or with early stopping every step
        total_steps = config.epochs * n_steps
        average_start = self.step if self.moving_window else total_steps - int(config.average * total_steps)
        first_averaged = max(0, average_start - self.step) if config.average else n_steps
        n_summed = n_steps - min(n_steps, first_averaged)
        if n_summed and (self.moving_window or not self.sums):  # a new block of sums (see model_weights)
            self.sums.append(np.zeros(self.weights.shape, np.float64))
            self.summed_steps.append(0)
        summed = self.sums[-1] if n_summed else np.zeros(self.weights.shape, np.float64)
        gradient_scale = self.scale * self.scale  # see the module's docstring: raw units
        order = self.rng.permutation(n)
        ordered_labels = labels[order]
        ordered_weights = None if sample_weight is None else sample_weight[order]
        predicted = np.empty(n, np.intp)
        # the learning rate of each step of this epoch
        lrs = (config.lr * lr_factor(config.schedule, (self.step + np.arange(n_steps)) / total_steps)).tolist()
        # the compiled epoch (compiled.py), where its extension was built
        compiled = _compiled()
        if compiled and not compiled.supports(self.n_classes, config.loss):
            compiled = None
        arguments = (X, order, ordered_labels, ordered_weights, predicted, summed, batch_size, lrs, first_averaged,
                     gradient_scale)
        loss_sum = self._compiled_epoch(compiled, *arguments) if compiled else self._numpy_epoch(*arguments)
        self.step += n_steps
        self.epoch += 1
        if n_summed:
            self.summed_steps[-1] += n_summed
        if self.moving_window:  # later windows start no earlier than this one
            keep = _window(config.average, self.epoch)
            del self.sums[:-keep], self.summed_steps[:-keep]
        if ordered_weights is None:
            return {"epoch": self.epoch, "loss": loss_sum / n,
                    "accuracy": np.count_nonzero(predicted == ordered_labels) / n}
        total = ordered_weights.sum(dtype=np.float64)
        return {"epoch": self.epoch, "loss": loss_sum / total,
                "accuracy": float(ordered_weights @ (predicted == ordered_labels)) / total}

    def stop_early(self, val_loss: float) -> bool:
        """Return whether early stopping ends the run after the epoch just made, whose validation loss is val_loss:
        patience epochs in a row without a better one. A better one's model weights are kept (kept_coefficients)."""
        if val_loss < self.best_val_loss:
            self.best_val_loss, self.best_epoch, self.epochs_since_best = val_loss, self.epoch, 0
            self.best_weights = self.model_weights().copy()
            return False
        self.epochs_since_best += 1
        return self.epochs_since_best >= self.config.patience

    def _numpy_epoch(self, X, order, ordered_labels, ordered_weights, predicted, summed, batch_size, lrs,
                     first_averaged, gradient_scale) -> float:
        """Make the steps of one epoch with NumPy calls (step s at learning rate lrs[s], its weights added to summed
        from step first_averaged on); return their summed loss (each row's times its weight, where weighted)."""
        config, (n, d), k = self.config, X.shape, self.n_classes
        kernel = model.fused_cross_entropy_grad if config.loss == "cross-entropy" else model.mse_logit_grad
        raw_batch = np.empty((batch_size, d), X.dtype)
        batch = np.empty((batch_size, d + 1), np.float32)
        batch[:, d] = 1 / self.scale                      # the bias column
        Z = np.empty((batch_size, k), np.float32)
        gradient = np.empty_like(self.weights)
        update = np.empty_like(self.weights)
        loss_sum = 0.0
        true_index = (np.arange(n) % batch_size) * k + ordered_labels  # flat index of the true class in Z
        for s, start in enumerate(range(0, n, batch_size)):
            stop = min(start + batch_size, n)
            m = stop - start
            x, z = batch[:m], Z[:m]
            # gather and cast the batch
            np.take(X, order[start:stop], axis=0, out=raw_batch[:m])
            np.copyto(x[:, :d], raw_batch[:m])
            # forward
            np.matmul(x, self.weights.T, out=z)
            np.argmax(z, axis=1, out=predicted[start:stop])
            row_weights = None if ordered_weights is None else ordered_weights[start:stop]
            loss_sum += kernel(z, true_index[start:stop], row_weights)  # z becomes d loss / d logits
            # backward
            np.matmul(z.T, x, out=gradient)
            # update with heavy-ball momentum
            lr = lrs[s]
            total = m if row_weights is None else float(row_weights.sum(dtype=np.float64))  # the mean's divisor
            gradient *= gradient_scale / total if total > 0 else 0.0
            if config.l2:
                np.multiply(self.weights, config.l2, out=update)
                update[:, d] = 0                      # the bias is not decayed
                gradient += update
            if config.momentum:
                self.velocity *= config.momentum
                self.velocity += gradient
                np.multiply(self.velocity, lr, out=update)
            else:
                np.multiply(gradient, lr, out=update)
            self.weights -= update
            if s >= first_averaged:  # the average of the weights over the last steps
                summed += self.weights
        return loss_sum

    def _compiled_epoch(self, compiled, X, order, ordered_labels, ordered_weights, predicted, summed, batch_size, lrs,
                        first_averaged, gradient_scale) -> float:
        """Make the steps of one epoch as _numpy_epoch does, in one call of compiled.py."""
        if self.rows is None or self.rows.X is not X:
            self.rows = compiled.Rows(X)
        config = self.config
        return compiled.epoch(self.rows, order, ordered_labels, predicted, self.weights, self.velocity, summed, lrs,
                              first_averaged, batch_size, gradient_scale, config.l2, config.momentum, 1 / self.scale,
                              config.loss, ordered_weights)

    def _adopt_scale(self, dtype) -> None:
        """Take the feature scale of data of this dtype, or raise SoftmaxError if the run was trained on other data."""
        scale = model.feature_scale(dtype)
        if self.scale is None:
            self.scale = scale
        elif self.scale != scale:
            kinds = {model.PIXEL_SCALE: "uint8 pixels", 1.0: "float features"}
            raise SoftmaxError(f"this run was trained on {kinds[self.scale]} and cannot go on with {kinds[scale]}")

    def divergence(self, stats: dict, X: np.ndarray) -> str | None:
        """Return what shows that the epoch of stats, on data X, diverged (a few words), or None if nothing does."""
        loss = stats["loss"]
        if not (math.isfinite(loss) and np.isfinite(self.weights).all() and np.isfinite(self.velocity).all()):
            return f"the loss became {loss:g}"
        if self.config.loss == "cross-entropy":
            untrained = math.log(self.n_classes)
            if loss > LOSS_MARGIN * max(untrained, self.history[0]["loss"] if self.history else 0.0):
                return f"the loss became {loss:.3g}, far above the untrained model's {untrained:.3g}"
        # the MSE loss is bounded (by 2), so blown-up weights show in the logits instead
        probe = X[:PROBE_ROWS].toarray() if is_sparse(X) else X[:PROBE_ROWS]
        largest = float(np.abs(model.logits(*self.coefficients(self.weights), model.features(probe))).max())
        if not largest <= MAX_LOGIT:
            return f"the logits grew to {largest:.3g}"
        return None

    def to_checkpoint(self, dataset: str, training_data: str) -> store.Checkpoint:
        """Return the checkpoint that restores this run exactly, trained on the named data set and training data."""
        return store.Checkpoint(
            self.config, self.weights, self.velocity, self.sums, self.summed_steps, self.step, self.epoch, self.scale,
            self.rng.bit_generator.state, self.history, None if math.isinf(self.best_val_loss) else self.best_val_loss,
            self.best_epoch, self.best_weights, self.epochs_since_best, dataset, training_data)

    @classmethod
    def from_checkpoint(cls, checkpoint: store.Checkpoint) -> Trainer:
        """Return the run a checkpoint holds (store.load_checkpoint validated it), ready to go on with its next epoch."""
        trainer = cls(checkpoint.config, checkpoint.weights.shape[1] - 1, checkpoint.weights.shape[0])
        for name in ("weights", "velocity", "sums", "summed_steps", "step", "epoch", "scale", "history",
                     "best_epoch", "best_weights", "epochs_since_best"):
            setattr(trainer, name, copy.deepcopy(getattr(checkpoint, name)))
        trainer.best_val_loss = math.inf if checkpoint.best_val_loss is None else checkpoint.best_val_loss
        trainer.rng.bit_generator.state = checkpoint.rng
        return trainer


def _window(average: float, epochs: int) -> int:
    """Return how many of the last epochs the model of early stopping averages after this many epochs: more than
    the fraction `average` of them (two of the first two, three of the first five), all of them at most."""
    return min(epochs, int(average * epochs) + 1)


@dataclass
class TrainResult:
    """What training produced: weights that apply to model.features of the data, and how it went.

    best_epoch is the epoch whose weights W and b are when early stopping watches a validation set (patience),
    else None (W and b are then the last epoch's, averaged as configured).
    """

    W: np.ndarray
    b: np.ndarray
    history: list[dict] = field(default_factory=list)
    train_seconds: float = 0.0
    stopped_early: bool = False
    interrupted: bool = False
    best_epoch: int | None = None

    @property
    def epochs_run(self) -> int:
        return len(self.history)


@np.errstate(over="ignore", invalid="ignore")  # overflow is reported as divergence, in one line
def fit(
    trainer: Trainer,
    X: np.ndarray,
    labels: np.ndarray,
    on_epoch: Callable[[dict], None] | None = None,
    validation: tuple[np.ndarray, np.ndarray] | None = None,
    should_stop: Callable[[], bool] | None = None,
    sample_weight: np.ndarray | None = None,
) -> TrainResult:
    """Return the TrainResult of training until the configured epochs are done, early stopping fires or should_stop().

    X is uint8 pixels or float features (n, ...), or a scipy.sparse matrix of float features (n, features), which the
    compiled epoch trains on as it is (the NumPy loop makes it dense); validation is data of the same kind with its
    labels. With patience, the result holds the weights of the epoch with the best validation loss. The trainer is
    advanced in place, so that after an interruption it can be saved with to_checkpoint. sample_weight (one finite
    weight >= 0 a sample, or None: all 1) weighs each sample in each step's gradient and in the epoch's loss and
    accuracy, as reference_fit says.
    """
    config = trainer.config
    if is_sparse(X):  # scipy.sparse rows of float features: the compiled epoch reads them as they are
        compiled = _compiled()
        if compiled and compiled.supports(trainer.n_classes, config.loss):
            X = X.tocsr().astype(np.float32)
        else:
            X = X.toarray()  # the NumPy loop's rows are dense
    else:
        X = X.reshape(len(X), -1)
    sample_weight = checked_weights(sample_weight, X.shape[0])
    if X.shape[1] != trainer.n_features:
        raise SoftmaxError(f"the data has {X.shape[1]} features per sample but training expects {trainer.n_features}")
    watching = validation is not None and bool(config.patience)
    if validation is not None:  # (a scipy.sparse matrix's rows stay compressed: its products need not be dense)
        rows, labels_held_out = validation
        validation = (rows.tocsr().astype(np.float32) if is_sparse(rows) else model.features(rows), labels_held_out)
    result = TrainResult(*trainer.coefficients(), history=trainer.history)
    # One BLAS thread: each step's matrices are small, and a second thread that has to wait for a busy core
    # made steps up to 20 times slower on a loaded two-core machine (bench/ and tune measured it).
    trainer.rows = None
    with _blas().limit(limits=1, user_api="blas"):
        started = time.perf_counter()
        seconds_before = trainer.history[-1]["seconds"] if trainer.history else 0.0
        while trainer.epoch < config.epochs:
            stats = trainer.train_epoch(X, labels, sample_weight)
            diverged = trainer.divergence(stats, X)
            if diverged:
                raise TrainingDiverged(
                    f"training diverged in epoch {stats['epoch']} ({diverged}): try a smaller {{setting}} than "
                    f"{config.lr:g}", setting="lr"
                )
            if validation is not None:
                stats["val_loss"], stats["val_accuracy"] = loss_and_accuracy(*trainer.coefficients(), *validation)
            stats["seconds"] = seconds_before + time.perf_counter() - started
            trainer.history.append(stats)
            if on_epoch is not None:
                on_epoch(stats)
            if watching and trainer.stop_early(stats["val_loss"]):
                result.stopped_early = True
                break
            if should_stop is not None and should_stop():
                result.interrupted = trainer.epoch < config.epochs
                break
        result.train_seconds = seconds_before + time.perf_counter() - started
    trainer.rows = None
    result.W, result.b = trainer.kept_coefficients() if watching else trainer.coefficients()
    result.best_epoch = trainer.best_epoch if watching else None
    return result
