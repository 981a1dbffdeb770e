import copy

import numpy as np
import pytest

from softmax_cli import model, run
from softmax_cli.config import TrainConfig
from softmax_cli.errors import SoftmaxError
from softmax_cli.metrics import loss_and_accuracy
from softmax_cli.store import load_checkpoint, save_checkpoint
from softmax_cli.train import Trainer, fit, lr_factor, reference_fit, split_validation


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


REFERENCE_CASES = [
    dict(momentum=0, schedule="constant", average=0),
    dict(),  # the defaults: momentum, linear decay, averaging
    dict(schedule="cosine", average=0.3, l2=0.01),
    dict(batch_size="full", momentum=0.5, epochs=4),
    dict(batch_size=64, momentum=0, l2=0.05, schedule="constant"),
    dict(loss="mse", lr=2.0),
    dict(loss="mse", lr=1.0, l2=0.02, batch_size="full", schedule="cosine"),
]


def assert_equals_the_reference(settings):
    pixels, labels = blobs(n=530)  # not a multiple of the batch size: a short last batch
    config = TrainConfig(**{"epochs": 3, "lr": 0.3, **settings})
    result = fit(Trainer(config, 16, 3), pixels, labels)
    W, b, history = reference_fit(config, pixels, labels, 3)
    np.testing.assert_allclose(result.W, W, atol=2e-5 * max(1, np.abs(W).max()))
    np.testing.assert_allclose(result.b, b, atol=2e-5 * max(1, np.abs(b).max()))
    for stats, expected in zip(result.history, history, strict=True):
        assert stats["epoch"] == expected["epoch"]
        assert stats["loss"] == pytest.approx(expected["loss"], rel=1e-5)
        assert stats["accuracy"] == pytest.approx(expected["accuracy"], abs=2 / 530)


@pytest.mark.parametrize("settings", REFERENCE_CASES)
def test_the_numpy_loop_equals_the_float64_reference_loop(monkeypatch, settings):
    monkeypatch.setenv("SOFTMAX_NUMPY_LOOP", "1")
    assert_equals_the_reference(settings)



EARLY_STOPPING_CASES = [
    dict(patience=3, val_split=0.2),  # the defaults' averaging: each epoch's model averages its last epochs
    dict(patience=2, val_split=0.25, average=0.0, schedule="constant"),
    dict(patience=3, val_split=0.2, average=0.3, momentum=0.5, batch_size=64, l2=0.01),
    dict(patience=2, val_split=0.2, loss="mse", lr=2.0),
]


@pytest.mark.parametrize("loop", ["numpy", "compiled"])
@pytest.mark.parametrize("settings", EARLY_STOPPING_CASES)
def test_early_stopping_equals_the_float64_reference_loop(monkeypatch, loop, settings):
    """The validation split, the models' validation losses, when training stops, and the best epoch's averaged
    model kept: the fast loop against the plain one."""
    if loop == "numpy":
        monkeypatch.setenv("SOFTMAX_NUMPY_LOOP", "1")
    rng = np.random.default_rng(3)
    pixels, labels = blobs(n=400)
    labels = np.where(rng.random(400) < 0.3, rng.integers(0, 3, 400), labels)  # noisy labels: val loss turns up
    config = TrainConfig(**{"epochs": 40, "lr": 1.0, "batch_size": 16, **settings})
    _, result = run.learn(config, pixels, labels, 3)
    W, b, history = reference_fit(config, pixels, labels, 3)
    assert result.stopped_early and len(history) == result.epochs_run < config.epochs
    assert result.best_epoch == 1 + int(np.argmin([stats["val_loss"] for stats in history]))
    np.testing.assert_allclose(result.W, W, atol=2e-5 * max(1, np.abs(W).max()))
    np.testing.assert_allclose(result.b, b, atol=2e-5 * max(1, np.abs(b).max()))
    for stats, expected in zip(result.history, history, strict=True):
        for key in ("loss", "val_loss", "val_accuracy"):
            assert stats[key] == pytest.approx(expected[key], rel=1e-4), key


