import copy
import os
import subprocess
import sys

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


def compiled_module():
    """Return compiled.py: its extension is built by every install with a C compiler; CI must have it, elsewhere
    a machine without one skips these tests (its training takes the NumPy loop, tested on its own)."""
    from softmax_cli import train as training

    compiled = training._compiled()
    if compiled is None:
        message = "the compiled epoch's extension (softmax_cli/_epoch.c) was not built: is there a C compiler?"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return compiled


@pytest.fixture(params=[("best", 2), ("best", 1), ("any", 2)], ids=["two threads", "one thread", "any processor"])
def compiled(request, monkeypatch):
    """compiled.py, its kernel in each of its forms: the fastest this processor has, on two threads and on one, and
    the form for any processor."""
    compiled = compiled_module()
    instructions, threads = request.param
    monkeypatch.setattr(compiled, "usable_threads", lambda: threads)
    compiled.use_instructions(instructions)
    yield compiled
    compiled.use_instructions("best")


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


@pytest.mark.parametrize("settings", REFERENCE_CASES)
def test_the_compiled_epoch_equals_the_float64_reference_loop(compiled, settings):
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


# --- the compiled epoch (compiled.py, _epoch.c) and its NumPy fallback -----------------------------------------


def test_the_compiled_loop_resumes_bit_for_bit(compiled):
    pixels, labels = blobs(n=530)
    config = TrainConfig(epochs=4, batch_size=50)
    straight = fit(Trainer(config, 16, 3), pixels, labels)
    first = Trainer(config, 16, 3)
    fit(first, pixels, labels, should_stop=lambda: first.epoch == 2)
    resumed = fit(Trainer.from_checkpoint(first.to_checkpoint("blobs", "their fingerprint")), pixels, labels)
    np.testing.assert_array_equal(resumed.W, straight.W)
    np.testing.assert_array_equal(resumed.b, straight.b)


def test_without_the_extension_the_numpy_loop_runs(monkeypatch):
    """SOFTMAX_NUMPY_LOOP, or an install that could not build the extension, leaves the NumPy loop: same results
    as the reference, no error."""
    import sys as system

    from softmax_cli import train as training

    monkeypatch.setenv("SOFTMAX_NUMPY_LOOP", "1")
    assert training._compiled() is None
    monkeypatch.delenv("SOFTMAX_NUMPY_LOOP")
    monkeypatch.setitem(system.modules, "softmax_cli._epoch", None)  # its import raises ImportError
    monkeypatch.delitem(system.modules, "softmax_cli.compiled", raising=False)
    for name in ("compiled", "_epoch"):
        monkeypatch.delattr(system.modules["softmax_cli"], name, raising=False)
    assert training._compiled() is None
    pixels, labels = blobs(n=530)
    config = TrainConfig(epochs=3, lr=0.3)
    W, _, _ = reference_fit(config, pixels, labels, 3)
    np.testing.assert_allclose(fit(Trainer(config, 16, 3), pixels, labels).W, W, atol=2e-5 * max(1, np.abs(W).max()))


def test_every_run_takes_the_compiled_epoch_however_short(monkeypatch):
    """The extension loads in a millisecond, so even one step takes it, for both losses; more classes than its
    scratch holds take the NumPy loop."""
    from softmax_cli import train as training

    compiled = compiled_module()
    calls = []
    monkeypatch.setattr(compiled, "epoch", lambda *arguments, real=compiled.epoch: calls.append(1) or real(*arguments))
    pixels, labels = blobs(n=530)
    fit(Trainer(TrainConfig(epochs=1, batch_size="full"), 16, 3), pixels, labels)
    fit(Trainer(TrainConfig(epochs=2, loss="mse"), 16, 3), pixels, labels)
    assert len(calls) == 3  # once an epoch
    k = compiled.LANES * compiled.MAX_GROUPS + 1
    assert not compiled.supports(k, "cross-entropy") and compiled.supports(k - 1, "mse")
    many, many_labels = blobs(n=50, k=k)
    fit(Trainer(TrainConfig(epochs=1), 16, k), many, many_labels)
    assert len(calls) == 3
    assert training._compiled() is compiled


@pytest.mark.parametrize("loss", ["cross-entropy", "mse"])
@pytest.mark.parametrize("k, dtype", [(3, np.uint8), (4, np.float32), (10, np.float64), (20, np.uint8),
                                      (33, np.float32)])
