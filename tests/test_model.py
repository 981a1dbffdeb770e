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


def fused_gradient(W, b, X, labels):
    """Return (mean loss, dW, db) computed through the training loop's fused path."""
    Z = model.logits(W, b, X)
    m, k = Z.shape
    row_max, denominators = np.empty((m, 1), Z.dtype), np.empty((m, 1), Z.dtype)
    true_logits = np.empty(m, Z.dtype)
    model.fused_cross_entropy_grad(Z, np.arange(m) * k + labels, row_max, true_logits, denominators)
    loss = (np.log(denominators).sum() - true_logits.sum()) / m
    return loss, X.T @ Z / m, Z.sum(axis=0) / m


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_fused_cross_entropy_gradient_equals_the_reference(dtype):
    W, b, X, labels, Y = random_problem(dtype=dtype)
    loss, grad_W, grad_b = model.loss_and_grad(W, b, X, Y)
    fused_loss, fused_W, fused_b = fused_gradient(W, b, X, labels)
    tolerance = 1e-12 if dtype == np.float64 else 1e-5
    assert fused_loss == pytest.approx(loss, rel=tolerance)
    np.testing.assert_allclose(fused_W, grad_W, rtol=tolerance, atol=tolerance)
    np.testing.assert_allclose(fused_b, grad_b, rtol=tolerance, atol=tolerance)


def test_fused_cross_entropy_is_finite_for_huge_logits():
    W = np.array([[1e4, -1e4], [-1e4, 1e4]], dtype=np.float32)
    X = np.eye(2, dtype=np.float32)
    loss, grad_W, grad_b = fused_gradient(W, np.zeros(2, np.float32), X, np.array([1, 1]))
    assert loss == pytest.approx(1e4)
    assert np.isfinite(grad_W).all() and np.isfinite(grad_b).all()


def test_mse_gradient_matches_finite_differences():
    W, b, X, labels, Y = random_problem(n=20, d=5, k=3)

    def mse_loss():
        return model.mse_logit_grad(model.logits(W, b, X), labels) / len(X)

    Z = model.logits(W, b, X)
    loss_sum = model.mse_logit_grad(Z, labels)
    assert loss_sum / len(X) == pytest.approx(((model.predict_proba(W, b, X) - Y) ** 2).sum(axis=1).mean())
    assert relative_error(X.T @ Z / len(X), numerical_gradient(mse_loss, W)) < 1e-6
    assert relative_error(Z.sum(axis=0) / len(X), numerical_gradient(mse_loss, b)) < 1e-6


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
