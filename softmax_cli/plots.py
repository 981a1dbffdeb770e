"""Figures of a trained model as PNG files: confusion matrix, weight templates, learning curves, confident mistakes.

Figures are built on matplotlib's `Figure` directly, never through pyplot: no backend state, no windows,
safe in threads, and nothing to close. matplotlib is imported inside the functions, so importing this
module stays cheap.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from .errors import SoftmaxError

DPI = 110
METRICS = ("loss", "accuracy")  # what training records per epoch, and the validation ones as val_<metric>
FIGURE_NAMES = ("confusion_matrix", "weight_templates", "learning_curves", "confident_mistakes")


def write_evaluation_figures(out_dir, model, pixels: np.ndarray, labels: np.ndarray,
                             probabilities: np.ndarray) -> list[Path]:
    """Return the paths of the four PNG figures written to out_dir (created if missing) for a model and its test set.

    model is a `store.SavedModel`; pixels are uint8 test images (n, height, width) with their labels,
    and probabilities (n, classes) are the model's for them.
    """
    from sklearn.metrics import confusion_matrix

    out_dir = Path(out_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise SoftmaxError(f"cannot create the figure folder {out_dir}: {e.strerror or e}") from None
    paths = {name: out_dir / f"{name}.png" for name in FIGURE_NAMES}
    predicted = probabilities.argmax(axis=1)
    matrix = confusion_matrix(labels, predicted, labels=np.arange(len(model.class_names)))
    return [
        plot_confusion_matrix(matrix, model.class_names, paths["confusion_matrix"]),
        plot_weight_templates(model.W, model.image_shape, model.class_names, paths["weight_templates"]),
        plot_learning_curves(model.metadata["history"], paths["learning_curves"]),
        plot_confident_mistakes(pixels, labels, probabilities, model.class_names, paths["confident_mistakes"]),
    ]


def plot_confusion_matrix(matrix, class_names, path) -> Path:
    """Return path, after writing a PNG of the confusion matrix counts (rows: true class) with the accuracy."""
    matrix = np.asarray(matrix)
    k = len(class_names)
    figure = _new_figure(2.5 + 0.6 * k, 2.0 + 0.55 * k)
    axes = figure.add_subplot()
    image = axes.imshow(matrix, cmap="Blues")
    figure.colorbar(image, ax=axes, label="test images")
    ticks = np.arange(k)
    long_names = max(map(len, class_names)) > 3
    axes.set_xticks(ticks, class_names, rotation=45 if long_names else 0, ha="right" if long_names else "center")
    axes.set_yticks(ticks, class_names)
    axes.set_xlabel("predicted class")
    axes.set_ylabel("true class")
    # Dark text on light cells, light text on dark ones, so every count stays readable.
    threshold = matrix.max() / 2
    for (row, column), count in np.ndenumerate(matrix):
        axes.text(column, row, str(count), ha="center", va="center", fontsize=8,
                  color="white" if count > threshold else "black")
    total = matrix.sum()
    accuracy = np.trace(matrix) / total if total else 0.0
    axes.set_title(f"Confusion matrix: accuracy {accuracy:.2%} on {total} test images")
    return _save(figure, path)


def plot_weight_templates(W: np.ndarray, image_shape, class_names, path) -> Path:
    """Return path, after writing a PNG of each class's weights (a column of W) drawn as an image."""
    columns, rows = _grid(len(class_names), max_columns=5)
    figure = _new_figure(2.0 * columns + 1.2, 2.1 * rows + 0.8)
    grid = figure.subplots(rows, columns, squeeze=False)
    # Limits symmetric about 0, so white means "no effect" in every panel and colours compare across panels.
    limit = float(np.abs(W).max()) or 1.0
    for axes, name, weights in zip(grid.flat, class_names, W.T):
        image = axes.imshow(weights.reshape(image_shape), cmap="RdBu_r", vmin=-limit, vmax=limit)
        axes.set_title(name)
    for axes in grid.flat:
        _hide_axis(axes)
    figure.colorbar(image, ax=grid, shrink=0.8, label="weight on pixel intensity (0 to 1)")
    figure.suptitle("What each class looks for: a bright pixel where red raises its score, where blue lowers it")
    return _save(figure, path)


def plot_learning_curves(history: list[dict], path) -> Path:
    """Return path, after writing a PNG of loss and accuracy per epoch, training and (if recorded) validation."""
    metrics = [metric for metric in METRICS if any(metric in epoch for epoch in history)]
    if not metrics:
        return _save(_message_figure("Learning curves", "This model file has no per-epoch history"), path)
    figure = _new_figure(5.0 * len(metrics), 4.0)
    for axes, metric in zip(figure.subplots(1, len(metrics), squeeze=False).flat, metrics):
        _plot_series(axes, history, metric, label="training")
        _plot_series(axes, history, f"val_{metric}", label="validation")
        _label_metric_axes(axes, metric)
        axes.set_title(f"{metric.capitalize()} per epoch")
    figure.suptitle("Learning curves")
    return _save(figure, path)


