"""The training loop: shuffle, slice a batch, take a gradient step, report once an epoch.

Mini-batch gradient descent with heavy-ball momentum, a learning-rate schedule and iterate averaging
(the saved model is the mean of the weights over the last part of training). Two loops with one contract:
`reference_fit`, plain float64 NumPy on model.loss_and_grad to read and check against, and `Trainer.train_epoch`,
the fast one. The fast one makes an epoch's steps in one call of the compiled epoch (compiled.py) where its C
extension was built, and otherwise with NumPy calls (_numpy_epoch), fast for these reasons:
- Features stay as they came (uint8 pixels) and one batch at a time is cast to float32. The feature scale
  (model.PIXEL_SCALE for uint8 pixels, 1 for float features) is folded into the weights instead of into every
  pixel: during training the weights live in raw units, W_raw = W * scale.
- The weights are class-major, (classes, features + 1), the bias being the weight of an extra input column
  held at 1/scale: X @ W_raw.T gives the logits and G.T @ X the gradient of weights and bias together,
  OpenBLAS's fast layouts for these shapes.
- Every buffer of batch size is made once an epoch. The epoch's training loss and accuracy come from the
  forward passes the steps make anyway.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from threadpoolctl import threadpool_limits

from . import model, store
from .config import FULL_BATCH, TrainConfig
from .errors import SoftmaxError, TrainingDiverged, shown
from .metrics import loss_and_accuracy

# Divergence, beyond NaN and infinity: a sane run's epoch loss stays below the untrained model's (log K for the
# cross-entropy) or near it, and its logits stay in the tens. Each bound is far from any sane run (the defaults,
# lr 3, the MSE defaults reach a few percent of them) and close to every blown-up one measured (lr 1e30 gives
# losses of 1e29 and logits of 1e30; MSE at lr 1e30 keeps a bounded loss but logits of 1e31).
LOSS_MARGIN = 10.0     # the cross-entropy may not exceed this many times log K, nor this many times epoch 1's
MAX_LOGIT = 1e4        # float32 softmax is saturated far below this: no sane model's logits get there
PROBE_ROWS = 1000      # the logits are checked on this many training samples after each epoch (a fraction of a ms)
MAX_WINDOW = 100_000   # no more epochs than config allows are ever averaged
MAX_STEPS = 2**53      # a step count beyond this is not one a run can have made (float64 counts exactly to here)


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
    """Return (train_pixels, train_labels, val_pixels, val_labels), a seeded random split of the training set."""
    order = np.random.default_rng([seed, 1]).permutation(len(labels))
    n_val = int(round(fraction * len(labels)))
    if not 0 < n_val < len(labels):
        raise SoftmaxError(
            f"a validation split of {fraction:g} of {len(labels)} samples leaves {len(labels) - n_val} for training "
            f"and {n_val} for validation: choose a {{setting}} that leaves some of each", setting="val_split"
        )
    val, train = order[:n_val], order[n_val:]
    return pixels[train], labels[train], pixels[val], labels[val]


def steps_per_epoch(config: TrainConfig, n: int) -> tuple[int, int]:
    """Return (batch size, steps of one epoch) for n training samples."""
    batch_size = n if config.batch_size == FULL_BATCH else min(config.batch_size, n)
    return batch_size, math.ceil(n / batch_size)


def reference_fit(config: TrainConfig, X: np.ndarray, labels: np.ndarray, n_classes: int):
    """Return (W, b, history) of the run Trainer makes, computed plainly in float64: what the fast loop must equal.

    X is uint8 pixels or float features, as for fit; W and b apply to model.features(X). Same shuffling order,
    momentum, schedule, l2 and averaging as Trainer.train_epoch; no validation or early stopping.
    """
    X, Y = model.features(X).astype(np.float64), model.one_hot(labels, n_classes).astype(np.float64)
    loss_and_grad = model.loss_and_grad if config.loss == "cross-entropy" else model.mse_loss_and_grad
    n, d = X.shape
    batch_size, n_steps = steps_per_epoch(config, n)
    total_steps = config.epochs * n_steps
    average_start = total_steps - int(config.average * total_steps)
    rng = np.random.default_rng(config.seed)
    W, b = np.zeros((d, n_classes)), np.zeros(n_classes)
    velocity_W, velocity_b = np.zeros_like(W), np.zeros_like(b)
    sum_W, sum_b, n_averaged, step = np.zeros_like(W), np.zeros_like(b), 0, 0
    history = []
    for epoch in range(1, config.epochs + 1):
        order = rng.permutation(n)
        loss_sum = correct = 0.0
        for start in range(0, n, batch_size):
            batch = order[start:start + batch_size]
            # forward and backward
            correct += np.count_nonzero(model.logits(W, b, X[batch]).argmax(axis=1) == labels[batch])
            loss, grad_W, grad_b = loss_and_grad(W, b, X[batch], Y[batch])
            loss_sum += loss * len(batch)
            grad_W = grad_W + config.l2 * W  # the bias is not decayed
            # the learning rate of this step, heavy-ball momentum, update
            lr = config.lr * lr_factor(config.schedule, step / total_steps)
            velocity_W = config.momentum * velocity_W + grad_W
            velocity_b = config.momentum * velocity_b + grad_b
            W, b = W - lr * velocity_W, b - lr * velocity_b
            step += 1
            # the average of the weights over the last steps
            if config.average and step > average_start:
                sum_W, sum_b, n_averaged = sum_W + W, sum_b + b, n_averaged + 1
        history.append({"epoch": epoch, "loss": loss_sum / n, "accuracy": correct / n})
    return (sum_W / n_averaged, sum_b / n_averaged, history) if n_averaged else (W, b, history)


class Trainer:
    """The state of one training run, advanced an epoch at a time; it can be saved and resumed after any epoch."""

    def __init__(self, config: TrainConfig, n_features: int, n_classes: int):
        self.config = config
        self.scale: float | None = None  # feature_scale of the data, set by the first epoch
        self.weights = np.zeros((n_classes, n_features + 1), np.float32)  # raw units; last column: the bias
        self.velocity = np.zeros_like(self.weights)
        self.weight_sum = np.zeros(self.weights.shape, np.float64)         # for the average of the weights
        self.n_averaged = 0
        # With early stopping the run may end after any epoch, so the model of epoch e averages the weights over
        # a little more than the last `average` fraction of its epochs: the sums of the weights of each recent epoch, and their steps.
        self.epoch_sums: list[np.ndarray] = []
        self.epoch_steps: list[int] = []
        self.step = 0
        self.epoch = 0
        self.rng = np.random.default_rng(config.seed)
        self.history: list[dict] = []
        # early stopping: the best validation loss so far, its epoch and its weights (as `model_weights` gives them)
        self.best_val_loss = math.inf
        self.best_epoch: int | None = None
        self.best_weights: np.ndarray | None = None
        self.epochs_since_best = 0
        # compiled.Rows of the data the compiled epochs read (compressed once a fit): fit() forgets them,
        # as the caller may change X in place between two fits
        self.rows = None

    @property
    def n_classes(self) -> int:
        return self.weights.shape[0]

    @property
    def n_features(self) -> int:
        return self.weights.shape[1] - 1

    @property
    def windowed(self) -> bool:
        """Return whether the model averages over the last epochs so far (early stopping) rather than the run's end."""
        return bool(self.config.patience and self.config.average)

    def model_weights(self) -> np.ndarray:
        """Return the raw weights the model has now: their average once averaging began, else the last ones."""
        if self.windowed and self.epoch_sums:
            last = _window(self.config.average, self.epoch)
            return (sum(self.epoch_sums[-last:]) / sum(self.epoch_steps[-last:])).astype(np.float32)
        return (self.weight_sum / self.n_averaged).astype(np.float32) if self.n_averaged else self.weights

    def coefficients(self, raw: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Return (W (features, classes), b (classes,)) for model.features of the data, of raw or model_weights()."""
        raw = self.model_weights() if raw is None else raw
        scale = np.float32(self.scale or 1.0)
        return np.ascontiguousarray(raw[:, :-1].T) / scale, raw[:, -1] / scale

    def train_epoch(self, X: np.ndarray, labels: np.ndarray) -> dict:
        """Make one shuffled pass over (X, labels); return the epoch number, training loss and accuracy."""
        config, n = self.config, len(X)
        self._adopt_scale(X.dtype)
        batch_size, n_steps = steps_per_epoch(config, n)
        total_steps = config.epochs * n_steps
        average_start = total_steps - int(config.average * total_steps)
        if self.windowed:  # this epoch's steps are summed on their own (see model_weights)
            summed, average_start = np.zeros_like(self.weight_sum), self.step
        else:
            summed = self.weight_sum
        # d loss / d W_raw = scale * d loss / d W, and the batch features are raw: X_raw = X_scaled / scale
        gradient_scale = self.scale * self.scale
        order = self.rng.permutation(n)
        ordered_labels = labels[order]
        predicted = np.empty(n, np.intp)
        # the learning rate of each step of this epoch, and the first of its steps whose weights are averaged (the
        # averaging takes the last steps of the run; partial_fit's epochs may vary in length)
        lrs = (config.lr * lr_factor(config.schedule, (self.step + np.arange(n_steps)) / total_steps)).tolist()
        first_averaged = max(0, average_start - self.step) if config.average else n_steps
        # the compiled epoch (compiled.py), where its extension was built
        compiled = _compiled()
        if compiled and not compiled.supports(self.n_classes, config.loss):
            compiled = None
        arguments = X, order, ordered_labels, predicted, summed, batch_size, lrs, first_averaged, gradient_scale
        loss_sum = self._compiled_epoch(compiled, *arguments) if compiled else self._numpy_epoch(*arguments)
        self.step += n_steps
        n_summed = n_steps - min(n_steps, first_averaged)
        self.epoch += 1
        if self.windowed:
            self.epoch_sums.append(summed)
            self.epoch_steps.append(n_summed)
            keep = _window(config.average, self.epoch)  # later windows start no earlier than this one
            del self.epoch_sums[:-keep], self.epoch_steps[:-keep]
        else:
            self.n_averaged += n_summed
        accuracy = np.count_nonzero(predicted == ordered_labels) / n
        return {"epoch": self.epoch, "loss": loss_sum / n, "accuracy": accuracy}

    def _numpy_epoch(self, X, order, ordered_labels, predicted, summed, batch_size, lrs, first_averaged,
                     gradient_scale) -> float:
        """Make the steps of one epoch with NumPy calls (step s at learning rate lrs[s], its weights added to summed
        from step first_averaged on); return their summed loss."""
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
            loss_sum += kernel(z, true_index[start:stop])  # z becomes d loss / d logits
            # backward
            np.matmul(z.T, x, out=gradient)
            # update with heavy-ball momentum
            lr = lrs[s]
            gradient *= gradient_scale / m
            if config.l2:                             # in raw units the decay term is l2 * W_raw too
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

    def _compiled_epoch(self, compiled, X, order, ordered_labels, predicted, summed, batch_size, lrs, first_averaged,
                        gradient_scale) -> float:
        """Make the steps of one epoch as _numpy_epoch does, in one call of compiled.py."""
        if self.rows is None or self.rows.X is not X:
            self.rows = compiled.Rows(X)
        config = self.config
        return compiled.epoch(self.rows, order, ordered_labels, predicted, self.weights, self.velocity, summed, lrs,
                              first_averaged, batch_size, gradient_scale, config.l2, config.momentum, 1 / self.scale,
                              config.loss)

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
        largest = float(np.abs(model.logits(*self.coefficients(self.weights), model.features(X[:PROBE_ROWS]))).max())
        if not largest <= MAX_LOGIT:
            return f"the logits grew to {largest:.3g}"
        return None

    def to_checkpoint(self) -> tuple[dict[str, np.ndarray], dict]:
        """Return the arrays and the JSON-able state that restore this run exactly."""
        arrays = {"weights": self.weights, "velocity": self.velocity, "weight_sum": self.weight_sum}
        if self.best_weights is not None:
            arrays["best_weights"] = self.best_weights
        if self.epoch_sums:
            arrays["epoch_sums"] = np.stack(self.epoch_sums)
        state = {
            "settings": self.config.to_dict(),
            "scale": self.scale,
            "n_averaged": self.n_averaged,
            "step": self.step,
            "epoch": self.epoch,
            "rng": self.rng.bit_generator.state,
            "history": self.history,
            "best_val_loss": None if math.isinf(self.best_val_loss) else self.best_val_loss,
            "best_epoch": self.best_epoch,
            "epochs_since_best": self.epochs_since_best,
            "epoch_steps": self.epoch_steps,
        }
        return arrays, state

    @classmethod
    def from_checkpoint(cls, arrays: dict[str, np.ndarray], state: dict, path) -> Trainer:
        """Return the run that to_checkpoint saved, ready to continue with its next epoch.

        arrays and state are as read from the checkpoint file at path, which an error names. A checkpoint may have
        been edited or made by hand: every value is checked here, so that a wrong one stops the run before training.
        """
        where = f"the checkpoint {path}"
        try:
            if not isinstance(state.get("settings"), dict):
                raise ValueError(f"its settings are {state.get('settings')!r}")
            config = TrainConfig.from_dict(state["settings"], where)
            shape = arrays["weights"].shape
            if len(shape) != 2 or shape[0] < 2 or shape[1] < 2:
                raise ValueError(f"weights has shape {shape}")
            trainer = cls(config, shape[1] - 1, shape[0])
            trainer.epoch = _count(state["epoch"], "epoch", config.epochs)
            trainer.step = _count(state["step"], "step", MAX_STEPS)
            trainer.n_averaged = _count(state["n_averaged"], "n_averaged", trainer.step)
            trainer.epochs_since_best = _count(state["epochs_since_best"], "epochs_since_best", trainer.epoch)
            names = ["weights", "velocity", "weight_sum"]
            trainer.best_epoch = state.get("best_epoch")  # older checkpoints lack it
            if trainer.best_epoch is not None:
                trainer.best_epoch = _count(state["best_epoch"], "best_epoch", trainer.epoch, low=1)
                trainer.best_weights = np.zeros_like(trainer.weights)
                names.append("best_weights")
            for name in names:
                if arrays[name].shape != shape:
                    raise ValueError(f"{name} has shape {arrays[name].shape}, not that of the weights {shape}")
                setattr(trainer, name, arrays[name].astype(getattr(trainer, name).dtype))
            epoch_steps = state.get("epoch_steps", [])
            if not (isinstance(epoch_steps, list) and len(epoch_steps) <= min(trainer.epoch, MAX_WINDOW)):
                raise ValueError(f"epoch_steps is {shown(epoch_steps, 60)}")
            trainer.epoch_steps = [_count(n, "epoch_steps", trainer.step) for n in epoch_steps]
            epoch_sums = arrays.get("epoch_sums", np.zeros((0, *shape)))
            if epoch_sums.shape != (len(epoch_steps), *shape):
                raise ValueError(f"epoch_sums has shape {epoch_sums.shape}, not {len(epoch_steps)} of {shape}")
            trainer.epoch_sums = list(epoch_sums.astype(np.float64))
            trainer.scale = state["scale"]
            if not (trainer.scale in (model.PIXEL_SCALE, 1.0) and type(trainer.scale) is float
                    or trainer.scale is None and trainer.step == 0):
                raise ValueError(f"scale is {trainer.scale!r}, not {model.PIXEL_SCALE!r} (pixels) or 1.0")
            best_val_loss = state["best_val_loss"]
            if not (best_val_loss is None or type(best_val_loss) is float and math.isfinite(best_val_loss)):
                raise ValueError(f"best_val_loss is {best_val_loss!r}")
            trainer.best_val_loss = math.inf if best_val_loss is None else best_val_loss
            trainer.history = _history(state["history"], trainer.epoch)
            trainer.rng.bit_generator.state = state["rng"]
        except SoftmaxError:
            raise
        except (LookupError, TypeError, ValueError, OverflowError) as e:
            raise SoftmaxError(
                f"{where} does not hold a training run this version can resume ({e}): "
                "train without --resume to start again"
            ) from None
        return trainer


def _window(average: float, epochs: int) -> int:
    """Return how many of the last epochs the model of early stopping averages after this many epochs: more than
    the fraction `average` of them (two of the first two, three of the first five), all of them at most."""
    return min(epochs, int(average * epochs) + 1)


def _count(count, name: str, high: int, low: int = 0) -> int:
    """Return count if it is a whole number from low to high (not a bool); raise ValueError naming it if not."""
    if type(count) is not int or not low <= count <= high:
        raise ValueError(f"{name} is {shown(count, 60)}, not a count from {low} to {high}")
    return count


def _history(history, epochs: int) -> list[dict]:
    """Return a checkpoint's history if it is epochs 1..epochs as fit records them (store's schema); else ValueError."""
    is_history = store.METADATA_FIELDS["history"][0]
    if not (is_history(history) and [stats["epoch"] for stats in history] == list(range(1, epochs + 1))
            and all("seconds" in stats for stats in history)):
        raise ValueError(f"its history is {shown(history, 60)}, not the {epochs} epochs training records")
    return [dict(stats) for stats in history]


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
) -> TrainResult:
    """Return the TrainResult of training until the configured epochs are done, early stopping fires or should_stop().

    X is uint8 pixels or float features (n, ...), validation the same kind of data with its labels. With patience,
    the result holds the weights of the epoch with the best validation loss. The trainer is advanced in place, so
    that after an interruption it can be saved with to_checkpoint.
    """
    config = trainer.config
    X = X.reshape(len(X), -1)
    if X.shape[1] != trainer.n_features:
        raise SoftmaxError(f"the data has {X.shape[1]} features per sample but training expects {trainer.n_features}")
    watching = validation is not None and bool(config.patience)
    if validation is not None:
        validation = (model.features(validation[0]), validation[1])
    result = TrainResult(*trainer.coefficients(), history=trainer.history)
    # One BLAS thread: each step's matrices are small, and a second thread that has to wait for a busy core
    # made steps up to 20 times slower on a loaded two-core machine (bench/ and tune measured it).
    trainer.rows = None
    with threadpool_limits(limits=1, user_api="blas"):
        started = time.perf_counter()
        seconds_before = trainer.history[-1]["seconds"] if trainer.history else 0.0
        while trainer.epoch < config.epochs:
            stats = trainer.train_epoch(X, labels)
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
            if watching:
                if stats["val_loss"] < trainer.best_val_loss:
                    trainer.best_val_loss, trainer.best_epoch, trainer.epochs_since_best = (
                        stats["val_loss"], trainer.epoch, 0)
                    trainer.best_weights = trainer.model_weights().copy()
                else:
                    trainer.epochs_since_best += 1
                    if trainer.epochs_since_best >= config.patience:
                        result.stopped_early = True
                        break
            if should_stop is not None and should_stop():
                result.interrupted = trainer.epoch < config.epochs
                break
        result.train_seconds = seconds_before + time.perf_counter() - started
    trainer.rows = None
    if watching and trainer.best_weights is not None:
        result.W, result.b = trainer.coefficients(trainer.best_weights)
        result.best_epoch = trainer.best_epoch
    else:
        result.W, result.b = trainer.coefficients()
    return result
