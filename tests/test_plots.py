"""Figures: every one is a real, non-blank PNG, for MNIST-like and other shapes, and from the command line."""

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
from test_cli import run

HISTORY = [{"epoch": e, "loss": 1 / e, "accuracy": 1 - 0.1 / e, "seconds": 0.1 * e} for e in range(1, 5)]
HISTORY_WITH_VALIDATION = [{**epoch, "val_loss": 1.2 / epoch["epoch"], "val_accuracy": 0.97} for epoch in HISTORY]


def png_pixels(path) -> np.ndarray:
    """Return the RGB pixels of the PNG at path, after checking it is a readable, sizeable, non-blank PNG."""
    with Image.open(path) as image:
        assert image.format == "PNG"
        assert image.width > 300 and image.height > 250, image.size
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


def test_confusion_matrix(tmp_path):
    matrix = [[50, 2, 0], [3, 40, 7], [0, 1, 60]]
    path = plots.plot_confusion_matrix(matrix, ["T-shirt/top", "Trouser", "Ankle boot"], tmp_path / "cm.png")
    assert path == tmp_path / "cm.png"
    png_pixels(path)


def test_weight_templates_of_8x8_images_in_red_and_blue(tmp_path):
    W = np.zeros((64, 3), np.float32)
    W[:, 0], W[:, 1] = 2.0, -2.0  # one class all for ink, one all against, one indifferent
    pixels = png_pixels(plots.plot_weight_templates(W, (8, 8), ["up", "down", "flat"], tmp_path / "w.png"))
    # Symmetric limits put +2 and -2 at the two ends of the colour map: a whole panel of each.
    for end in (0.0, 1.0):
        colour = np.array(colormaps["RdBu_r"](end)[:3]) * 255
        assert (np.abs(pixels - colour).max(axis=-1) < 8).sum() > 100 * 100


@pytest.mark.parametrize("history", [HISTORY, HISTORY_WITH_VALIDATION])
def test_learning_curves(tmp_path, history):
    png_pixels(plots.plot_learning_curves(history, tmp_path / "curves.png"))


def test_learning_curves_without_history_say_so(tmp_path):
    png_pixels(plots.plot_learning_curves([], tmp_path / "curves.png"))


def test_loss_comparison(tmp_path):
    histories = {"cross-entropy": HISTORY_WITH_VALIDATION, "mse": HISTORY}
    png_pixels(plots.plot_loss_comparison(histories, tmp_path / "compare.png"))


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


def three_class_model() -> SavedModel:
    metadata = {"class_names": ["a", "b", "c"], "image_shape": [8, 8], "history": HISTORY_WITH_VALIDATION}
    return SavedModel(np.random.default_rng(1).normal(size=(64, 3)).astype(np.float32), np.zeros(3), metadata)


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
    model = tmp_path / "model.npz"
    model.write_text("")
    code, _, err = run(capsys, "evaluate", "--model", model, "--plots", model)
    assert code == 2 and "--plots" in err and "is a file" in err


@pytest.mark.slow
def test_evaluate_writes_figures(capsys, tmp_path, mnist_path):
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
