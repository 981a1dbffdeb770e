"""softmax-cli: softmax regression on MNIST, written from scratch in NumPy."""

__version__ = "0.1.0"


def __getattr__(name):
    # Imported on first use: scikit-learn takes most of a second to import, and `softmax --help` should not wait.
    if name == "SoftmaxRegression":
        from .estimator import SoftmaxRegression

        return SoftmaxRegression
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
