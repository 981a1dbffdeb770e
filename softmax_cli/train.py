"""The training loop: shuffle, slice a batch, take a gradient step, report once an epoch.

Weights apply to pixels / 255; the loop keeps pixels as uint8 and converts one batch at a time.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from . import model
from .config import TrainConfig
from .errors import SoftmaxError
from .metrics import loss_and_accuracy


@dataclass
class TrainResult:
    """What training produced: weights that apply to pixels / 255, and how it went."""

    W: np.ndarray
    b: np.ndarray
    history: list[dict] = field(default_factory=list)
    train_seconds: float = 0.0
    stopped_early: bool = False

    @property
    def epochs_run(self) -> int:
        return len(self.history)


def split_validation(pixels: np.ndarray, labels: np.ndarray, fraction: float, seed: int):
    """Return (train_pixels, train_labels, val_pixels, val_labels), a seeded random split of the training set."""
    order = np.random.default_rng([seed, 1]).permutation(len(labels))
    n_val = int(round(fraction * len(labels)))
    val, train = order[:n_val], order[n_val:]
    return pixels[train], labels[train], pixels[val], labels[val]


@np.errstate(over="ignore", invalid="ignore")  # overflow is reported as divergence, in one line
def fit(
    pixels: np.ndarray,
    labels: np.ndarray,
    n_classes: int,
    config: TrainConfig,
    on_epoch: Callable[[dict], None] | None = None,
    validation: tuple[np.ndarray, np.ndarray] | None = None,
) -> TrainResult:
    """Return softmax-regression weights trained by mini-batch gradient descent on uint8 pixels (n, d)."""
    pixels = pixels.reshape(len(pixels), -1)
    n, d = pixels.shape
    batch_size = n if config.batch_size == 0 else min(config.batch_size, n)
    rng = np.random.default_rng(config.seed)
    W = np.zeros((d, n_classes), np.float32)
    b = np.zeros(n_classes, np.float32)
    velocity_W, velocity_b = np.zeros_like(W), np.zeros_like(b)
    logit_grad = model.LOGIT_GRADIENTS[config.loss]
    result = TrainResult(W, b)
    best_val_loss, epochs_since_best = np.inf, 0
    started = time.perf_counter()
    for epoch in range(1, config.epochs + 1):
        order = rng.permutation(n)
        loss_sum = correct = 0.0
        for start in range(0, n, batch_size):
            batch = order[start:start + batch_size]
            X = pixels[batch].astype(np.float32)
            X *= np.float32(1 / 255)
            Z = model.logits(W, b, X)
            correct += (Z.argmax(axis=1) == labels[batch]).sum()
            loss, G = logit_grad(Z, labels[batch])
            loss_sum += loss
            grad_W, grad_b = X.T @ G, G.sum(axis=0)
            if config.l2:
                grad_W += config.l2 * W
            velocity_W *= config.momentum
            velocity_W -= config.lr * grad_W
            velocity_b *= config.momentum
            velocity_b -= config.lr * grad_b
            W += velocity_W
            b += velocity_b
        stats = {"epoch": epoch, "loss": loss_sum / n, "accuracy": float(correct) / n}
        if not (np.isfinite(stats["loss"]) and np.isfinite(W).all() and np.isfinite(b).all()):
            raise SoftmaxError(
                f"training diverged in epoch {epoch} (the loss became {stats['loss']}): "
                f"try a smaller --lr than {config.lr}"
            )
        if validation is not None:
            stats["val_loss"], stats["val_accuracy"] = loss_and_accuracy(W, b, *validation)
        stats["seconds"] = time.perf_counter() - started
        result.history.append(stats)
        if on_epoch is not None:
            on_epoch(stats)
        if validation is not None and config.patience:
            if stats["val_loss"] < best_val_loss:
                best_val_loss, epochs_since_best = stats["val_loss"], 0
            else:
                epochs_since_best += 1
                if epochs_since_best >= config.patience:
                    result.stopped_early = True
                    break
    result.train_seconds = time.perf_counter() - started
    return result