def test_the_reference_loop_learns_on_its_own():
    pixels, labels = blobs()
    W, b, history = reference_fit(TrainConfig(epochs=5, batch_size=32), pixels, labels, 3)
    assert (model.logits(W, b, pixels / 255).argmax(axis=1) == labels).mean() > 0.98
    assert [stats["epoch"] for stats in history] == [1, 2, 3, 4, 5]


def test_one_full_batch_epoch_is_one_reference_gradient_step():
    pixels, labels = blobs()
    result = train(pixels, labels, epochs=1, lr=0.3, batch_size="full", momentum=0, schedule="constant", average=0)
    X = pixels.astype(np.float64) / 255
    loss, grad_W, grad_b = model.loss_and_grad(np.zeros((16, 3)), np.zeros(3), X, np.eye(3)[labels])
    np.testing.assert_allclose(result.W, -0.3 * grad_W, atol=1e-6)
    np.testing.assert_allclose(result.b, -0.3 * grad_b, atol=1e-6)
    assert result.history[0]["loss"] == pytest.approx(loss, rel=1e-6)


def test_a_batch_size_of_zero_is_no_longer_the_whole_set():
    with pytest.raises(SoftmaxError, match="batch_size must be"):
        TrainConfig(batch_size=0)


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
    save_checkpoint(checkpoint, trainer.to_checkpoint("blobs", "their fingerprint"))
    resumed = fit(Trainer.from_checkpoint(load_checkpoint(checkpoint)), pixels, labels)
    assert np.array_equal(resumed.W, uninterrupted.W) and np.array_equal(resumed.b, uninterrupted.b)
    assert [s["loss"] for s in resumed.history] == [s["loss"] for s in uninterrupted.history]


def test_a_resumed_trainer_shares_nothing_with_its_checkpoint():
    pixels, labels = blobs()
    trainer = Trainer(TrainConfig(epochs=3, batch_size=64), 16, 3)
    fit(trainer, pixels, labels, should_stop=lambda: trainer.epoch == 2)
    checkpoint = trainer.to_checkpoint("blobs", "their fingerprint")
    saved_weights, saved_history = checkpoint.weights.copy(), copy.deepcopy(checkpoint.history)
    fit(Trainer.from_checkpoint(checkpoint), pixels, labels)
    assert np.array_equal(checkpoint.weights, saved_weights) and checkpoint.history == saved_history


def test_divergence_stops_with_advice_naming_the_setting():
    pixels, labels = blobs()
    with pytest.raises(SoftmaxError, match=r"diverged in epoch \d+.*smaller lr than 1e\+06") as caught:
        train(pixels, labels, epochs=50, lr=1e6, batch_size=10, momentum=0, schedule="constant")
    assert caught.value.setting == "lr"
    assert "smaller {setting} than" in caught.value.message
    assert "smaller --lr than" in caught.value.in_terms_of(lambda name: f"--{name}")


@pytest.mark.parametrize("loss", ["cross-entropy", "mse"])
def test_a_finite_blow_up_is_divergence_too(loss):
    # the weights stay finite (MSE's loss even stays bounded) while the model becomes nonsense
    pixels, labels = blobs()
    trainer = Trainer(TrainConfig(epochs=3, lr=1e5, loss=loss), 16, 3)
    with pytest.raises(SoftmaxError, match="diverged in epoch 1 .*(far above the untrained|logits grew)"):
        fit(trainer, pixels, labels)
    assert np.isfinite(trainer.weights).all()


def test_the_cross_entropy_far_above_its_first_epoch_is_divergence():
    pixels, labels = blobs()
    trainer = Trainer(TrainConfig(epochs=5, lr=0.3), 16, 3)
    fit(trainer, pixels, labels, should_stop=lambda: True)
    first = trainer.history[0]["loss"]
    assert trainer.divergence({"loss": first * 5}, pixels) is None
    assert "far above" in trainer.divergence({"loss": max(first, np.log(3)) * 11}, pixels)


