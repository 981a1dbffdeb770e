"""Fixtures shared by the tests: where the real data sets are, and a model trained on MNIST once per session."""

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
# scikit-learn's estimator checks include an array-API check that runs only when SciPy was imported with this
# set; set before anything imports SciPy, so that check_estimator runs every check instead of skipping one.
os.environ.setdefault("SCIPY_ARRAY_API", "1")


def require(path: Path, what: str) -> Path:
    """Return path if it exists; otherwise fail in CI (CI=true), where real-data tests must run, and skip elsewhere."""
    if not path.exists():
        message = f"{what} not found at {path}: set SOFTMAX_DATA to a local copy of MNIST"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return path


@pytest.fixture(scope="session")
def mnist_path() -> Path:
    """The real MNIST copy that SOFTMAX_DATA names (default ../shared/data/mnist)."""
    path = Path(os.environ.get("SOFTMAX_DATA") or REPO.parent / "shared" / "data" / "mnist")
    return require(path if path.is_absolute() else (REPO / path).resolve(), "real MNIST data")


@pytest.fixture(scope="session")
def fashion_path(mnist_path) -> Path:
    """The four official Fashion-MNIST files, in the folder beside the MNIST copy."""
    return require(mnist_path.parent / "fashion-mnist", "Fashion-MNIST")


@pytest.fixture(scope="session")
def mnist(mnist_path):
    from softmax_cli.data import load_dataset

    return load_dataset(mnist_path)


@pytest.fixture(scope="session")
def mnist_model(mnist):
    """A model trained on real MNIST with the default settings (W, b apply to pixels / 255)."""
    from softmax_cli.config import TrainConfig
    from softmax_cli.run import learn

    return learn(TrainConfig(), mnist.x_train, mnist.y_train, mnist.n_classes)[1]


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