def test_the_compiled_epoch_equals_the_reference_for_any_classes_and_data(compiled, k, dtype, loss):
    """An odd and an even number of classes (20 and 33: two and three groups of LANES), pixels and float features,
    zero columns and rows with nothing but the bias, l2."""
    pixels, labels = blobs(n=530, k=k)  # 530: a last batch of 50
    pixels[:, ::3] = 0  # some zeros, as in MNIST, and some rows with none but the bias
    pixels[::7] = 0
    X = pixels if dtype == np.uint8 else model.features(pixels).astype(dtype)
    config = TrainConfig(epochs=3, lr=0.3, batch_size=120, l2=0.01, loss=loss)
    result = fit(Trainer(config, 16, k), X, labels)
    W, b, history = reference_fit(config, X, labels, k)
    np.testing.assert_allclose(result.W, W, atol=2e-5 * max(1, np.abs(W).max()))
    np.testing.assert_allclose(result.b, b, atol=2e-5 * max(1, np.abs(b).max()))
    assert [stats["loss"] for stats in result.history] == pytest.approx([h["loss"] for h in history], 1e-5)


@pytest.mark.parametrize("k, dtype, loss", [(10, np.uint8, "cross-entropy"), (20, np.float32, "mse")])
def test_one_thread_or_two_give_the_same_bits(monkeypatch, k, dtype, loss):
    """Each step's batch is cut in the same two pieces whatever the threads, and summed in the same order; also when
    two threads share one core, where they soon find that waiting costs more than working and go on as one."""
    compiled = compiled_module()
    pixels, labels = blobs(n=30_000, d=100, k=k)  # enough work an epoch (milliseconds) for the threads to judge
    X = pixels if dtype == np.uint8 else model.features(pixels).astype(dtype)
    config = TrainConfig(epochs=2, lr=0.01, batch_size=64, l2=0.01, loss=loss)
    results = []
    for threads, cores in [(1, None), (2, None), (2, 1)]:
        monkeypatch.setattr(compiled, "usable_threads", lambda threads=threads: threads)
        before = os.sched_getaffinity(0)
        if cores:
            os.sched_setaffinity(0, set(sorted(before)[:cores]))  # the second thread inherits it
        try:
            results.append(fit(Trainer(config, 100, k), X, labels))
        finally:
            os.sched_setaffinity(0, before)
    for result in results[1:]:
        np.testing.assert_array_equal(result.W, results[0].W)
        np.testing.assert_array_equal(result.b, results[0].b)
        assert [stats["loss"] for stats in result.history] == [stats["loss"] for stats in results[0].history]