@pytest.mark.parametrize("settings", [dict(), dict(lr=3.0), dict(loss="mse"), dict(loss="mse", lr=3.0)])
def test_sane_runs_never_look_diverged(settings):
    pixels, labels = blobs()
    assert train(pixels, labels, epochs=10, **settings).epochs_run == 10


def random_labels_split():
    # random labels: whatever the model learns is noise, so the validation loss soon rises
    pixels = np.random.default_rng(0).integers(0, 256, size=(300, 50), dtype=np.uint8)
    labels = np.random.default_rng(1).integers(0, 3, size=300)
    return split_validation(pixels, labels, 0.2, seed=0)


def test_early_stopping_on_validation_loss():
    train_pixels, train_labels, val_pixels, val_labels = random_labels_split()
    assert len(val_labels) == 60 and len(train_labels) == 240
    assert not set(map(bytes, val_pixels)) & set(map(bytes, train_pixels))
    config = TrainConfig(epochs=500, lr=0.5, batch_size=16, patience=2, val_split=0.2, schedule="constant", average=0)
    result = fit(Trainer(config, 50, 3), train_pixels, train_labels, validation=(val_pixels, val_labels))
    assert result.stopped_early and result.epochs_run < 500
    assert {"val_loss", "val_accuracy"} <= set(result.history[-1])


@pytest.mark.parametrize("average", [0.0, 0.5])
def test_early_stopping_keeps_the_best_epochs_weights(average):
    train_pixels, train_labels, *validation = random_labels_split()
    config = TrainConfig(epochs=500, lr=0.5, batch_size=16, patience=3, val_split=0.2, average=average)
    result = fit(Trainer(config, 50, 3), train_pixels, train_labels, validation=validation)
    val_losses = [stats["val_loss"] for stats in result.history]
    assert result.stopped_early and result.best_epoch == 1 + int(np.argmin(val_losses))
    assert result.best_epoch == result.epochs_run - 3
    assert loss_and_accuracy(result.W, result.b, model.features(validation[0]), validation[1]) == pytest.approx(
        (min(val_losses), result.history[result.best_epoch - 1]["val_accuracy"]), rel=1e-6)


def test_without_patience_there_is_no_best_epoch():
    train_pixels, train_labels, *validation = random_labels_split()
    config = TrainConfig(epochs=3, val_split=0.2)
    assert fit(Trainer(config, 50, 3), train_pixels, train_labels, validation=validation).best_epoch is None


def test_a_resumed_early_stopping_run_keeps_the_same_best_weights(tmp_path):
    train_pixels, train_labels, *validation = random_labels_split()
    config = TrainConfig(epochs=500, lr=0.5, batch_size=16, patience=3, val_split=0.2)
    uninterrupted = fit(Trainer(config, 50, 3), train_pixels, train_labels, validation=validation)
    trainer = Trainer(config, 50, 3)
    stopped = uninterrupted.best_epoch + 1  # after the best epoch, before the stop: the best is in the checkpoint
    fit(trainer, train_pixels, train_labels, validation=validation, should_stop=lambda: trainer.epoch == stopped)
    checkpoint = tmp_path / "run.ckpt.npz"
    save_checkpoint(checkpoint, trainer.to_checkpoint("random labels", "their fingerprint"))
    resumed = Trainer.from_checkpoint(load_checkpoint(checkpoint))
    result = fit(resumed, train_pixels, train_labels, validation=validation)
    assert result.best_epoch == uninterrupted.best_epoch and result.epochs_run == uninterrupted.epochs_run
    assert np.array_equal(result.W, uninterrupted.W) and np.array_equal(result.b, uninterrupted.b)


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


