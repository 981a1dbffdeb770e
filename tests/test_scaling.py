"""The defaults of lr='auto' (softmax_cli.scaling): the curvature bound, the batch size and the epochs."""

import numpy as np
import pytest

from softmax_cli import scaling


def test_the_curvature_is_the_largest_eigenvalue_even_where_all_ones_is_orthogonal_to_it():
    """Two standardised features correlated negatively (as the Keras lab's blobs): the top eigenvector of
    X1.T @ X1 / n is (1, -1, 0), orthogonal to an all-ones start (which gave 0.5 instead of 0.74)."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal(2000)
    features = np.column_stack([a, -a + 0.7 * rng.standard_normal(2000)])
    X = scaling.Standardiser.fitted(features).transform(features)
    X1 = np.column_stack([X, np.ones(len(X))])
    assert scaling.curvature(X) == pytest.approx(0.5 * np.linalg.eigvalsh(X1.T @ X1 / len(X))[-1], rel=1e-5)


def test_a_small_set_is_cut_into_several_batches_and_gets_the_minimum_steps():
    assert scaling.batch_size_for(120, 105) == 27  # iris's 105 training rows: 4 batches, not 1
    assert scaling.batch_size_for(120, 1400) == 120 and scaling.batch_size_for("full", 50) == "full"
    assert scaling.epochs_for(4, 105, 27) == -(-scaling.MIN_STEPS // scaling.MIN_BATCHES) == 63
    assert scaling.epochs_for(4, 60_000, 120) == 4  # a large set keeps its epochs
