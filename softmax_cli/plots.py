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
COMPARED_FIGURE_NAME = "weight_templates_compared"  # written when other models are given to compare with
WEIGHT_PERCENTILE = 99   # the weight colour scale ends at this percentile of |W|: a few border pixels do not set it
LINEAR_LIMIT = 1e6       # a curve with values beyond this (a diverged loss) is drawn on a symmetric log scale


def write_evaluation_figures(out_dir, model, pixels: np.ndarray, labels: np.ndarray, probabilities: np.ndarray,
                             compare_with: dict | None = None) -> list[Path]:
    """Return the paths of the PNG figures written to out_dir (created if missing) for a model and its test set.

    model is a `store.SavedModel`; pixels are uint8 test images (n, height, width) with their labels,
    and probabilities (n, classes) are the model's for them. compare_with names other SavedModels of the same
    classes (a raw model beside a deskewed one): their weight templates are drawn in rows under this model's,
    in a fifth figure, COMPARED_FIGURE_NAME.
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
    features = model.metadata.get("feature_names")
    if features is not None:  # a table's model: no images to draw; its decision regions when it has two features
        written = [plot_confusion_matrix(matrix, model.class_names, paths["confusion_matrix"]),
                   plot_learning_curves(model.metadata["history"], paths["learning_curves"])]
        if len(features) == 2:
            written.append(plot_decision_regions(model.W, model.b, pixels, labels, model.class_names, features,
                                                 out_dir / f"{DECISION_REGIONS}.png"))
        return written
    written = [
        plot_confusion_matrix(matrix, model.class_names, paths["confusion_matrix"]),
        plot_weight_templates(model.W, model.image_shape, model.class_names, paths["weight_templates"]),
        plot_learning_curves(model.metadata["history"], paths["learning_curves"]),
        plot_confident_mistakes(pixels, labels, probabilities, model.class_names, paths["confident_mistakes"]),
    ]
    if compare_with:
        models = {f"this model (preprocess {model.preprocess})": model, **compare_with}
        templates = {name: (other.W, other.image_shape, other.class_names) for name, other in models.items()}
        written.append(plot_weight_templates_compared(templates, out_dir / f"{COMPARED_FIGURE_NAME}.png"))
    return written


DECISION_REGIONS = "decision_regions"  # drawn instead of the images' figures for a model of two features
REGION_STEPS = 300  # the decision regions are the model's class at REGION_STEPS x REGION_STEPS points


def plot_decision_regions(W: np.ndarray, b: np.ndarray, rows: np.ndarray, labels: np.ndarray, class_names,
                          feature_names, path) -> Path:
    """Return path, after writing a PNG of a 2-feature model's class over the plane, with the test rows on it.

    The regions span the rows' range and a tenth more each side; each row is a dot of its true class's colour.
    """
    from matplotlib import colormaps

    from .model import logits

    rows = np.asarray(rows, np.float64).reshape(len(rows), 2)
    low, high = rows.min(axis=0), rows.max(axis=0)
    margin = np.where(high > low, (high - low) / 10, 1.0)
    low, high = low - margin, high + margin
    xs, ys = (np.linspace(low[i], high[i], REGION_STEPS) for i in range(2))
    grid = np.stack(np.meshgrid(xs, ys), axis=-1).reshape(-1, 2).astype(np.float32)
    regions = logits(W, b, grid).argmax(axis=1).reshape(REGION_STEPS, REGION_STEPS)
    n_classes = len(class_names)
    colours = colormaps["tab10" if n_classes <= 10 else "tab20"].resampled(max(n_classes, 2))
    figure = _new_figure(6.5, 5.5)
    axes = figure.add_subplot()
    axes.imshow(regions, origin="lower", extent=(low[0], high[0], low[1], high[1]), aspect="auto",
                cmap=colours, vmin=-0.5, vmax=max(n_classes, 2) - 0.5, alpha=0.35, interpolation="nearest")
    for label, name in enumerate(class_names):
        mine = labels == label
        if mine.any():
            axes.scatter(rows[mine, 0], rows[mine, 1], s=12, color=colours(label), edgecolors="black",
                         linewidths=0.3, label=literal(name))
    axes.set_xlabel(literal(feature_names[0]))
    axes.set_ylabel(literal(feature_names[1]))
    accuracy = float((logits(W, b, rows.astype(np.float32)).argmax(axis=1) == labels).mean())
    axes.set_title(f"Decision regions and the {len(rows)} test points (accuracy {accuracy:.1%})")
    axes.legend(title="true class", fontsize=8, loc="best")
    return _save(figure, path)


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
    names = [literal(name) for name in class_names]
    axes.set_xticks(ticks, names, rotation=45 if long_names else 0, ha="right" if long_names else "center")
    axes.set_yticks(ticks, names)
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
    image = _draw_templates(grid.flat, W, image_shape, class_names)
    for axes in grid.flat:
        _hide_axis(axes)
    _weight_colour_bar(figure, image, grid)
    figure.suptitle("What each class looks for: a bright pixel where red raises its score, where blue lowers it")
    return _save(figure, path)


def plot_weight_templates_compared(models: dict, path) -> Path:
    """Return path, after writing a PNG of several models' weight templates, one row per model, one column per class.

    models maps a name (the row's label) to (W, image_shape, class_names); every model must have the same
    classes. Each row has its own colour scale, so a model with smaller weights still shows its shapes.
    """
    if not models:
        raise SoftmaxError("no models to compare: give at least one")
    class_names = list(next(iter(models.values()))[2])
    for name, (_, _, names) in models.items():
        if list(names) != class_names:
            raise SoftmaxError(f"cannot compare the weights of {name}: its classes are not those of the first model")
    figure = _new_figure(1.6 * len(class_names) + 1.4, 1.9 * len(models) + 0.8)
    grid = figure.subplots(len(models), len(class_names), squeeze=False)
    for row, (name, (W, image_shape, _)) in zip(grid, models.items()):
        image = _draw_templates(row, W, image_shape, class_names)
        for axes in row:
            _hide_axis(axes)
        _weight_colour_bar(figure, image, row, label=literal(name))
    figure.suptitle("Weight templates compared (red raises a class's score, blue lowers it)")
    return _save(figure, path)


def weight_limit(W: np.ndarray) -> float:
    """Return the end of the symmetric colour scale for weights W: the WEIGHT_PERCENTILE-th percentile of |W|.

    The largest weights are often a few pixels at the border that almost no image inks; scaled to those, the
    digits' shapes would all be near white.
    """
    magnitudes = np.abs(np.asarray(W, np.float64))
    magnitudes = magnitudes[np.isfinite(magnitudes)]
    limit = float(np.percentile(magnitudes, WEIGHT_PERCENTILE, method="higher")) if magnitudes.size else 0.0
    return limit or float(magnitudes.max(initial=0.0)) or 1.0


def _draw_templates(panels, W: np.ndarray, image_shape, class_names):
    """Draw each class's column of W as an image in its panel, on one symmetric scale; return the last image."""
    # Limits symmetric about 0, so white means "no effect" in every panel and colours compare across panels.
    limit = weight_limit(W)
    for axes, name, weights in zip(panels, class_names, np.asarray(W).T):
        image = axes.imshow(weights.reshape(image_shape), cmap="RdBu_r", vmin=-limit, vmax=limit)
        axes.set_title(literal(name))
    return image


def _weight_colour_bar(figure, image, panels, label: str = "weight on pixel intensity (0 to 1)") -> None:
    """Add the colour bar of a row or grid of weight templates; its pointed ends say that larger weights are clipped."""
    figure.colorbar(image, ax=panels, shrink=0.8, extend="both", label=label)


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
    names = [literal(name) for name in histories]
    for i, (name, history) in enumerate(zip(names, histories.values())):
        color = f"C{i % 10}"  # matplotlib's default cycle, fixed per run so its two lines match
        _plot_series(axes, history, metric, label=f"{name} (training)", color=color)
        _plot_series(axes, history, f"val_{metric}", label=f"{name} (validation)", color=color, linestyle="--")
    _label_metric_axes(axes, metric)
    axes.set_title(f"{metric.capitalize()} per epoch: {' vs '.join(names)}")
    return _save(figure, path)


def plot_confident_mistakes(pixels: np.ndarray, labels: np.ndarray, probabilities: np.ndarray, class_names,
                            path, count: int = 16) -> Path:
    """Return path, after writing a PNG of the count test images misclassified with the highest probability.

    pixels are uint8 images (n, height, width); probabilities (n, classes) are the model's for them.
    """
    predicted = probabilities.argmax(axis=1)
    confidence = probabilities.max(axis=1)  # of the predicted class
    n_mistakes = int((predicted != labels).sum())
    if n_mistakes == 0:
        return _save(_message_figure(
            "Most confident mistakes", f"No mistakes: all {len(labels)} test images are classified correctly"
        ), path)
    shown = most_confident_mistakes(labels, probabilities, count)
    columns, rows = _grid(len(shown), max_columns=4)
    figure = _new_figure(2.3 * columns + 0.4, 2.5 * rows + 0.8)
    names = [literal(name) for name in class_names]
    for axes, index in zip(figure.subplots(rows, columns, squeeze=False).flat, shown):
        runner_up = np.argsort(probabilities[index], kind="stable")[-2]
        axes.imshow(pixels[index], cmap="gray", vmin=0, vmax=255)
        axes.set_title(f"true {names[labels[index]]}\npredicted {names[predicted[index]]} "
                       f"(p={probability_text(confidence[index])})\nnext {names[runner_up]} "
                       f"(p={probability_text(probabilities[index, runner_up])})", fontsize=9)
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


def probability_text(p: float) -> str:
    """Return a probability written with the digits that tell it from 1 and from 0: 0.99987, 0.950, 0.80, 3.1e-07.

    Two significant digits of its distance from 1 (or of itself, below 0.01).

    A confident mistake is often 0.9999-something; written with two decimals every one would read 1.00.
    """
    p = float(p)
    if p < 0.01:
        return f"{p:.2g}"
    gap = 1.0 - p
    if gap < 1e-6:
        return ">0.999999"
    decimals = max(2, 1 - math.floor(math.log10(gap)))
    return f"{p:.{decimals}f}"


def literal(text: str) -> str:
    """Return text that matplotlib draws as written: every "$" escaped, so a class name is never read as mathtext."""
    return str(text).replace("$", r"\$")


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
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(figure)  # Agg, whatever MPLBACKEND says: files only, never a window
    return figure


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
    """Draw key against epoch for the epochs that recorded it as a finite number; nothing if none did.

    A curve that reaches beyond LINEAR_LIMIT (a diverged loss, up to 1e308) turns its panel's y axis to a
    symmetric log scale: linear axes cannot place ticks across such a range.
    """
    points = [(epoch.get("epoch"), epoch[key]) for epoch in history if key in epoch]
    points = [(x, y) for x, y in points if _is_finite_number(x) and _is_finite_number(y)]
    if points:
        epochs, values = zip(*points)
        axes.plot(epochs, values, marker="o", markersize=4, **style)
        if max(map(abs, values)) > LINEAR_LIMIT:
            axes.set_yscale("symlog", linthresh=1.0)


def _is_finite_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _label_metric_axes(axes, metric: str) -> None:
    """Label a per-epoch panel of metric: axis names, whole epochs, accuracy in percent, grid and legend."""
    from matplotlib.ticker import MaxNLocator, PercentFormatter

    axes.set_xlabel("epoch")
    axes.set_ylabel(metric)
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    if metric == "accuracy":
        axes.yaxis.set_major_formatter(PercentFormatter(1.0))
    axes.grid(alpha=0.3)
    if axes.lines:  # a history whose values are all unusable draws no curve, and an empty legend would warn
        axes.legend()


def _save(figure, path) -> Path:
    """Return path, after writing the figure there as a PNG cropped to its contents."""
    path = Path(path)
    try:
        with np.errstate(all="ignore"):  # a symmetric log axis up to 1e308 overflows in its tick arithmetic
            figure.savefig(path, dpi=DPI, bbox_inches="tight")
    except OSError as e:
        raise SoftmaxError(f"cannot write the figure {path}: {e.strerror or e}") from None
    return path
