"""The compiled epoch (compiled.py, _epoch.c) against the NumPy loop and the float64 reference loop, and its NumPy
fallback."""

import os

import numpy as np
import pytest

from softmax_cli import model
from softmax_cli.config import TrainConfig
from softmax_cli.errors import SoftmaxError
from softmax_cli.train import Trainer, fit, reference_fit
from test_train import REFERENCE_CASES, assert_equals_the_reference, blobs

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


@pytest.fixture(params=["best", "any"], ids=["this processor's form", "any processor's form"])
def compiled(request):
    """compiled.py, its kernel in each of its forms: the fastest this processor has, and the form for any
    processor."""
    compiled = compiled_module()
    compiled.use_instructions(request.param)
    yield compiled
    compiled.use_instructions("best")


@pytest.mark.parametrize("settings", REFERENCE_CASES)
def test_the_compiled_epoch_equals_the_float64_reference_loop(compiled, settings):
    assert_equals_the_reference(settings)


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
def test_one_thread_or_the_default_give_the_same_bits(monkeypatch, k, dtype, loss):
    """SOFTMAX_THREADS changes only how many threads compress the rows (each its own rows): the same bits."""
    compiled = compiled_module()
    monkeypatch.setattr(compiled, "TWO_THREADS_FROM", 0)  # two threads compress even these few rows
    pixels, labels = blobs(n=3_000, d=100, k=k)
    X = pixels if dtype == np.uint8 else model.features(pixels).astype(dtype)
    config = TrainConfig(epochs=2, lr=0.01, batch_size=64, l2=0.01, loss=loss)
    results = []
    for threads in ("1", "2"):
        monkeypatch.setenv("SOFTMAX_THREADS", threads)
        results.append(fit(Trainer(config, 100, k), X, labels))
    np.testing.assert_array_equal(results[1].W, results[0].W)
    np.testing.assert_array_equal(results[1].b, results[0].b)
    assert [stats["loss"] for stats in results[1].history] == [stats["loss"] for stats in results[0].history]


def test_the_compiled_epoch_starts_no_thread():
    """Two threads meeting twice a step were many times slower beside a busy process: the epoch is the caller's."""
    compiled = compiled_module()
    pixels, labels = blobs(n=20_000, d=100)
    rows = compiled.Rows(pixels)
    weights = np.zeros((3, 101), np.float32)
    seen = []

    def count_threads():
        seen.append(len(os.listdir("/proc/self/task")))

    import threading
    watcher = threading.Timer(0.0, count_threads)
    before = len(os.listdir("/proc/self/task"))
    watcher.start()
    compiled.epoch(rows, order=np.arange(20_000), labels=labels, predicted=np.empty(20_000, np.intp), weights=weights,
                   velocity=np.zeros_like(weights), summed=np.zeros(weights.shape), lrs=[0.1] * 2000,
                   first_averaged=0, batch_size=10, gradient_scale=1.0, l2=0.0, momentum=0.9, bias=1.0,
                   loss="cross-entropy")
    watcher.join()
    assert seen and max(seen) <= before + 1  # the watcher's own thread at most


def test_softmax_threads_limits_the_threads_and_a_bad_value_is_one_clear_error(monkeypatch):
    compiled = compiled_module()
    cores = len(os.sched_getaffinity(0))
    monkeypatch.setenv("SOFTMAX_THREADS", "1")
    assert compiled.usable_threads() == 1
    for many in ("8", "9" * 5_000):  # past int()'s 4,300 digits: still a whole number, and no crash
        monkeypatch.setenv("SOFTMAX_THREADS", many)
        assert compiled.usable_threads() == min(cores, compiled.PIECES)
    for bad in ("0", "two", "-1", "1.5", "\u0662", "\u00b2", "0" * 5_000, "\u0661" * 5_000):
        monkeypatch.setenv("SOFTMAX_THREADS", bad)
        with pytest.raises(SoftmaxError, match="SOFTMAX_THREADS must be a whole number at least 1") as raised:
            compiled.usable_threads()
        assert "\n" not in str(raised.value) and len(str(raised.value)) < 200


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
@pytest.mark.parametrize("two_threads_from", [0, 2**62])
def test_rows_are_compressed_as_scipy_compresses_them(monkeypatch, dtype, d, two_threads_from):
    from scipy import sparse

    compiled = compiled_module()
    monkeypatch.setattr(compiled, "TWO_THREADS_FROM", two_threads_from)  # on two threads, or on one
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


def test_a_processor_with_avx2_takes_the_kernel_built_for_it_and_tests_can_take_the_other():
    """setup.py builds _epoch.c twice on x86-64 (vectors of four floats, and of eight with -mavx2 -mfma); "best"
    takes the AVX2 build where the processor has AVX2 and FMA, "any" the build for any processor."""
    compiled = compiled_module()
    try:
        assert compiled.use_instructions("any") == "any" and compiled._kernel is compiled._epoch
        best = compiled.use_instructions("best")
        if compiled._epoch.processor_has_avx2():
            assert best == "avx2" and compiled._kernel.INSTRUCTIONS == "avx2"
        else:
            assert best == "any" and "avx2" not in compiled.KERNELS
    finally:
        compiled.use_instructions("best")


def test_a_fresh_process_takes_the_best_kernel_without_being_asked():
    """A run is the same whatever the command prints: `softmax train -q` once took the generic kernel and
    `softmax train` (whose loop note asked for "best") the AVX2 one, so their models differed in the last bits and
    a resumed run did not equal an uninterrupted one."""
    import subprocess
    import sys

    compiled_module()
    code = ("from softmax_cli import compiled; "
            "print(compiled.instructions(), compiled._epoch.processor_has_avx2(), 'avx2' in compiled.KERNELS)")
    name, has_avx2, built = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                           check=True).stdout.split()
    assert name == ("avx2" if has_avx2 == built == "True" else "any")
