"""The data sets through the CLI: scikit-learn's digits, Fashion-MNIST from its four files, and a user's own images
of another size and number of classes, each trained, evaluated and predicted on; --version and the env variables."""

import json

import numpy as np
import pytest
from PIL import Image

from softmax_cli.data import load_dataset
from softmax_cli.images import to_mnist
from test_cli import run
from test_cli_predict import SHAPES, drawing, save_drawing


def train(capsys, *args):
    """Run `softmax train ARGS --json`; return its summary."""
    code, out, err = run(capsys, "train", *args, "--json")
    assert code == 0, err
    return json.loads(out)


def evaluate(capsys, *args):
    """Run `softmax evaluate ARGS --json`; return its report."""
    code, out, err = run(capsys, "evaluate", *args, "--json")
    assert code == 0, err
    return json.loads(out)


def save_shapes_npz(path, side=12, per_class=40):
    """Write a Keras-format .npz of noisy side x side drawings of SHAPES, with their class names."""
    rng = np.random.default_rng(0)
    clean = np.stack([to_mnist(drawing(shape), (side, side)).reshape(side, side) for shape in SHAPES])
    labels = np.tile(np.arange(len(SHAPES)), per_class)
    pixels = np.clip(clean[labels] + rng.normal(0, 0.2, (len(labels), side, side)), 0, 1)
    pixels = np.rint(pixels * 255).astype(np.uint8)
    half = len(labels) // 2
    np.savez(path, x_train=pixels[:half], y_train=labels[:half], x_test=pixels[half:], y_test=labels[half:],
             class_names=np.array(SHAPES))
    return path


def write_idx(path, array: np.ndarray):
    """Write a uint8 array as an uncompressed IDX file (magic 0x08 0x0N, then each dimension, big-endian)."""
    header = bytes([0, 0, 8, array.ndim]) + b"".join(n.to_bytes(4, "big") for n in array.shape)
    path.write_bytes(header + array.astype(np.uint8).tobytes())


@pytest.fixture
def shapes_npz(tmp_path):
    return save_shapes_npz(tmp_path / "shapes.npz")


def test_digits_train_evaluate_and_predict(capsys, tmp_path, shapes_npz, monkeypatch):
    monkeypatch.setenv("SOFTMAX_DATA", str(shapes_npz))  # a local copy of some data set never stands for digits
    model = tmp_path / "digits.npz"
    summary = train(capsys, "--dataset", "digits", "--model", model)
    assert summary["dataset"] == "digits" and summary["test_accuracy"] > 0.9

    report = evaluate(capsys, "--model", model)  # the data set the model was trained on
    assert report["n_test"] == 450 and report["accuracy"] == pytest.approx(summary["test_accuracy"])
    assert set(report["per_class"]) == {str(digit) for digit in range(10)}

    digits = load_dataset(name="digits")
    paths = []
    for i in range(3):
        paths.append(tmp_path / f"digit{i}.png")
        Image.fromarray(digits.x_test[i]).save(paths[-1])
    code, out, err = run(capsys, "predict", "--model", model, "--top-k", "2", *paths)
    assert code == 0, err
    header, *rows = out.splitlines()
    assert header.split()[:2] == ["path", "class"] and len(rows) == 3
    for row in rows:
        assert row.split()[1] in {str(digit) for digit in range(10)} and row.count("%") == 2


def test_evaluate_on_another_data_set_than_the_models_is_one_line(capsys, tmp_path, shapes_npz):
    model = tmp_path / "digits.npz"
    train(capsys, "--dataset", "digits", "--model", model)
    code, _, err = run(capsys, "evaluate", "--model", model, "--data", shapes_npz)
    assert code == 1 and err.count("\n") == 1
    assert "the model expects 8x8 images and 10 classes" in err and "12x12 images and 3 classes" in err


