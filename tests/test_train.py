import math

import numpy as np
import pytest

from softmax_cli import model
from softmax_cli.config import TrainConfig
from softmax_cli.errors import SoftmaxError
from softmax_cli.store import load_checkpoint, save_checkpoint
from softmax_cli.train import Trainer, fit, lr_factor, split_validation


def blobs(n=600, d=16, k=3, seed=0):
    """Uint8 'images' of k well-separated classes, like pixels."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, k, size=n)
    centres = rng.integers(0, 256, size=(k, d))
    pixels = np.clip(centres[labels] + rng.normal(0, 30, size=(n, d)), 0, 255).astype(np.uint8)
    return pixels, labels


def train(pixels, labels, k=3, **settings):
    return fit(Trainer(TrainConfig(**settings), pixels.shape[1], k), pixels, labels)


def accuracy(result, pixels, labels):
    return (model.logits(result.W, result.b, pixels / 255).argmax(axis=1) == labels).mean()


def test_learns_separable_classes():
    pixels, labels = blobs()
    result = train(pixels, labels, epochs=5, batch_size=32)
    assert accuracy(result, pixels, labels) > 0.98
    assert result.history[-1]["loss"] < result.history[0]["loss"]
    assert result.epochs_run == 5


def reference_sgd(pixels, labels, k, config):
    """Plain float64 mini-batch SGD built on model.loss_and_grad: what the fast loop must equal."""
    X, Y = pixels / 255.0, np.eye(k)[labels]
    n, d = X.shape
    batch_size = config.batch_size or n
    rng = np.random.default_rng(config.seed)
    W, b = np.zeros((d, k)), np.zeros(k)
    velocity_W, velocity_b = np.zeros_like(W), np.zeros_like(b)
    sum_W, sum_b, n_averaged, step = 0, 0, 0, 0
    total = config.epochs * math.ceil(n / batch_size)
    history = []
    for _ in range(config.epochs):
        order = rng.permutation(n)
        loss_sum = correct = 0
        for start in range(0, n, batch_size):
            i = order[start:start + batch_size]
            correct += (model.logits(W, b, X[i]).argmax(axis=1) == labels[i]).sum()
            loss, grad_W, grad_b = model.loss_and_grad(W, b, X[i], Y[i])
            loss_sum += loss * len(i)
            grad_W = grad_W + config.l2 * W
            lr = config.lr * lr_factor(config.schedule, step / total)
            velocity_W = config.momentum * velocity_W + grad_W
            velocity_b = config.momentum * velocity_b + grad_b
            W, b = W - lr * velocity_W, b - lr * velocity_b
            step += 1
            if step > total - int(config.average * total):
                sum_W, sum_b, n_averaged = sum_W + W, sum_b + b, n_averaged + 1
        history.append((loss_sum / n, correct / n))
    return (sum_W / n_averaged, sum_b / n_averaged, history) if n_averaged else (W, b, history)


@pytest.mark.parametrize(
    "settings",
    [
        dict(momentum=0, schedule="constant", average=0),
        dict(),  # the defaults: momentum, linear decay, averaging
        dict(schedule="cosine", average=0.3, l2=0.01),
        dict(batch_size=0, momentum=0.5, epochs=4),
        dict(batch_size=64, momentum=0, l2=0.05, schedule="constant"),
    ],
)
def test_fast_loop_equals_the_reference_sgd(settings):
    pixels, labels = blobs(n=530)  # not a multiple of the batch size: a short last batch
    config = TrainConfig(**{"epochs": 3, "lr": 0.3, **settings})
    result = fit(Trainer(config, 16, 3), pixels, labels)
    W, b, history = reference_sgd(pixels, labels, 3, config)
    np.testing.assert_allclose(result.W, W, atol=2e-5 * max(1, np.abs(W).max()))
    np.testing.assert_allclose(result.b, b, atol=2e-5 * max(1, np.abs(b).max()))
    for stats, (loss, correct) in zip(result.history, history):
        assert stats["loss"] == pytest.approx(loss, rel=1e-5)
        assert stats["accuracy"] == pytest.approx(correct, abs=2 / 530)


def test_one_full_batch_epoch_is_one_reference_gradient_step():
    pixels, labels = blobs()
    result = train(pixels, labels, epochs=1, lr=0.3, batch_size=0, momentum=0, schedule="constant", average=0)
    X = pixels.astype(np.float64) / 255
    loss, grad_W, grad_b = model.loss_and_grad(np.zeros((16, 3)), np.zeros(3), X, np.eye(3)[labels])
    np.testing.assert_allclose(result.W, -0.3 * grad_W, atol=1e-6)
    np.testing.assert_allclose(result.b, -0.3 * grad_b, atol=1e-6)
    assert result.history[0]["loss"] == pytest.approx(loss, rel=1e-6)


def test_same_seed_same_weights_other_seed_other_weights():
    pixels, labels = blobs()
    first, again = train(pixels, labels, epochs=2, batch_size=50), train(pixels, labels, epochs=2, batch_size=50)
    other = train(pixels, labels, epochs=2, batch_size=50, seed=1)
    assert np.array_equal(first.W, again.W) and np.array_equal(first.b, again.b)
    assert not np.array_equal(first.W, other.W)


def test_a_resumed_run_ends_with_exactly_the_uninterrupted_weights(tmp_path):
    pixels, labels = blobs()
    config = TrainConfig(epochs=5, batch_size=64, l2=0.001)
    uninterrupted = fit(Trainer(config, 16, 3), pixels, labels)

    trainer = Trainer(config, 16, 3)
    stopped = fit(trainer, pixels, labels, should_stop=lambda: trainer.epoch == 2)
    assert stopped.interrupted and stopped.epochs_run == 2
    checkpoint = tmp_path / "run.ckpt.npz"
    save_checkpoint(checkpoint, *trainer.to_checkpoint())
    resumed = fit(Trainer.from_checkpoint(*load_checkpoint(checkpoint), checkpoint), pixels, labels)
    assert np.array_equal(resumed.W, uninterrupted.W) and np.array_equal(resumed.b, uninterrupted.b)
    assert [s["loss"] for s in resumed.history] == [s["loss"] for s in uninterrupted.history]


def test_a_checkpoint_that_does_not_fit_is_refused():
    arrays, state = Trainer(TrainConfig(), 16, 3).to_checkpoint()
    del state["rng"]
    with pytest.raises(SoftmaxError, match="the checkpoint run.ckpt.npz does not hold a training run .*'rng'"):
        Trainer.from_checkpoint(arrays, state, "run.ckpt.npz")


def test_divergence_stops_with_advice():
    pixels, labels = blobs()
    with pytest.raises(SoftmaxError, match=r"diverged in epoch \d+.*smaller --lr"):
        train(pixels, labels, epochs=50, lr=1e38, batch_size=10, momentum=0, schedule="constant")


def test_early_stopping_on_validation_loss():
    # random labels: whatever the model learns is noise, so the validation loss soon rises
    pixels = np.random.default_rng(0).integers(0, 256, size=(300, 50), dtype=np.uint8)
    labels = np.random.default_rng(1).integers(0, 3, size=300)
    train_pixels, train_labels, val_pixels, val_labels = split_validation(pixels, labels, 0.2, seed=0)
    assert len(val_labels) == 60 and len(train_labels) == 240
    assert not set(map(bytes, val_pixels)) & set(map(bytes, train_pixels))
    config = TrainConfig(epochs=500, lr=0.5, batch_size=16, patience=2, schedule="constant", average=0)
    result = fit(Trainer(config, 50, 3), train_pixels, train_labels, validation=(val_pixels, val_labels))
    assert result.stopped_early and result.epochs_run < 500
    assert {"val_loss", "val_accuracy"} <= set(result.history[-1])


def test_on_epoch_sees_every_epoch():
    pixels, labels = blobs()
    seen = []
    fit(Trainer(TrainConfig(epochs=3), 16, 3), pixels, labels, on_epoch=seen.append)
    assert [s["epoch"] for s in seen] == [1, 2, 3]


def test_mse_loss_also_learns():
    pixels, labels = blobs()
    result = train(pixels, labels, epochs=5, lr=2.0, batch_size=32, loss="mse")
    assert accuracy(result, pixels, labels) > 0.95
    assert result.history[-1]["loss"] < result.history[0]["loss"]


def test_float_features_with_their_own_scale():
    pixels, labels = blobs()
    features = pixels / 255.0
    config = TrainConfig(epochs=3)
    on_pixels = fit(Trainer(config, 16, 3), pixels, labels)
    on_features = fit(Trainer(config, 16, 3, scale=1.0), features, labels)
    np.testing.assert_allclose(on_features.W, on_pixels.W, atol=1e-4)
