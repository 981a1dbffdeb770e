"""Figures: every one is a real, non-blank PNG that draws the data it is given, for MNIST-like and other shapes.

The figures are written at a low resolution (LOW_DPI) so the suite stays fast; what they draw is read back from
the matplotlib figure (the `drawn` fixture): line data, image arrays, colour limits and titles.
"""

import json
import subprocess
import sys

import numpy as np
import pytest
from matplotlib import colormaps
from PIL import Image

from softmax_cli import plots
from softmax_cli.errors import SoftmaxError
from softmax_cli.store import SavedModel

HISTORY = [{"epoch": e, "loss": 1 / e, "accuracy": 1 - 0.1 / e, "seconds": 0.1 * e} for e in range(1, 5)]
HISTORY_WITH_VALIDATION = [{**epoch, "val_loss": 1.2 / epoch["epoch"], "val_accuracy": 0.97} for epoch in HISTORY]
LOW_DPI = 30  # plots.DPI is 110; the figures' content and layout do not depend on it


@pytest.fixture(autouse=True)
def low_resolution(monkeypatch):
    monkeypatch.setattr(plots, "DPI", LOW_DPI)


@pytest.fixture
def drawn(monkeypatch):
    """Return the list that every figure a plot function saves is appended to (it is still written)."""
    figures, save = [], plots._save
    monkeypatch.setattr(plots, "_save", lambda figure, path: figures.append(figure) or save(figure, path))
    return figures


def png_pixels(path) -> np.ndarray:
    """Return the RGB pixels of the PNG at path, after checking it is a readable, sizeable, non-blank PNG."""
    with Image.open(path) as image:
        assert image.format == "PNG"
        assert image.width > 300 * LOW_DPI / 110 and image.height > 250 * LOW_DPI / 110, image.size
        pixels = np.asarray(image.convert("RGB"))
    assert pixels.std() > 10
    assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 20
    return pixels


def three_class_test_set(n_mistakes: int):
    """Return (pixels, labels, probabilities) of 30 random 8x8 images, the first n_mistakes misclassified."""
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, size=(30, 8, 8), dtype=np.uint8)
    labels = np.arange(30) % 3
    predicted = np.where(np.arange(30) < n_mistakes, (labels + 1) % 3, labels)
    probabilities = np.full((30, 3), 0.1)
    probabilities[np.arange(30), predicted] = 0.8
    return pixels, labels, probabilities


def test_importing_plots_does_not_import_matplotlib():
    code = "import sys, softmax_cli.plots; assert 'matplotlib' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_confusion_matrix(tmp_path, drawn):
    matrix = [[50, 2, 0], [3, 40, 7], [0, 1, 60]]
    path = plots.plot_confusion_matrix(matrix, ["T-shirt/top", "Trouser", "Ankle boot"], tmp_path / "cm.png")
    assert path == tmp_path / "cm.png"
    png_pixels(path)
    axes = drawn[0].axes[0]
    assert axes.images[0].get_array().tolist() == matrix  # rows: the true class
    assert [text.get_text() for text in axes.texts] == [str(count) for row in matrix for count in row]
    assert axes.get_title() == "Confusion matrix: accuracy 92.02% on 163 test images"
    assert [label.get_text() for label in axes.get_yticklabels()] == ["T-shirt/top", "Trouser", "Ankle boot"]


def drawn_templates(figure) -> list:
    """Return the figure's weight-template images, in panel order."""
    return [image for axes in figure.axes for image in axes.images]