def test_many_short_epochs_on_two_threads_neither_hang_nor_differ():
    """A second thread is started every epoch and meets the caller twice a step: a thousand epochs of a few steps
    each, in a process of their own so that a hang fails the test instead of stopping the suite."""
    compiled_module()
    script = """
import numpy as np
from softmax_cli import compiled
from softmax_cli.config import TrainConfig
from softmax_cli.train import Trainer, fit
rng = np.random.default_rng(0)
pixels, labels = rng.integers(0, 256, size=(40, 16), dtype=np.uint8), rng.integers(0, 3, size=40)
weights = []
for threads in (2, 1):
    compiled.usable_threads = lambda threads=threads: threads
    trainer = Trainer(TrainConfig(epochs=1000, batch_size=20, lr=0.01), 16, 3)
    weights.append(fit(trainer, pixels, labels).W)
assert np.array_equal(weights[0], weights[1])
print("ok")
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert result.stdout.strip() == "ok", result.stderr


def test_softmax_threads_limits_the_threads_and_a_bad_value_is_one_clear_error(monkeypatch):
    compiled = compiled_module()
    cores = len(os.sched_getaffinity(0))
    monkeypatch.setenv("SOFTMAX_THREADS", "1")
    assert compiled.usable_threads() == 1
    monkeypatch.setenv("SOFTMAX_THREADS", "8")
    assert compiled.usable_threads() == min(cores, compiled.PIECES)
    for bad in ("0", "two", "-1", "1.5"):
        monkeypatch.setenv("SOFTMAX_THREADS", bad)
        with pytest.raises(SoftmaxError, match="SOFTMAX_THREADS must be a whole number at least 1"):
            compiled.usable_threads()


def test_the_compiled_epoch_keeps_early_stoppings_window_of_averages(monkeypatch):
    compiled_module()
    pixels, labels = blobs(n=530)
    validation = blobs(n=200, seed=1)
    config = TrainConfig(epochs=6, val_split=0.1, patience=2, batch_size=50)  # fit is given the validation set
    compiled_run = fit(Trainer(config, 16, 3), pixels, labels, validation=validation)
    monkeypatch.setenv("SOFTMAX_NUMPY_LOOP", "1")
    numpy_run = fit(Trainer(config, 16, 3), pixels, labels, validation=validation)
    assert compiled_run.best_epoch == numpy_run.best_epoch
    np.testing.assert_allclose(compiled_run.W, numpy_run.W, atol=1e-5 * max(1, np.abs(numpy_run.W).max()))


@pytest.mark.parametrize("dtype", [np.uint8, np.float32, np.float64])
@pytest.mark.parametrize("d", [20, 70_000])  # 70,000 features: columns past uint16's range
def test_rows_are_compressed_as_scipy_compresses_them(dtype, d):
    from scipy import sparse

    compiled = compiled_module()
    pixels, _ = blobs(n=50, d=d)
    pixels[pixels < 120] = 0
    pixels[3] = 0  # a row of zeros
    X = pixels if dtype == np.uint8 else pixels.astype(dtype) / 7  # float features that float32 rounds
    rows = compiled.Rows(X)
    expected = sparse.csr_matrix(X)
    assert rows.density == pytest.approx(expected.nnz / X.size)
    np.testing.assert_array_equal(rows.indptr, expected.indptr)
    np.testing.assert_array_equal(rows.columns, expected.indices)
    np.testing.assert_array_equal(rows.values, expected.data.astype(rows.values.dtype))
    assert rows.values.dtype == (np.uint8 if dtype == np.uint8 else np.float32)
    assert rows.columns.dtype == (np.uint16 if d < 2**16 else np.uint32)


def test_the_compiled_epoch_trains_on_more_features_than_uint16_counts(compiled):
    pixels, labels = blobs(n=60, d=70_000)
    config = TrainConfig(epochs=2, lr=0.001, batch_size=16)  # 70,000 features of up to 1 each: a small step
    result = fit(Trainer(config, 70_000, 3), pixels, labels)
    W, b, _ = reference_fit(config, pixels, labels, 3)
    np.testing.assert_allclose(result.W, W, atol=2e-5 * max(1, np.abs(W).max()))


def test_mnist_is_mostly_zeros(mnist):
    rows = compiled_module().Rows(mnist.x_train.reshape(len(mnist.x_train), -1))
    assert 0.15 < rows.density < 0.25  # 19 % of MNIST's pixels are not zero


def test_the_kernel_refuses_arrays_of_the_wrong_size():
    """compiled.epoch makes every array the kernel reads; should a caller get one wrong, the kernel says so instead
    of reading past it."""
    compiled = compiled_module()
    pixels, labels = blobs(n=30)
    rows = compiled.Rows(pixels)
    weights = np.zeros((3, 17), np.float32)
    arguments = dict(order=np.arange(30), labels=labels, predicted=np.empty(30, np.intp), weights=weights,
                     velocity=np.zeros_like(weights), summed=np.zeros(weights.shape), lrs=[0.1] * 3, first_averaged=0,
                     batch_size=10, gradient_scale=1.0, l2=0.0, momentum=0.9, bias=1.0, loss="cross-entropy")
    compiled.epoch(rows, **arguments)
    for name, wrong in [("lrs", [0.1] * 2), ("order", np.arange(30) + 1), ("labels", labels + 3),
                        ("order", np.arange(29))]:
        with pytest.raises(ValueError):
            compiled.epoch(rows, **{**arguments, name: wrong})


def test_a_later_fit_reads_the_data_it_is_given_even_in_the_same_array():
    """The compressed rows are made once a fit: data changed in place before the next fit is read anew."""
    compiled_module()
    pixels, labels = blobs(n=530)
    other, other_labels = blobs(n=530, seed=5)

    def two_fits(second):
        trainer = Trainer(TrainConfig(epochs=2, lr=0.3), 16, 3)
        fit(trainer, pixels, labels, should_stop=lambda: trainer.epoch == 1)
        if second is None:
            pixels[:] = other
            second = pixels
        return fit(trainer, second, other_labels).W

    expected = two_fits(other.copy())
    np.testing.assert_array_equal(two_fits(None), expected)


@pytest.mark.parametrize("schedule", ["linear", "cosine", "constant"])
def test_the_learning_rates_of_an_epoch_are_those_of_its_steps_one_by_one(schedule):
    # train_epoch takes all of an epoch's rates in one call; the reference loop takes them a step at a time
    progress = (np.arange(1200) + 37) / 1000  # past the end too: the rate stays at the schedule's end
    rates = lr_factor(schedule, progress)
    assert rates.shape == progress.shape
    assert rates.tolist() == [float(lr_factor(schedule, float(p))) for p in progress]
    assert float(lr_factor(schedule, 0.0)) == 1.0
    assert float(lr_factor(schedule, 2.0)) == (1.0 if schedule == "constant" else 0.0)
