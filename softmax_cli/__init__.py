"""softmax-cli: softmax regression on MNIST, written from scratch in NumPy."""

__version__ = "0.1.0"
DISTRIBUTION = "softmax-regression-cli"  # the name on the package index (pyproject.toml): "softmax-cli" is another's


def install_hint(extra: str) -> str:
    """Return the command that installs one of pyproject.toml's extras (keras, onnx, plots), for a message."""
    return f"pip install '{DISTRIBUTION}[{extra}]'"


def require_extra(module: str, extra: str, needed_for: str) -> None:
    """Return None if module, which an extra installs, can be imported; raise SoftmaxError (one line saying what to
    install) if not. For a check before any work: the import itself stays where the module is used."""
    import importlib.util

    from .errors import SoftmaxError

    try:
        found = importlib.util.find_spec(module) is not None
    except ImportError:
        found = False
    if not found:
        raise SoftmaxError(f"{needed_for} needs {module}, which is not installed: {install_hint(extra)}")


def __getattr__(name):
    # Imported on first use: scikit-learn takes most of a second to import, and `softmax --help` should not wait.
    if name == "SoftmaxRegression":
        from .estimator import SoftmaxRegression

        return SoftmaxRegression
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
