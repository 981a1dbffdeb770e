"""metrics.py: features from pixels, and the entropy of a prediction."""

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from softmax_cli.metrics import entropy_bits


@pytest.mark.parametrize(
    "probabilities, bits",
    [
        ([1.0, 0.0, 0.0], 0.0),
        ([0.5, 0.5], 1.0),
        ([0.25] * 4, 2.0),
        ([0.1] * 10, math.log2(10)),
        ([0.5, 0.25, 0.25], 1.5),
    ],
)
def test_entropy_of_known_distributions(probabilities, bits):
    assert entropy_bits(np.array(probabilities, dtype=np.float32)) == pytest.approx(bits, abs=1e-6)


def test_a_certain_prediction_has_zero_entropy_not_minus_zero():
    assert str(float(entropy_bits(np.array([0.0, 1.0])))) == "0.0"


def test_entropy_of_each_row():
    rows = np.array([[1.0, 0.0], [0.5, 0.5], [0.75, 0.25]])
    assert entropy_bits(rows) == pytest.approx([0.0, 1.0, 0.811278], abs=1e-6)


@given(st.lists(st.floats(0, 1e6), min_size=2, max_size=20).filter(lambda weights: sum(weights) > 0))
def test_entropy_lies_between_certain_and_uniform(weights):
    probabilities = np.array(weights) / sum(weights)
    assert 0 <= entropy_bits(probabilities) <= math.log2(len(weights)) + 1e-9
