import numpy as np
import pytest

from softmax_cli import model
from softmax_cli.config import TrainConfig
from softmax_cli.errors import SoftmaxError
from softmax_cli.train import fit, split_validation


def blobs(n=600, d=16, k=3, seed=0):
    """Uint8 'images' of k well-separated classes, like pixels."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, k, size=n)
    centres = rng.integers(0, 256, size=(k, d))
    pixels = np.clip(centres[labels] + rng.normal(0, 30, size=(n, d)), 0, 255).astype(np.uint8)
    return pixels, labels


def test_learns_separable_classes():
    pixels, labels = blobs()
    result = fit(pixels, labels, 3, TrainConfig(epochs=5, lr=0.5, batch_size=32))
    predicted = model.logits(result.W, result.b, pixels / 255).argmax(axis=1)
    assert (predicted == labels).mean() > 0.98
    assert result.history[-1]["loss"] < result.history[0]["loss"]
    assert result.epochs_run == 5


def test_one_full_batch_epoch_is_one_reference_gradient_step():
    pixels, labels = blobs()
    config = TrainConfig(epochs=1, lr=0.3, batch_size=0)
    result = fit(pixels, labels, 3, config)
    X = pixels.astype(np.float64) / 255
    W0, b0 = np.zeros((16, 3)), np.zeros(3)
    loss, grad_W, grad_b = model.loss_and_grad(W0, b0, X, np.eye(3)[labels])
    np.testing.assert_allclose(result.W, W0 - 0.3 * grad_W, atol=1e-6)
    np.testing.assert_allclose(result.b, b0 - 0.3 * grad_b, atol=1e-6)
    assert result.history[0]["loss"] == pytest.approx(loss, rel=1e-6)


def test_same_seed_same_weights_other_seed_other_weights():
    pixels, labels = blobs()
    config = TrainConfig(epochs=2, batch_size=50)
    first, again = fit(pixels, labels, 3, config), fit(pixels, labels, 3, config)
    other = fit(pixels, labels, 3, config.replace(seed=1))
    assert np.array_equal(first.W, again.W) and np.array_equal(first.b, again.b)
    assert not np.array_equal(first.W, other.W)


def test_divergence_stops_with_advice():
    pixels, labels = blobs()
    with pytest.raises(SoftmaxError, match=r"diverged in epoch \d+.*smaller --lr"):
        fit(pixels, labels, 3, TrainConfig(epochs=50, lr=1e38, batch_size=10))


def test_early_stopping_on_validation_loss():
    # random labels: whatever the model learns is noise, so the validation loss soon rises
    pixels = np.random.default_rng(0).integers(0, 256, size=(300, 50), dtype=np.uint8)
    labels = np.random.default_rng(1).integers(0, 3, size=300)
    train_pixels, train_labels, val_pixels, val_labels = split_validation(pixels, labels, 0.2, seed=0)
    assert len(val_labels) == 60 and len(train_labels) == 240
    assert not set(map(bytes, val_pixels)) & set(map(bytes, train_pixels))
    config = TrainConfig(epochs=500, lr=0.5, batch_size=16, patience=2)
    result = fit(train_pixels, train_labels, 3, config, validation=(val_pixels, val_labels))
    assert result.stopped_early and result.epochs_run < 500
    assert {"val_loss", "val_accuracy"} <= set(result.history[-1])


def test_on_epoch_sees_every_epoch():
    pixels, labels = blobs()
    seen = []
    fit(pixels, labels, 3, TrainConfig(epochs=3), on_epoch=seen.append)
    assert [s["epoch"] for s in seen] == [1, 2, 3]


def test_mse_loss_also_learns():
    pixels, labels = blobs()
    result = fit(pixels, labels, 3, TrainConfig(epochs=5, lr=2.0, batch_size=32, loss="mse"))
    predicted = model.logits(result.W, result.b, pixels / 255).argmax(axis=1)
    assert (predicted == labels).mean() > 0.95