def test_the_scale_follows_from_the_data_uint8_pixels_or_float_features():
    pixels, labels = blobs()
    config = TrainConfig(epochs=3)
    on_pixels, on_features = Trainer(config, 16, 3), Trainer(config, 16, 3)
    pixel_result = fit(on_pixels, pixels, labels)
    feature_result = fit(on_features, model.features(pixels), labels)
    assert (on_pixels.scale, on_features.scale) == (model.PIXEL_SCALE, 1.0)
    np.testing.assert_allclose(feature_result.W, pixel_result.W, atol=1e-4)
    on_pixels.config = config.replace(epochs=4)
    with pytest.raises(SoftmaxError, match="trained on uint8 pixels and cannot go on with float features"):
        fit(on_pixels, model.features(pixels), labels)


@pytest.mark.slow
def test_on_mnist_early_stopping_ends_as_well_as_the_defaults(mnist):
    config = TrainConfig(val_split=0.1, patience=3, epochs=50)
    pixels, labels, *validation = split_validation(mnist.x_train, mnist.y_train, config.val_split, config.seed)
    result = fit(Trainer(config, 784, 10), pixels, labels, validation=validation)
    test_features = model.features(mnist.x_test)
    _, accuracy = loss_and_accuracy(result.W, result.b, test_features, mnist.y_test)
    assert result.best_epoch is not None and accuracy >= 0.925  # the defaults: 0.9276; last-epoch weights once: 0.9097
    for settings in (dict(lr=3.0), dict(loss="mse")):   # sane runs on real data are never called diverged
        result = fit(Trainer(TrainConfig(**settings), 784, 10), mnist.x_train, mnist.y_train)
        assert result.epochs_run == TrainConfig().epochs


@pytest.mark.parametrize("schedule", ["linear", "cosine", "constant"])
def test_the_learning_rates_of_an_epoch_are_those_of_its_steps_one_by_one(schedule):
    # train_epoch takes all of an epoch's rates in one call; the reference loop takes them a step at a time
    progress = (np.arange(1200) + 37) / 1000  # past the end too: the rate stays at the schedule's end
    rates = lr_factor(schedule, progress)
    assert rates.shape == progress.shape
    assert rates.tolist() == [float(lr_factor(schedule, float(p))) for p in progress]
    assert float(lr_factor(schedule, 0.0)) == 1.0
    assert float(lr_factor(schedule, 2.0)) == (1.0 if schedule == "constant" else 0.0)


WEIGHT_LOOPS = ["numpy", "compiled", "compiled, any"]
WEIGHT_CASES = [dict(), dict(batch_size=64, momentum=0, l2=0.05, schedule="constant"),
                dict(loss="mse", lr=2.0, batch_size="full"), dict(val_split=0.2, l2=0.01),
                dict(batch_size=1, lr=0.05, l2=0.01)]  # a batch of one row weighing 0 moves by l2 and momentum only


@pytest.fixture(params=WEIGHT_LOOPS)
def loop(request, monkeypatch):
    """Each training loop: the NumPy loop, the compiled epoch in this processor's form and in any processor's."""
    from softmax_cli import train as training
    if request.param == "numpy":
        monkeypatch.setenv("SOFTMAX_NUMPY_LOOP", "1")
    elif training._compiled() is None:
        pytest.skip("the compiled epoch's extension was not built")
    else:
        training._compiled().use_instructions("any" if request.param == "compiled, any" else "best")
    yield request.param
    if training._compiled() is not None:
        training._compiled().use_instructions("best")


@pytest.mark.parametrize("settings", WEIGHT_CASES)
def test_weights_of_one_give_the_bits_of_no_weights(loop, settings):
    pixels, labels = blobs(n=530)
    config = TrainConfig(**{"epochs": 3, "lr": 0.3, **settings})
    _, plain = run.learn(config, pixels, labels, 3)
    _, weighted = run.learn(config, pixels, labels, 3, sample_weight=np.ones(530))
    np.testing.assert_array_equal(weighted.W, plain.W)
    np.testing.assert_array_equal(weighted.b, plain.b)
    assert weighted.history == [{**stats, "seconds": weighted.history[i]["seconds"]}
                                for i, stats in enumerate(plain.history)]


