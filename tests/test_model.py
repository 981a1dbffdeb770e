from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import log_loss
from sklearn.preprocessing import LabelBinarizer, OneHotEncoder

from softmax_cli import model


def random_problem(n=50, d=7, k=4, seed=0, dtype=np.float64):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)).astype(dtype)
    W = rng.normal(size=(d, k)).astype(dtype)
    b = rng.normal(size=k).astype(dtype)
    labels = rng.integers(0, k, size=n)
    labels[:k] = np.arange(k)  # every class present, so LabelBinarizer gives k columns
    Y = LabelBinarizer().fit_transform(labels).astype(dtype)
    return W, b, X, labels, Y


def test_softmax_rows_sum_to_one_and_stay_finite_for_huge_logits():
    Z = np.array([[1e4, -1e4, 0.0], [-1e4, -1e4, -1e4], [3.0, 1.0, 0.2]])
    P = model.softmax(Z)
    assert np.isfinite(P).all()
    np.testing.assert_allclose(P.sum(axis=1), 1.0)
    np.testing.assert_allclose(P[0], [1.0, 0.0, 0.0])
    np.testing.assert_allclose(P[1], [1 / 3] * 3)
    assert np.isfinite(model.log_softmax(Z)).all()


def test_softmax_normalises_over_the_class_axis_not_the_batch():
    # The tutorials' bug: normalising over axis 0. Each row must be a distribution on its own.
    Z = np.array([[2.0, 1.0, 0.1], [0.0, 0.0, 0.0]])
    np.testing.assert_allclose(model.softmax(Z)[1], [1 / 3] * 3)
    expected = np.exp(Z[0]) / np.exp(Z[0]).sum()
    np.testing.assert_allclose(model.softmax(Z)[0], expected)


def test_logsumexp_matches_the_naive_formula_where_that_is_safe():
    Z = np.random.default_rng(1).normal(size=(5, 6))
    np.testing.assert_allclose(model.logsumexp(Z, axis=1), np.log(np.exp(Z).sum(axis=1)))
    assert np.isfinite(model.logsumexp(np.array([[1e4, 1e4]]), axis=1)).all()


def test_loss_equals_sklearn_log_loss():
    W, b, X, labels, Y = random_problem()
    loss, _, _ = model.loss_and_grad(W, b, X, Y)
    expected = log_loss(labels, model.predict_proba(W, b, X), labels=np.arange(4))
    assert loss == pytest.approx(expected, rel=1e-12)


def numerical_gradient(f, A, eps=1e-6):
    grad = np.zeros_like(A)
    for i in np.ndindex(A.shape):
        saved = A[i]
        A[i] = saved + eps
        up = f()
        A[i] = saved - eps
        down = f()
        A[i] = saved
        grad[i] = (up - down) / (2 * eps)
    return grad


def relative_error(a, b):
    return np.abs(a - b).max() / max(np.abs(a).max(), np.abs(b).max())


def test_gradient_matches_central_finite_differences():
    W, b, X, labels, Y = random_problem()
    _, grad_W, grad_b = model.loss_and_grad(W, b, X, Y)
    assert relative_error(grad_W, numerical_gradient(lambda: model.loss_and_grad(W, b, X, Y)[0], W)) < 1e-6
    assert relative_error(grad_b, numerical_gradient(lambda: model.loss_and_grad(W, b, X, Y)[0], b)) < 1e-6
    # and the closed form the docs promise: X.T @ (P - Y) / N and mean(P - Y)
    P = model.predict_proba(W, b, X)
    np.testing.assert_allclose(grad_W, X.T @ (P - Y) / len(X))
    np.testing.assert_allclose(grad_b, (P - Y).mean(axis=0))


def kernel_gradient(kernel, W, b, X, labels):
    """Return (mean loss, dW, db) computed through one of the training loop's fused kernels."""
    Z = model.logits(W, b, X)
    m, k = Z.shape
    loss_sum = kernel(Z, np.arange(m) * k + labels)  # Z becomes d loss / d Z
    return loss_sum / m, X.T @ Z / m, Z.sum(axis=0) / m


def mse_loss(W, b, X, Y):
    """The squared error of the probabilities, summed over the classes and averaged over the samples."""
    return ((model.predict_proba(W, b, X) - Y) ** 2).sum(axis=1).mean()


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_fused_cross_entropy_gradient_equals_the_reference(dtype):
    W, b, X, labels, Y = random_problem(dtype=dtype)
    loss, grad_W, grad_b = model.loss_and_grad(W, b, X, Y)
    fused_loss, fused_W, fused_b = kernel_gradient(model.fused_cross_entropy_grad, W, b, X, labels)
    tolerance = 1e-12 if dtype == np.float64 else 1e-5
    assert fused_loss == pytest.approx(loss, rel=tolerance)
    np.testing.assert_allclose(fused_W, grad_W, rtol=tolerance, atol=tolerance)
    np.testing.assert_allclose(fused_b, grad_b, rtol=tolerance, atol=tolerance)