def test_weight_templates_of_8x8_images_in_red_and_blue(tmp_path, drawn):
    W = np.zeros((64, 3), np.float32)
    W[:, 0], W[:, 1] = 2.0, -2.0  # one class all for ink, one all against, one indifferent
    W[9, 2] = 0.5                 # and the indifferent one with a single pixel, which must land in row 1, column 1
    pixels = png_pixels(plots.plot_weight_templates(W, (8, 8), ["up", "down", "flat"], tmp_path / "w.png"))
    images = drawn_templates(drawn[0])
    assert len(images) == 3 and titles(drawn[0]) == ["up", "down", "flat"]
    for k, image in enumerate(images):
        np.testing.assert_array_equal(image.get_array(), W[:, k].reshape(8, 8))
        assert image.get_cmap().name == "RdBu_r"
        assert (image.norm.vmin, image.norm.vmax) == (-2.0, 2.0)  # symmetric: zero is white
    # Symmetric limits put +2 and -2 at the two ends of the colour map: a whole panel of each.
    for end in (0.0, 1.0):
        colour = np.array(colormaps["RdBu_r"](end)[:3]) * 255
        assert (np.abs(pixels - colour).max(axis=-1) < 8).sum() > 100 * 100 * (LOW_DPI / 110) ** 2


def curves(axes) -> dict[str, tuple[list, list]]:
    """Return each line of a panel by its legend label, as (x data, y data)."""
    return {line.get_label(): (list(line.get_xdata()), list(line.get_ydata())) for line in axes.lines}


@pytest.mark.parametrize("history", [HISTORY, HISTORY_WITH_VALIDATION])
def test_learning_curves(tmp_path, history, drawn):
    png_pixels(plots.plot_learning_curves(history, tmp_path / "curves.png"))
    loss, accuracy = drawn[0].axes
    assert (loss.get_title(), accuracy.get_title()) == ("Loss per epoch", "Accuracy per epoch")
    epochs = [1, 2, 3, 4]
    for axes, metric in [(loss, "loss"), (accuracy, "accuracy")]:
        wanted = {"training": (epochs, [epoch[metric] for epoch in history])}
        if "val_loss" in history[0]:
            wanted["validation"] = (epochs, [epoch[f"val_{metric}"] for epoch in history])
        assert curves(axes) == wanted
        assert [text.get_text() for text in axes.get_legend().get_texts()] == list(wanted)


def test_learning_curves_of_some_epochs_without_validation(tmp_path, drawn):
    history = [HISTORY[0], HISTORY_WITH_VALIDATION[1], HISTORY[2], HISTORY_WITH_VALIDATION[3]]
    plots.plot_learning_curves(history, tmp_path / "curves.png")
    assert curves(drawn[0].axes[0])["validation"] == ([2, 4], [0.6, 0.3])


def test_learning_curves_without_history_say_so(tmp_path):
    png_pixels(plots.plot_learning_curves([], tmp_path / "curves.png"))


def test_loss_comparison(tmp_path, drawn):
    histories = {"cross-entropy": HISTORY_WITH_VALIDATION, "mse": HISTORY}
    png_pixels(plots.plot_loss_comparison(histories, tmp_path / "compare.png"))
    (axes,) = drawn[0].axes
    accuracy = [epoch["accuracy"] for epoch in HISTORY]
    assert curves(axes) == {"cross-entropy (training)": ([1, 2, 3, 4], accuracy),
                            "cross-entropy (validation)": ([1, 2, 3, 4], [0.97] * 4),
                            "mse (training)": ([1, 2, 3, 4], accuracy)}
    training, validation, other = axes.lines
    assert training.get_color() == validation.get_color() != other.get_color()  # one colour per run
    assert (training.get_linestyle(), validation.get_linestyle()) == ("-", "--")


def test_loss_comparison_of_an_unknown_metric():
    with pytest.raises(SoftmaxError, match="'f1'.*loss, accuracy"):
        plots.plot_loss_comparison({"a": HISTORY}, "unused.png", metric="f1")


def test_most_confident_mistakes_come_first():
    labels = np.array([0, 1, 2, 0, 1])
    probabilities = np.array([[0.9, 0.1, 0], [0.3, 0.7, 0], [0.6, 0.4, 0], [0.1, 0.9, 0], [0.2, 0.1, 0.7]])
    assert plots.most_confident_mistakes(labels, probabilities, count=10).tolist() == [3, 4, 2]
    assert plots.most_confident_mistakes(labels, probabilities, count=2).tolist() == [3, 4]


