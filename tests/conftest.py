"""Fixtures shared by the tests: where the real MNIST copy is, and a model trained on it once per session."""

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def _real_data_or_skip() -> Path:
    """Return the folder SOFTMAX_DATA names; fail in CI when it is missing, skip elsewhere."""
    value = os.environ.get("SOFTMAX_DATA") or str(REPO.parent / "shared" / "data" / "mnist")
    path = Path(value)
    if not path.is_absolute():
        path = (REPO / path).resolve()
    if not path.exists():
        message = f"real MNIST data not found at {path}: set SOFTMAX_DATA to a local copy"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return path


@pytest.fixture(scope="session")
def mnist_path() -> Path:
    return _real_data_or_skip()


@pytest.fixture(scope="session", autouse=True)
def private_cache(tmp_path_factory):
    """Keep the data cache of the tests out of the user's ~/.cache."""
    previous = os.environ.get("SOFTMAX_CACHE_DIR")
    os.environ["SOFTMAX_CACHE_DIR"] = str(tmp_path_factory.mktemp("cache"))
    yield
    if previous is None:
        del os.environ["SOFTMAX_CACHE_DIR"]
    else:
        os.environ["SOFTMAX_CACHE_DIR"] = previous