def test_fused_cross_entropy_is_finite_for_huge_logits():
    W = np.array([[1e4, -1e4], [-1e4, 1e4]], dtype=np.float32)
    X = np.eye(2, dtype=np.float32)
    loss, grad_W, grad_b = kernel_gradient(model.fused_cross_entropy_grad, W, np.zeros(2, np.float32), X,
                                           np.array([1, 1]))
    assert loss == pytest.approx(1e4)
    assert np.isfinite(grad_W).all() and np.isfinite(grad_b).all()


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_mse_gradient_matches_finite_differences(dtype):
    W, b, X, labels, Y = random_problem(n=20, d=5, k=3)
    loss, grad_W, grad_b = kernel_gradient(model.mse_logit_grad, *(a.astype(dtype) for a in (W, b, X)), labels)
    tolerance = 1e-6 if dtype == np.float64 else 1e-4
    assert loss == pytest.approx(mse_loss(W, b, X, Y), rel=tolerance)
    assert relative_error(grad_W, numerical_gradient(lambda: mse_loss(W, b, X, Y), W)) < tolerance
    assert relative_error(grad_b, numerical_gradient(lambda: mse_loss(W, b, X, Y), b)) < tolerance


@pytest.mark.parametrize("kernel, summed_loss", [
    (model.fused_cross_entropy_grad, lambda Z, Y: -(Y * model.log_softmax(Z)).sum()),
    (model.mse_logit_grad, lambda Z, Y: ((model.softmax(Z) - Y) ** 2).sum()),
])
def test_both_kernels_share_one_contract_the_loss_sum_and_its_gradient_in_the_logits(kernel, summed_loss):
    W, b, X, labels, Y = random_problem(k=4)
    logits = model.logits(W, b, X)
    Z = logits.copy()
    returned = kernel(Z, np.arange(len(X)) * 4 + labels)
    assert isinstance(returned, float) and returned == pytest.approx(summed_loss(logits, Y), rel=1e-12)
    assert relative_error(Z, numerical_gradient(lambda: summed_loss(logits, Y), logits)) < 1e-6


@pytest.mark.parametrize("n_classes", [2, 3, 10])
def test_one_hot_matches_scikit_learn(n_classes):
    labels = np.random.default_rng(n_classes).integers(0, n_classes, 50)
    expected = OneHotEncoder(categories=[list(range(n_classes))], sparse_output=False).fit_transform(labels[:, None])
    result = model.one_hot(labels, n_classes)
    assert result.dtype == np.float32
    np.testing.assert_array_equal(result, expected)
    if n_classes > 2:  # LabelBinarizer gives a single column for two classes
        np.testing.assert_array_equal(result, LabelBinarizer().fit(range(n_classes)).transform(labels))


def test_one_hot_rejects_labels_outside_the_classes():
    with pytest.raises(ValueError, match="0..2"):
        model.one_hot(np.array([0, 3]), 3)
    with pytest.raises(ValueError):
        model.one_hot(np.array([-1, 0]), 3)


def test_features_are_float32_rows_of_pixels_over_255():
    pixels = np.arange(256, dtype=np.uint8).reshape(4, 8, 8)
    rows = model.features(pixels)
    assert rows.shape == (4, 64) and rows.dtype == np.float32
    np.testing.assert_allclose(rows.ravel(), np.arange(256) / 255, rtol=1e-6)
    assert rows.min() == 0.0 and rows.max() == pytest.approx(1.0)
    np.testing.assert_array_equal(model.features(pixels.reshape(4, 64)), rows)


def test_float_images_are_already_features():
    """A person's framed photo arrives as intensities in [0, 1]: it is not divided by 255 a second time."""
    intensities = np.linspace(0, 1, 4 * 64, dtype=np.float32).reshape(4, 8, 8)
    np.testing.assert_array_equal(model.features(intensities), intensities.reshape(4, 64))
    np.testing.assert_allclose(model.features(intensities), model.features((intensities * 255).round().astype(np.uint8)),
                               atol=0.5 / 255 + 1e-7)


def test_the_math_imports_nothing_but_numpy():
    """model.py is pure: preprocessing (and its disk cache) lives in preprocess.py, whose callers hand features()
    images already preprocessed."""
    import ast

    tree = ast.parse(Path(model.__file__).read_text())
    imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    imported |= {node.module or "." for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert imported == {"__future__", "numpy"}