@pytest.mark.parametrize("n_mistakes", [0, 3])  # a full grid: test_write_evaluation_figures_into_a_new_folder
def test_confident_mistakes_grid(tmp_path, n_mistakes):
    pixels, labels, probabilities = three_class_test_set(n_mistakes)
    png_pixels(plots.plot_confident_mistakes(pixels, labels, probabilities, ["a", "b", "c"], tmp_path / "m.png"))


def three_class_model(class_names=("a", "b", "c"), preprocess="none", seed=1) -> SavedModel:
    metadata = {"class_names": list(class_names), "image_shape": [8, 8], "history": HISTORY_WITH_VALIDATION,
                "preprocess": preprocess}
    return SavedModel(np.random.default_rng(seed).normal(size=(64, 3)).astype(np.float32), np.zeros(3), metadata)


def titles(figure) -> list[str]:
    return [axes.get_title() for axes in figure.axes if axes.get_title()]


def test_write_evaluation_figures_into_a_new_folder(tmp_path):
    out_dir = tmp_path / "new" / "figures"
    paths = plots.write_evaluation_figures(out_dir, three_class_model(), *three_class_test_set(30))
    assert [path.name for path in paths] == [f"{name}.png" for name in plots.FIGURE_NAMES]
    for path in paths:
        assert path.parent == out_dir
        png_pixels(path)