@pytest.mark.parametrize("settings", WEIGHT_CASES)
def test_weighted_training_equals_the_weighted_float64_reference_loop(loop, settings):
    """Each step's gradient the weighted mean sum(w_i * g_i) / sum(w_i) of its batch, the epoch's loss and accuracy
    the weighted means, some weights 0: every loop against reference_fit."""
    pixels, labels = blobs(n=530)
    weights = np.random.default_rng(5).uniform(0, 3, 530)
    weights[::9] = 0
    config = TrainConfig(**{"epochs": 3, "lr": 0.3, **settings})
    _, result = run.learn(config, pixels, labels, 3, sample_weight=weights)
    W, b, history = reference_fit(config, pixels, labels, 3, sample_weight=weights)
    np.testing.assert_allclose(result.W, W, atol=2e-5 * max(1, np.abs(W).max()))
    np.testing.assert_allclose(result.b, b, atol=2e-5 * max(1, np.abs(b).max()))
    for stats, expected in zip(result.history, history, strict=True):
        assert stats["loss"] == pytest.approx(expected["loss"], rel=1e-5)
        assert stats["accuracy"] == pytest.approx(expected["accuracy"], abs=1e-2)
    _, unweighted = run.learn(config, pixels, labels, 3)
    assert not np.allclose(unweighted.W, result.W, atol=1e-3)  # the weights count


