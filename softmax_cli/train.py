"""The training loop: shuffle, slice a batch, take a gradient step, report once an epoch.

Mini-batch gradient descent with heavy-ball momentum, a learning-rate schedule and iterate averaging
(the saved model is the mean of the weights over the last part of training). Why it is fast:
- Features stay as they came (uint8 pixels) and one batch at a time is cast to float32. The feature scale
  (1/255 for pixels) is folded into the weights instead of into every pixel: during training the weights
  live in raw units, W_raw = W * scale.
- The weights are class-major, (classes, features + 1), the bias being the weight of an extra input column
  held at 1/scale: X @ W_raw.T gives the logits and G.T @ X the gradient of weights and bias together,
  OpenBLAS's fast layouts for these shapes.
- Every buffer is made once; a step allocates nothing of batch size. The epoch's training loss and
  accuracy come from the forward passes the steps make anyway.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from threadpoolctl import threadpool_limits

from . import model
from .config import TrainConfig
from .errors import SoftmaxError
from .metrics import loss_and_accuracy

PIXEL_SCALE = 1 / 255


def lr_factor(schedule: str, progress: float) -> float:
    """Return what the learning rate is multiplied by after a fraction `progress` of all steps."""
    progress = min(progress, 1.0)
    if schedule == "linear":
        return 1.0 - progress
    if schedule == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * progress))
    return 1.0


def split_validation(pixels: np.ndarray, labels: np.ndarray, fraction: float, seed: int):
    """Return (train_pixels, train_labels, val_pixels, val_labels), a seeded random split of the training set."""
    order = np.random.default_rng([seed, 1]).permutation(len(labels))
    n_val = int(round(fraction * len(labels)))
    if not 0 < n_val < len(labels):
        raise SoftmaxError(
            f"a validation split of {fraction:g} of {len(labels)} samples leaves {len(labels) - n_val} for training "
            f"and {n_val} for validation: choose a val_split that leaves some of each"
        )
    val, train = order[:n_val], order[n_val:]
    return pixels[train], labels[train], pixels[val], labels[val]


class Trainer:
    """The state of one training run, advanced an epoch at a time; it can be saved and resumed after any epoch."""

    def __init__(self, config: TrainConfig, n_features: int, n_classes: int, scale: float = PIXEL_SCALE):
        self.config = config
        self.scale = scale
        self.weights = np.zeros((n_classes, n_features + 1), np.float32)  # raw units; last column: the bias
        self.velocity = np.zeros_like(self.weights)
        self.weight_sum = np.zeros(self.weights.shape, np.float64)         # for the average of the weights
        self.n_averaged = 0
        self.step = 0
        self.epoch = 0
        self.rng = np.random.default_rng(config.seed)
        self.history: list[dict] = []
        self.best_val_loss = math.inf
        self.epochs_since_best = 0

    @property
    def n_classes(self) -> int:
        return self.weights.shape[0]

    @property
    def n_features(self) -> int:
        return self.weights.shape[1] - 1

    def coefficients(self) -> tuple[np.ndarray, np.ndarray]:
        """Return (W (features, classes), b (classes,)) for features * scale: the averaged weights once averaging began."""
        raw = (self.weight_sum / self.n_averaged).astype(np.float32) if self.n_averaged else self.weights
        W = np.ascontiguousarray(raw[:, :-1].T) / np.float32(self.scale)
        return W, raw[:, -1] / np.float32(self.scale)

    def train_epoch(self, X: np.ndarray, labels: np.ndarray) -> dict:
        """Make one shuffled pass over (X, labels); return the epoch number, training loss and accuracy."""
        config, (n, d), k = self.config, X.shape, self.n_classes
        batch_size = n if config.batch_size == 0 else min(config.batch_size, n)
        total_steps = config.epochs * math.ceil(n / batch_size)
        average_start = total_steps - int(config.average * total_steps)
        raw_batch = np.empty((batch_size, d), X.dtype)
        batch = np.empty((batch_size, d + 1), np.float32)
        batch[:, d] = 1 / self.scale                      # the bias column
        Z = np.empty((batch_size, k), np.float32)
        row_max = np.empty((batch_size, 1), np.float32)
        gradient = np.empty_like(self.weights)
        update = np.empty_like(self.weights)
        denominators = np.empty((n, 1), np.float32)
        true_logits = np.empty(n, np.float32)
        predicted = np.empty(n, np.intp)
        mse_sum = 0.0
        # d loss / d W_raw = scale * d loss / d W, and the batch features are raw: X_raw = X_scaled / scale
        gradient_scale = self.scale * self.scale

        order = self.rng.permutation(n)
        ordered_labels = labels[order]
        true_index = (np.arange(n) % batch_size) * k + ordered_labels  # flat index of the true class in Z
        for start in range(0, n, batch_size):
            stop = min(start + batch_size, n)
            m = stop - start
            x, z = batch[:m], Z[:m]
            np.take(X, order[start:stop], axis=0, out=raw_batch[:m])
            np.copyto(x[:, :d], raw_batch[:m])
            np.matmul(x, self.weights.T, out=z)
            np.argmax(z, axis=1, out=predicted[start:stop])
            if config.loss == "cross-entropy":
                model.fused_cross_entropy_grad(
                    z, true_index[start:stop], row_max[:m], true_logits[start:stop], denominators[start:stop]
                )
            else:
                mse_sum += model.mse_logit_grad(z, ordered_labels[start:stop])
            np.matmul(z.T, x, out=gradient)
            gradient *= gradient_scale / m
            if config.l2:                                 # in raw units the decay term is l2 * W_raw too
                np.multiply(self.weights, config.l2, out=update)
                update[:, d] = 0                          # the bias is not decayed
                gradient += update
            lr = config.lr * lr_factor(config.schedule, self.step / total_steps)
            if config.momentum:
                self.velocity *= config.momentum
                self.velocity += gradient
                np.multiply(self.velocity, lr, out=update)
            else:
                np.multiply(gradient, lr, out=update)
            self.weights -= update
            self.step += 1
            if config.average and self.step > average_start:  # partial_fit's epochs may vary in length
                self.weight_sum += self.weights
                self.n_averaged += 1

        self.epoch += 1
        if config.loss == "cross-entropy":
            loss = float(np.log(denominators).sum() - true_logits.sum()) / n
        else:
            loss = mse_sum / n
        accuracy = np.count_nonzero(predicted == ordered_labels) / n
        return {"epoch": self.epoch, "loss": loss, "accuracy": accuracy}

    def is_finite(self) -> bool:
        """Return whether the weights and the velocity are free of NaN and infinity."""
        return bool(np.isfinite(self.weights).all() and np.isfinite(self.velocity).all())

    def to_checkpoint(self) -> tuple[dict[str, np.ndarray], dict]:
        """Return the arrays and the JSON-able state that restore this run exactly."""
        arrays = {"weights": self.weights, "velocity": self.velocity, "weight_sum": self.weight_sum}
        state = {
            "settings": self.config.to_dict(),
            "scale": self.scale,
            "n_averaged": self.n_averaged,
            "step": self.step,
            "epoch": self.epoch,
            "rng": self.rng.bit_generator.state,
            "history": self.history,
            "best_val_loss": None if math.isinf(self.best_val_loss) else self.best_val_loss,
            "epochs_since_best": self.epochs_since_best,
        }
        return arrays, state

    @classmethod
    def from_checkpoint(cls, arrays: dict[str, np.ndarray], state: dict, path) -> Trainer:
        """Return the run that to_checkpoint saved, ready to continue with its next epoch.

        arrays and state are as read from the checkpoint file at path, which an error names.
        """
        try:
            trainer = cls(TrainConfig(**state["settings"]), arrays["weights"].shape[1] - 1,
                          arrays["weights"].shape[0], state["scale"])
            for name in ("weights", "velocity", "weight_sum"):
                if arrays[name].shape != getattr(trainer, name).shape:
                    raise ValueError(f"{name} has shape {arrays[name].shape}")
                setattr(trainer, name, arrays[name].astype(getattr(trainer, name).dtype))
            trainer.n_averaged, trainer.step, trainer.epoch = state["n_averaged"], state["step"], state["epoch"]
            trainer.rng.bit_generator.state = state["rng"]
            trainer.history = list(state["history"])
            trainer.best_val_loss = math.inf if state["best_val_loss"] is None else state["best_val_loss"]
            trainer.epochs_since_best = state["epochs_since_best"]
            trainer._check_restored()
        except (LookupError, TypeError, ValueError, OverflowError) as e:
            raise SoftmaxError(
                f"the checkpoint {path} does not hold a training run this version can resume ({e}): "
                "train without --resume to start again"
            ) from None
        return trainer

    def _check_restored(self) -> None:
        """Raise ValueError unless each value read from a checkpoint has the type and range that to_checkpoint gives.

        A checkpoint file may have been edited or made by hand: a wrong value must stop it here, not deep in training.
        """
        defaults = TrainConfig()
        for name, value in self.config.to_dict().items():
            if type(value) is not type(getattr(defaults, name)):
                raise ValueError(f"setting {name} is {value!r}")
        counts = {"n_averaged": self.n_averaged, "step": self.step, "epoch": self.epoch,
                  "epochs_since_best": self.epochs_since_best}
        for name, count in counts.items():
            if type(count) is not int or count < 0:
                raise ValueError(f"{name} is {count!r}")
        if self.n_averaged > self.step or self.epoch > self.config.epochs or len(self.history) != self.epoch:
            raise ValueError(f"epoch {self.epoch}, step {self.step} and {len(self.history)} epochs of history disagree")
        if not (_is_number(self.scale) and 0 < self.scale < math.inf and _is_number(self.best_val_loss)):
            raise ValueError(f"scale {self.scale!r} or best_val_loss {self.best_val_loss!r} is not a usable number")
        for stats in self.history:
            if type(stats) is not dict or "seconds" not in stats or not all(map(_is_number, stats.values())):
                raise ValueError(f"an epoch of its history is {stats!r}, not the numbers training records")


def _is_number(value) -> bool:
    return type(value) in (int, float) and not math.isnan(value)


@dataclass
class TrainResult:
    """What training produced: weights that apply to features * scale, and how it went."""

    W: np.ndarray
    b: np.ndarray
    history: list[dict] = field(default_factory=list)
    train_seconds: float = 0.0
    stopped_early: bool = False
    interrupted: bool = False

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

    The trainer is advanced in place, so that after an interruption it can be saved with to_checkpoint.
    """
    config = trainer.config
    X = X.reshape(len(X), -1)
    if X.shape[1] != trainer.n_features:
        raise SoftmaxError(f"the data has {X.shape[1]} features per sample but training expects {trainer.n_features}")
    result = TrainResult(*trainer.coefficients(), history=trainer.history)
    # One BLAS thread: each step's matrices are small, and a second thread that has to wait for a busy core
    # made steps up to 20 times slower on a loaded two-core machine (bench/ and tune measured it).
    with threadpool_limits(limits=1, user_api="blas"):
        started = time.perf_counter()
        seconds_before = trainer.history[-1]["seconds"] if trainer.history else 0.0
        while trainer.epoch < config.epochs:
            stats = trainer.train_epoch(X, labels)
            if not (math.isfinite(stats["loss"]) and trainer.is_finite()):
                raise SoftmaxError(
                    f"training diverged in epoch {stats['epoch']} (the loss became {stats['loss']}): "
                    f"try a smaller --lr than {config.lr}"
                )
            if validation is not None:
                stats["val_loss"], stats["val_accuracy"] = loss_and_accuracy(
                    *trainer.coefficients(), *validation, scale=trainer.scale
                )
            stats["seconds"] = seconds_before + time.perf_counter() - started
            trainer.history.append(stats)
            if on_epoch is not None:
                on_epoch(stats)
            if validation is not None and config.patience:
                if stats["val_loss"] < trainer.best_val_loss:
                    trainer.best_val_loss, trainer.epochs_since_best = stats["val_loss"], 0
                else:
                    trainer.epochs_since_best += 1
                    if trainer.epochs_since_best >= config.patience:
                        result.stopped_early = True
                        break
            if should_stop is not None and should_stop():
                result.interrupted = trainer.epoch < config.epochs
                break
        result.train_seconds = seconds_before + time.perf_counter() - started
    result.W, result.b = trainer.coefficients()
    return result