def test_figures_cannot_go_into_a_file(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(SoftmaxError, match="cannot create the figure folder"):
        plots.write_evaluation_figures(blocker / "figures", three_class_model(), *three_class_test_set(5))


def test_evaluate_plots_must_be_a_folder(capsys, tmp_path):
    from test_cli import run

    model = tmp_path / "model.npz"
    model.write_text("")
    code, _, err = run(capsys, "evaluate", "--model", model, "--plots", model)
    assert code == 2 and "--plots" in err and "is a file" in err


@pytest.mark.slow
def test_evaluate_writes_figures(capsys, tmp_path, mnist_path):
    from test_cli import run

    model = tmp_path / "model.npz"
    code, _, err = run(capsys, "train", "--epochs", "1", "--data", mnist_path, "--model", model, "--quiet")
    assert code == 0, err

    out_dir = tmp_path / "figures"
    code, out, err = run(capsys, "evaluate", "--model", model, "--data", mnist_path, "--plots", out_dir, "--json")
    assert code == 0, err
    figures = json.loads(out)["figures"]
    assert figures == [str(out_dir / f"{name}.png") for name in plots.FIGURE_NAMES]
    for figure in figures:
        png_pixels(figure)

    code, out, err = run(capsys, "evaluate", "--model", model, "--data", mnist_path, "--plots", out_dir)
    assert code == 0, err
    assert "confusion matrix" in out
    assert [line.removeprefix("figure written: ") for line in out.splitlines() if "figure written" in line] == figures


@pytest.mark.parametrize("p, text", [
    (0.99987, "0.99987"), (0.8, "0.80"), (0.95, "0.950"), (0.999, "0.9990"), (0.9999999, ">0.999999"),
    (0.0012, "0.0012"), (3.14e-7, "3.1e-07"), (0.5, "0.50"),
])
def test_probabilities_are_written_with_the_digits_that_tell_them_from_one(p, text):
    assert plots.probability_text(p) == text


def test_each_confident_mistake_shows_its_probability_and_the_runner_up(tmp_path, drawn):
    pixels, labels, _ = three_class_test_set(0)
    probabilities = np.eye(3)[labels] * 0.9 + 0.05  # every one right
    probabilities[0] = [0.00003, 0.99987, 0.0001]   # true a: predicted b, then c
    probabilities[1] = [0.7, 0.1, 0.2]              # true b: predicted a, then c
    png_pixels(plots.plot_confident_mistakes(pixels, labels, probabilities, ["a", "b", "c"], tmp_path / "m.png"))
    shown = titles(drawn[0])
    assert shown[:2] == ["true a\npredicted b (p=0.99987)\nnext c (p=0.0001)",
                         "true b\npredicted a (p=0.70)\nnext c (p=0.20)"]
    assert len(shown) == 2


def test_weight_templates_are_scaled_to_the_bulk_of_the_weights_not_a_few_border_pixels(tmp_path, drawn):
    W = np.zeros((64, 3), np.float32)
    W[18:22, 0] = W[26:30, 0] = 1.0    # each template a small block of ordinary weights
    W[34:38, 1] = W[42:46, 1] = -1.0
    W[0, 2] = 50.0                     # and one corner pixel far larger, as the border of MNIST gives
    assert plots.weight_limit(W) == pytest.approx(1.0)
    plots.plot_weight_templates(W, (8, 8), ["up", "down", "corner"], tmp_path / "w.png")
    # At full strength: scaled to 50, the blocks would be drawn in a pale pink and a pale blue.
    for image in drawn_templates(drawn[0]):
        assert (image.norm.vmin, image.norm.vmax) == (-1.0, 1.0)


@pytest.mark.parametrize("W, limit", [(np.zeros((4, 2)), 1.0), (np.full((4, 2), np.nan), 1.0),
                                      (np.array([[0.0, 0.0], [0.0, 3.0]]), 3.0)])
def test_weight_limit_of_degenerate_weights(W, limit):
    assert plots.weight_limit(W) == limit


MATH_NAMES = ["$\\foo$", "a$b$c", "$x^2$"]


def test_class_names_are_drawn_as_written_never_as_mathtext(tmp_path, drawn):
    from matplotlib import cbook

    model = three_class_model(MATH_NAMES)
    pixels, labels, probabilities = three_class_test_set(10)
    paths = plots.write_evaluation_figures(tmp_path, model, pixels, labels, probabilities)
    for path in paths:
        png_pixels(path)
    weight_titles = titles(drawn[1])
    assert weight_titles == [plots.literal(name) for name in MATH_NAMES]
    for title in weight_titles:
        assert not cbook.is_math_text(title)
        assert title.replace("\\$", "$") in MATH_NAMES  # what matplotlib draws for text that is not math
    png_pixels(plots.plot_loss_comparison({"$\\foo$": HISTORY}, tmp_path / "compare.png"))


@pytest.mark.parametrize("history", [
    [{"epoch": 1, "loss": 1e308, "accuracy": 0.1}, {"epoch": 2, "loss": 0.5, "accuracy": 0.9}],
    [{"epoch": 1, "loss": 1.7e308, "accuracy": 0.1}, {"epoch": 2, "loss": 1.7e308, "accuracy": 0.1}],
    [{"epoch": 1, "loss": 1e308, "val_loss": -1e308, "accuracy": 0.5}, {"epoch": 2, "loss": 0.0, "accuracy": 1}],
    [{"epoch": 1, "loss": "high", "accuracy": None}, {"epoch": 2, "loss": [1], "accuracy": {"a": 1}},
     {"loss": 0.3, "accuracy": 0.9}, {"epoch": 3, "loss": float("nan"), "accuracy": float("inf")},
     {"epoch": 4, "loss": 0.2, "accuracy": 0.95}],
    [{"epoch": 1, "loss": "high"}],
])
def test_learning_curves_of_huge_or_unusable_values_draw_without_error(tmp_path, history, recwarn):
    png_pixels(plots.plot_learning_curves(history, tmp_path / "curves.png"))
    assert not recwarn.list


def test_weight_templates_of_two_models_side_by_side(tmp_path, drawn):
    raw, deskewed = three_class_model(seed=1), three_class_model(preprocess="deskew", seed=2)
    path = plots.plot_weight_templates_compared(
        {"raw": (raw.W, (8, 8), raw.class_names), "deskew": (deskewed.W, (8, 8), deskewed.class_names)},
        tmp_path / "compared.png",
    )
    png_pixels(path)
    images = [axes for axes in drawn[0].axes if axes.images]
    assert len(images) == 6 and titles(drawn[0])[:3] == ["a", "b", "c"]
    labels = [axes.get_ylabel() for axes in drawn[0].axes if not axes.images]  # the two colour bars
    assert labels == ["raw", "deskew"]


def test_models_of_other_classes_are_not_compared(tmp_path):
    a, b = three_class_model(), three_class_model(["x", "y", "z"])
    with pytest.raises(SoftmaxError, match="cannot compare the weights of other: its classes are not"):
        plots.plot_weight_templates_compared(
            {"first": (a.W, (8, 8), a.class_names), "other": (b.W, (8, 8), b.class_names)}, tmp_path / "c.png")


def test_evaluation_figures_compare_with_other_models(tmp_path):
    paths = plots.write_evaluation_figures(tmp_path, three_class_model(preprocess="deskew"), *three_class_test_set(5),
                                           compare_with={"raw.npz": three_class_model(seed=3)})
    assert [path.name for path in paths] == [f"{name}.png" for name in
                                             (*plots.FIGURE_NAMES, plots.COMPARED_FIGURE_NAME)]
    png_pixels(paths[-1])


def test_a_two_feature_table_model_draws_its_decision_regions_with_the_test_points(tmp_path, drawn):
    W = np.array([[1.0, -1.0], [0.0, 0.0]], np.float32)  # class 0 where x > 0, class 1 where x < 0
    metadata = {"class_names": ["left", "right"], "image_shape": [1, 2], "history": HISTORY,
                "preprocess": "none", "feature_names": ["x", "y"]}
    model = SavedModel(W, np.zeros(2, np.float32), metadata)
    rows = np.array([[1.0, 0.0], [2.0, 1.0], [-1.0, 0.5], [-2.0, -1.0]], np.float32)
    labels = np.array([0, 0, 1, 0])  # the last one on the wrong side
    probabilities = np.array([[0.9, 0.1], [0.9, 0.1], [0.1, 0.9], [0.1, 0.9]])
    paths = plots.write_evaluation_figures(tmp_path, model, rows, labels, probabilities)
    assert [path.name for path in paths] == ["confusion_matrix.png", "learning_curves.png", "decision_regions.png"]
    png_pixels(paths[-1])
    axes = drawn[-1].axes[0]
    regions = np.asarray(axes.images[0].get_array())
    left, right, bottom, top = axes.images[0].get_extent()
    assert (left, right) == pytest.approx((-2.4, 2.4)) and (bottom, top) == pytest.approx((-1.2, 1.2))
    columns = np.linspace(left, right, plots.REGION_STEPS)
    np.testing.assert_array_equal(regions[0], np.where(columns > 0, 0, 1))  # the boundary where x crosses 0
    np.testing.assert_array_equal(regions[0], regions[-1])
    dots = {collection.get_label(): collection.get_offsets() for collection in axes.collections}
    np.testing.assert_array_equal(dots["left"], rows[labels == 0])
    np.testing.assert_array_equal(dots["right"], rows[labels == 1])
    assert "the 4 test points (accuracy 75.0%)" in axes.get_title()


def test_a_table_model_of_more_features_draws_no_regions_and_no_images(tmp_path):
    metadata = {"class_names": ["a", "b"], "image_shape": [1, 3], "history": HISTORY, "preprocess": "none",
                "feature_names": ["p", "q", "r"]}
    model = SavedModel(np.ones((3, 2), np.float32), np.zeros(2, np.float32), metadata)
    rows, labels = np.zeros((4, 3), np.float32), np.array([0, 1, 0, 1])
    paths = plots.write_evaluation_figures(tmp_path, model, rows, labels, np.full((4, 2), 0.5))
    assert [path.name for path in paths] == ["confusion_matrix.png", "learning_curves.png"]