@pytest.mark.parametrize("loss", ["cross-entropy", "mse"])
def test_integer_weights_are_repeated_rows_and_a_zero_weight_an_absent_row(loss):
    """With one full batch a step (the order of the rows then changes only rounding): a weight of 3 is the row three
    times, a weight of 0 the row left out, in reference_fit as in the fast loop."""
    pixels, labels = blobs(n=200)
    weights = np.random.default_rng(1).integers(0, 4, 200)
    repeated = np.repeat(np.arange(200), weights)
    config = TrainConfig(epochs=5, lr=0.5, batch_size="full", l2=0.01, loss=loss)
    W, b, history = reference_fit(config, pixels, labels, 3, sample_weight=weights)
    W_rows, b_rows, history_rows = reference_fit(config, pixels[repeated], labels[repeated], 3)
    np.testing.assert_allclose(W, W_rows, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(b, b_rows, rtol=1e-9, atol=1e-12)
    assert [h["loss"] for h in history] == pytest.approx([h["loss"] for h in history_rows], rel=1e-9)
    assert [h["accuracy"] for h in history] == pytest.approx([h["accuracy"] for h in history_rows], rel=1e-9)
    fast = fit(Trainer(config, 16, 3), pixels, labels, sample_weight=weights)
    np.testing.assert_allclose(fast.W, W, atol=2e-5 * max(1, np.abs(W).max()))


@pytest.mark.parametrize("settings", [case for case in WEIGHT_CASES if "val_split" not in case])
def test_a_row_weighing_0_changes_no_bit_whatever_its_pixels(loop, settings):
    """Its loss and gradient times 0 add exact zeros, at any batch size: the same bits as with other pixels there.
    (Without val_split: it splits by rows, not by their weights.)"""
    pixels, labels = blobs(n=530)
    weights = np.random.default_rng(3).uniform(0.5, 2, 530)
    weights[::7] = 0
    garbage = pixels.copy()
    garbage[::7] = np.random.default_rng(4).integers(0, 256, garbage[::7].shape, dtype=np.uint8)
    config = TrainConfig(**{"epochs": 3, "lr": 0.3, **settings})
    _, result = run.learn(config, pixels, labels, 3, sample_weight=weights)
    _, other = run.learn(config, garbage, labels, 3, sample_weight=weights)
    np.testing.assert_array_equal(other.W, result.W)
    np.testing.assert_array_equal(other.b, result.b)
    assert [h["loss"] for h in other.history] == [h["loss"] for h in result.history]
    W, b, _ = reference_fit(config, pixels, labels, 3, sample_weight=weights)
    W_other, b_other, _ = reference_fit(config, garbage, labels, 3, sample_weight=weights)
    np.testing.assert_array_equal(W_other, W)
    np.testing.assert_array_equal(b_other, b)


@pytest.mark.parametrize("weights, message", [
    (np.ones(3), "one weight a sample"), (-np.ones(530), "at least 0"), (np.zeros(530), "not all 0"),
    (np.full(530, np.nan), "finite"), (["a"] * 530, "numbers")])
def test_bad_sample_weights_are_one_clear_error(weights, message):
    pixels, labels = blobs(n=530)
    with pytest.raises(SoftmaxError, match=message):
        fit(Trainer(TrainConfig(epochs=1), 16, 3), pixels, labels, sample_weight=weights)
    with pytest.raises(SoftmaxError, match=message):
        reference_fit(TrainConfig(epochs=1), pixels, labels, 3, sample_weight=weights)


@pytest.mark.parametrize("loop", ["compiled", "numpy"])
@pytest.mark.parametrize("kind", ["csr_matrix", "csc_matrix", "csr_array"])
def test_scipy_sparse_features_train_as_their_dense_rows(monkeypatch, loop, kind):
    """A scipy.sparse matrix of float features gives the bits of its dense float32 rows, weights and all (the
    compiled epoch reads its compressed rows as they are, explicit zeros and unsorted columns aside)."""
    sparse = pytest.importorskip("scipy.sparse")
    if loop == "numpy":
        monkeypatch.setenv("SOFTMAX_NUMPY_LOOP", "1")
    pixels, labels = blobs(n=530)
    dense = model.features(pixels)
    dense[:, ::3] = 0
    X = getattr(sparse, kind)(dense)
    X.data[::5] = 0  # stored zeros
    weights = np.random.default_rng(2).uniform(0, 2, 530)
    config = TrainConfig(epochs=3, lr=0.3, batch_size=64, l2=0.01)
    expected = fit(Trainer(config, 16, 3), np.asarray(X.toarray(), np.float32), labels, sample_weight=weights)
    result = fit(Trainer(config, 16, 3), X, labels, sample_weight=weights)
    np.testing.assert_array_equal(result.W, expected.W)
    np.testing.assert_array_equal(result.b, expected.b)
    assert [h["loss"] for h in result.history] == [h["loss"] for h in expected.history]


@pytest.mark.parametrize("kind", ["csr_matrix", "csc_matrix", "coo_matrix"])
@pytest.mark.parametrize("settings", [dict(val_split=0.2), dict(val_split=0.2, patience=1, epochs=6)])
def test_scipy_sparse_features_split_off_their_validation_rows(kind, settings):
    """run.learn's validation split of a scipy.sparse matrix (any format) is that of its dense rows: the same
    training, the same validation figures (the held-out rows stay compressed: their products may round otherwise)."""
    sparse = pytest.importorskip("scipy.sparse")
    pixels, labels = blobs(n=530)
    dense = model.features(pixels)
    dense[:, ::3] = 0
    config = TrainConfig(**{"epochs": 3, "lr": 0.3, "batch_size": 64, **settings})
    weights = np.random.default_rng(6).uniform(0, 2, 530)
    _, expected = run.learn(config, dense, labels, 3, sample_weight=weights)
    _, result = run.learn(config, getattr(sparse, kind)(dense), labels, 3, sample_weight=weights)
    np.testing.assert_array_equal(result.W, expected.W)
    np.testing.assert_array_equal(result.b, expected.b)
    assert result.best_epoch == expected.best_epoch
    for stats, dense_stats in zip(result.history, expected.history, strict=True):
        assert stats["loss"] == dense_stats["loss"]
        assert stats["val_loss"] == pytest.approx(dense_stats["val_loss"], rel=1e-6)  # float32 products
        assert stats["val_accuracy"] == dense_stats["val_accuracy"]
    W, b, _ = reference_fit(config, getattr(sparse, kind)(dense), labels, 3, sample_weight=weights)
    W_dense, b_dense, _ = reference_fit(config, dense, labels, 3, sample_weight=weights)
    np.testing.assert_array_equal(W, W_dense)
    np.testing.assert_array_equal(b, b_dense)