def test_a_data_set_of_another_size_and_classes(capsys, tmp_path, shapes_npz):
    model = tmp_path / "shapes-model.npz"
    summary = train(capsys, "--data", shapes_npz, "--model", model, "--epochs", "20")
    assert summary["dataset"] == "shapes" and summary["test_accuracy"] > 0.9

    code, out, err = run(capsys, "evaluate", "--model", model, "--data", shapes_npz)
    assert code == 0, err
    assert "on 60 images" in out and all(shape in out for shape in SHAPES)

    drawings = [save_drawing(shape, tmp_path / f"{shape.replace(' ', '-')}.png", side=60) for shape in SHAPES]
    seen = tmp_path / "seen"
    code, out, err = run(capsys, "predict", "--model", model, "--json", "--save-preprocessed", seen, *drawings)
    assert code == 0, err
    assert [json.loads(line)["label"] for line in out.splitlines()] == list(SHAPES)
    assert {Image.open(path).size for path in seen.iterdir()} == {(12, 12)}  # the model's size, not the file's


def test_an_idx_folder_of_another_size_and_classes(capsys, tmp_path):
    """Four classes of 10x6 images: each class lights up its own band of columns (1.5 columns wide)."""
    rng = np.random.default_rng(1)
    folder = tmp_path / "bands"
    folder.mkdir()
    for images, labels, count in (("train-images-idx3-ubyte", "train-labels-idx1-ubyte", 200),
                                  ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte", 40)):
        y = rng.integers(0, 4, count)
        x = rng.integers(0, 60, (count, 10, 6))
        x[np.arange(count)[:, None], :, (np.array([[0, 1], [1, 3], [3, 4], [4, 5]])[y])] = 255
        write_idx(folder / images, x)
        write_idx(folder / labels, y)
    model = tmp_path / "bands.npz"
    summary = train(capsys, "--data", folder, "--model", model)
    assert summary["test_accuracy"] == 1.0

    report = evaluate(capsys, "--model", model, "--data", folder)
    assert report["n_test"] == 40 and set(report["per_class"]) == {"0", "1", "2", "3"}
    seen = tmp_path / "seen"
    code, out, err = run(capsys, "predict", "--model", model, "--save-preprocessed", seen,
                         save_drawing("vertical bar", tmp_path / "bar.png"))
    assert code == 0, err
    assert out.splitlines()[1].split()[1] in {"0", "1", "2", "3"}
    assert Image.open(seen / "bar.png").size == (6, 10)  # width x height


def test_version(capsys):
    code, out, _ = run(capsys, "--version")
    assert code == 0 and out == "softmax, version 0.1.0\n"


def test_softmax_data_names_the_data_set(capsys, tmp_path, shapes_npz, monkeypatch):
    monkeypatch.setenv("SOFTMAX_DATA", str(shapes_npz))
    model = tmp_path / "model.npz"
    summary = train(capsys, "--model", model, "--epochs", "20")
    assert summary["dataset"] == "shapes"
    assert evaluate(capsys, "--model", model)["n_test"] == 60


def test_softmax_model_names_the_model_file(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("SOFTMAX_MODEL", str(tmp_path / "from-env.npz"))
    monkeypatch.delenv("SOFTMAX_DATA", raising=False)  # CI's is relative to the repository, left by chdir
    monkeypatch.chdir(tmp_path)
    summary = train(capsys, "--dataset", "digits")
    assert summary["model"] == str(tmp_path / "from-env.npz") and not (tmp_path / "model.npz").exists()
    assert evaluate(capsys)["accuracy"] == pytest.approx(summary["test_accuracy"])


@pytest.mark.slow
def test_fashion_mnist_from_its_four_files(capsys, tmp_path, fashion_path):
    model = tmp_path / "fashion.npz"
    summary = train(capsys, "--dataset", "fashion_mnist", "--data", fashion_path, "--epochs", "1", "--model", model)
    assert summary["test_accuracy"] > 0.8

    code, out, err = run(capsys, "evaluate", "--model", model, "--data", fashion_path)
    assert code == 0, err
    assert "Ankle boot" in out and "T-shirt/top" in out

    fashion = load_dataset(fashion_path)
    boot = tmp_path / "boot.png"
    Image.fromarray(fashion.x_test[0]).save(boot)  # the first test image is an ankle boot
    # --top-k 10 lists every class: predict fits the item into MNIST's 20x20 box, which often changes its class
    code, out, err = run(capsys, "predict", "--model", model, "--top-k", "10", boot)
    assert code == 0, err
    assert all(name in out for name in fashion.class_names)