def plot_loss_comparison(histories: dict[str, list[dict]], path, metric: str = "accuracy") -> Path:
    """Return path, after writing a PNG of one metric per epoch for several named runs on shared axes.

    Each run is one colour: a solid line for training and, where recorded, a dashed one for validation.
    """
    if metric not in METRICS:
        raise SoftmaxError(f"cannot plot {metric!r}: choose one of {', '.join(METRICS)}")
    figure = _new_figure(6.5, 4.5)
    axes = figure.add_subplot()
    for i, (name, history) in enumerate(histories.items()):
        color = f"C{i % 10}"  # matplotlib's default cycle, fixed per run so its two lines match
        _plot_series(axes, history, metric, label=f"{name} (training)", color=color)
        _plot_series(axes, history, f"val_{metric}", label=f"{name} (validation)", color=color, linestyle="--")
    _label_metric_axes(axes, metric)
    axes.set_title(f"{metric.capitalize()} per epoch: {' vs '.join(histories)}")
    return _save(figure, path)


def plot_confident_mistakes(pixels: np.ndarray, labels: np.ndarray, probabilities: np.ndarray, class_names,
                            path, count: int = 16) -> Path:
    """Return path, after writing a PNG of the count test images misclassified with the highest probability.

    pixels are uint8 images (n, height, width); probabilities (n, classes) are the model's for them.
    """
    predicted = probabilities.argmax(axis=1)
    confidence = probabilities.max(axis=1)
    n_mistakes = int((predicted != labels).sum())
    if n_mistakes == 0:
        return _save(_message_figure(
            "Most confident mistakes", f"No mistakes: all {len(labels)} test images are classified correctly"
        ), path)
    shown = most_confident_mistakes(labels, probabilities, count)
    columns, rows = _grid(len(shown), max_columns=4)
    figure = _new_figure(2.3 * columns + 0.4, 2.5 * rows + 0.8)
    for axes, index in zip(figure.subplots(rows, columns, squeeze=False).flat, shown):
        axes.imshow(pixels[index], cmap="gray", vmin=0, vmax=255)
        axes.set_title(f"true {class_names[labels[index]]}\npredicted {class_names[predicted[index]]} "
                       f"(p={confidence[index]:.2f})", fontsize=9)
    for axes in figure.axes:
        _hide_axis(axes)
    figure.suptitle(f"The {len(shown)} most confident of {n_mistakes} mistakes on {len(labels)} test images")
    return _save(figure, path)


def most_confident_mistakes(labels: np.ndarray, probabilities: np.ndarray, count: int) -> np.ndarray:
    """Return the indices of up to count misclassified samples, the most probable wrong prediction first."""
    predicted = probabilities.argmax(axis=1)
    mistakes = np.flatnonzero(predicted != labels)
    order = np.argsort(-probabilities[mistakes, predicted[mistakes]], kind="stable")
    return mistakes[order][:count]


def _grid(n: int, max_columns: int) -> tuple[int, int]:
    """Return (columns, rows) of the smallest grid with at most max_columns columns that holds n panels."""
    columns = min(n, max_columns)
    return columns, math.ceil(n / columns)


def _hide_axis(axes) -> None:
    """Show an image panel without ticks or frame."""
    # Emptying the ticks, not only turning the axis off, spares matplotlib laying them out: 40% faster grids.
    axes.set_xticks([])
    axes.set_yticks([])
    axes.set_axis_off()


def _new_figure(width: float, height: float):
    """Return an empty figure of that size in inches, laid out so that titles, labels and colour bars never overlap."""
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


def _message_figure(title: str, message: str):
    """Return a figure of one empty, titled panel saying why there is nothing to draw."""
    figure = _new_figure(6.0, 3.5)
    axes = figure.add_subplot()
    axes.set_xticks([])
    axes.set_yticks([])
    axes.set_title(title)
    axes.text(0.5, 0.5, message, ha="center", va="center", fontsize=11, wrap=True, transform=axes.transAxes)
    return figure


def _plot_series(axes, history: list[dict], key: str, **style) -> None:
    """Draw key against epoch for the epochs that recorded it; nothing if none did."""
    points = [(epoch["epoch"], epoch[key]) for epoch in history if key in epoch]
    if points:
        epochs, values = zip(*points)
        axes.plot(epochs, values, marker="o", markersize=4, **style)


def _label_metric_axes(axes, metric: str) -> None:
    """Label a per-epoch panel of metric: axis names, whole epochs, accuracy in percent, grid and legend."""
    from matplotlib.ticker import MaxNLocator, PercentFormatter

    axes.set_xlabel("epoch")
    axes.set_ylabel(metric)
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    if metric == "accuracy":
        axes.yaxis.set_major_formatter(PercentFormatter(1.0))
    axes.grid(alpha=0.3)
    axes.legend()


def _save(figure, path) -> Path:
    """Return path, after writing the figure there as a PNG cropped to its contents."""
    path = Path(path)
    try:
        figure.savefig(path, dpi=DPI, bbox_inches="tight")
    except OSError as e:
        raise SoftmaxError(f"cannot write the figure {path}: {e.strerror or e}") from None
    return path
