"""`softmax train --add`: a person's labelled examples (a folder of class-named subfolders, or a Keras-layout .npz)
framed as predict frames them, weighed, trained on, recorded in the model file, and every bad source refused.

The fast tests train on scikit-learn's bundled 8x8 digits (milliseconds); the slow one measures on real MNIST.
"""

import json

import numpy as np
import pytest
from PIL import Image

from softmax_cli import store
from softmax_cli.config import ADD_WEIGHT
from softmax_cli.data import load_dataset
from softmax_cli.data.examples import read_examples
from softmax_cli.errors import SoftmaxError
from softmax_cli.images import load_image
from softmax_cli.run import training_fingerprint
from softmax_cli.store import load_model
from test_cli import assert_one_line_error, run
from test_cli_train import signal_after_epoch

DIGITS = tuple("0123456789")


def photo(image8: np.ndarray) -> Image.Image:
    """Return an 8x8 digit of scikit-learn's (0..16, light ink) as a person's 64x64 photo: dark ink on white paper."""
    return Image.fromarray(np.kron(255 - image8 * (255 / 16), np.ones((8, 8))).astype(np.uint8))


def write_folder(folder, images, labels):
    """Write images (8x8, 0..16) as folder/<label>/<i>.png; return folder."""
    for i, (image, label) in enumerate(zip(images, labels)):
        (folder / str(label)).mkdir(parents=True, exist_ok=True)
        photo(image).save(folder / str(label) / f"{i}.png")
    return folder


@pytest.fixture(scope="module")
def sklearn_digits():
    from sklearn.datasets import load_digits

    return load_digits()


@pytest.fixture
def mine(tmp_path, sklearn_digits):
    """Twenty of the person's digits, two of each class, as PNG photos in class-named subfolders."""
    rows = np.concatenate([np.flatnonzero(sklearn_digits.target == k)[:2] for k in range(10)])
    return write_folder(tmp_path / "mine", sklearn_digits.images[rows], sklearn_digits.target[rows])


def train(capsys, tmp_path, *args, model="model.npz"):
    return run(capsys, "train", "--dataset", "digits", "--model", tmp_path / model, "--quiet", *args)


def test_examples_are_framed_as_predict_frames_the_same_files(mine):
    examples = read_examples([mine], DIGITS, (8, 8), "fill")
    files = sorted(mine.glob("*/*.png"), key=lambda p: (p.parent.name, p.name))
    assert len(examples) == 20 and examples.counts() == dict.fromkeys(DIGITS, 2)
    for pixels, label, file in zip(examples.pixels, examples.labels, files):
        assert DIGITS[label] == file.parent.name
        expected = np.rint(load_image(file, (8, 8), convention="fill") * 255).reshape(8, 8)
        assert np.array_equal(pixels, expected)
    assert examples.pixels.dtype == np.uint8 and examples.skipped == ()


def test_train_add_records_the_examples_and_info_shows_them(capsys, tmp_path, mine):
    code, out, err = train(capsys, tmp_path, "--add", mine, "--json")
    assert code == 0, err
    summary = json.loads(out)
    added = load_model(tmp_path / "model.npz").metadata["added"]
    fingerprint = read_examples([mine], DIGITS, (8, 8), "fill").fingerprint()
    assert added == {"count": dict.fromkeys(DIGITS, 2), "fingerprint": fingerprint, "weight": ADD_WEIGHT.default}
    assert summary["added"] == added
    code, out, _ = run(capsys, "info", tmp_path / "model.npz")
    assert code == 0
    assert "20 examples (0: 2, 1: 2" in out and "each weighing 200 training images" in out and fingerprint in out
    # evaluate keeps reporting the data set's own test set
    code, out, _ = run(capsys, "evaluate", "--model", tmp_path / "model.npz", "--dataset", "digits", "--json")
    assert code == 0 and json.loads(out)["n_test"] == len(load_dataset(name="digits").y_test)


def test_a_model_trained_without_add_records_none(capsys, tmp_path):
    assert train(capsys, tmp_path)[0] == 0
    assert load_model(tmp_path / "model.npz").metadata["added"] is None
    code, out, _ = run(capsys, "info", tmp_path / "model.npz")
    assert "examples added" not in out


def test_the_examples_weigh_as_add_weight_says(capsys, tmp_path, sklearn_digits):
    # Forty digits labelled as the next digit: the more each weighs, the more of them the model reads as labelled.
    rows = np.concatenate([np.flatnonzero(sklearn_digits.target == k)[:4] for k in range(10)])
    shifted = (sklearn_digits.target[rows] + 1) % 10
    folder = write_folder(tmp_path / "shifted", sklearn_digits.images[rows], shifted)
    examples = read_examples([folder], DIGITS, (8, 8), "fill")
    agreed = {}
    for weight in ("1", "1000"):
        assert train(capsys, tmp_path, "--add", folder, "--add-weight", weight, model=f"{weight}.npz")[0] == 0
        saved = load_model(tmp_path / f"{weight}.npz")
        predicted = (examples.pixels.reshape(40, -1) / 255 @ saved.W + saved.b).argmax(axis=1)
        agreed[weight] = np.mean(predicted == examples.labels)
        assert saved.metadata["added"]["weight"] == float(weight)
    assert agreed["1"] < 0.3 < 0.8 < agreed["1000"]


def test_an_npz_of_examples_is_read_and_may_be_given_with_a_folder(capsys, tmp_path, mine, sklearn_digits):
    x = np.rint(sklearn_digits.images[:30] * (255 / 16)).astype(np.uint8)
    y = sklearn_digits.target[:30]
    np.savez(tmp_path / "drawings.npz", x_train=x, y_train=y, x_test=x, y_test=y, class_names=np.array(DIGITS))
    code, _, err = train(capsys, tmp_path, "--add", tmp_path / "drawings.npz", "--add", mine)
    assert code == 0, err
    count = load_model(tmp_path / "model.npz").metadata["added"]["count"]
    assert count == {name: 2 + int(np.sum(y == k)) for k, name in enumerate(DIGITS)}


def test_an_image_that_cannot_be_used_is_named_and_the_others_are_used(capsys, tmp_path, mine):
    (mine / "3" / "notes.png").write_text("not an image")
    Image.new("L", (64, 64), 255).save(mine / "4" / "blank.png")
    code, _, err = train(capsys, tmp_path, "--add", mine)
    assert code == 0
    lines = err.strip().splitlines()
    assert len(lines) == 2 and all(line.startswith("softmax: left out: ") for line in lines)
    assert "notes.png" in err and "blank.png" in err and "holds no digit" in err
    assert load_model(tmp_path / "model.npz").metadata["added"]["count"]["3"] == 2


@pytest.mark.parametrize("make, phrases", [
    (lambda folder: (folder / "seven").mkdir(parents=True), ["seven", "not named after one of the model's classes"]),
    (lambda folder: folder.mkdir(), ["has no class subfolders"]),
    (lambda folder: (folder / "7").mkdir(parents=True), ["has no images in its class subfolders"]),
    (lambda folder: (folder / "7").mkdir(parents=True) or (folder / "7" / "a.png").write_text("x"),
     ["no example could be used", "a.png"]),
])
def test_a_bad_folder_is_refused_in_one_line(capsys, tmp_path, make, phrases):
    make(tmp_path / "mine")
    code, _, err = train(capsys, tmp_path, "--add", tmp_path / "mine")
    assert_one_line_error(code, err, *phrases)
    assert not (tmp_path / "model.npz").exists()


@pytest.mark.parametrize("arrays, phrases", [
    ({"x_train": np.zeros((2, 28, 28), np.uint8), "y_train": np.array([1, 2])},
     ["28x28-pixel images", "the model takes 8x8"]),
    ({"x_train": np.full((2, 8, 8), 9, np.uint8), "y_train": np.array([1, 12])}, ["label 12 is out of range"]),
    ({"x_train": np.full((2, 8, 8), 9, np.uint8), "y_train": np.array([1, -1])}, ["found -1"]),
    ({"x": np.zeros((2, 8, 8), np.uint8), "y": np.array([1, 2])}, ["not x_train and y_train"]),
    ({"x_train": np.zeros((2, 8, 8), np.uint8), "y_train": np.array([1])}, ["2 images", "1 labels"]),
    ({"x_train": np.zeros((2, 8, 8), np.uint8), "y_train": np.array([1, 2])}, ["image 0 of x_train holds no digit"]),
    ({"x_train": np.full((2, 8, 8), 9, np.uint8), "y_train": np.array([0, 1]), "class_names": np.array(["a", "b"])},
     ["classes (a, b) are not the model's"]),
])
def test_a_bad_npz_is_refused_in_one_line(capsys, tmp_path, arrays, phrases):
    if "x_train" in arrays:
        arrays["x_train"][:, 2:6, 3:5] = np.where(arrays["x_train"][:, 2:6, 3:5] == 9, 255, 0)  # some ink
    np.savez(tmp_path / "mine.npz", **arrays)
    code, _, err = train(capsys, tmp_path, "--add", tmp_path / "mine.npz")
    assert_one_line_error(code, err, *phrases)


def test_a_damaged_npz_and_a_missing_source_are_refused_in_one_line(capsys, tmp_path):
    (tmp_path / "mine.npz").write_bytes(b"PK\x03\x04 not really")
    assert_one_line_error(*train(capsys, tmp_path, "--add", tmp_path / "mine.npz")[::2], "mine.npz")
    assert_one_line_error(*train(capsys, tmp_path, "--add", tmp_path / "absent")[::2], "absent")


@pytest.mark.parametrize("weight", ["0", "-1", "nan", "x"])
def test_add_weight_must_be_a_positive_number(capsys, tmp_path, mine, weight):
    code, _, err = train(capsys, tmp_path, "--add", mine, "--add-weight", weight)
    assert code == 2 and "--add-weight" in err


def test_an_interrupted_run_resumes_with_the_same_examples_only(capsys, tmp_path, mine, sklearn_digits):
    uninterrupted = train(capsys, tmp_path, "--add", mine, model="whole.npz")
    with signal_after_epoch(2):
        assert train(capsys, tmp_path, "--add", mine)[0] == 130
    checkpoint = tmp_path / "model.ckpt.npz"
    for other in ([], ["--add", mine, "--add-weight", "100"]):
        code, _, err = train(capsys, tmp_path, "--resume", checkpoint, *other)
        assert_one_line_error(code, err, "was made on other data", "--data", "--add")
    code, _, err = train(capsys, tmp_path, "--resume", checkpoint, "--add", mine)
    assert code == 0 == uninterrupted[0], err
    assert load_model(tmp_path / "model.npz").W.tobytes() == load_model(tmp_path / "whole.npz").W.tobytes()


def test_a_run_resumes_only_on_the_same_examples(mine, tmp_path):
    dataset = load_dataset(name="digits")
    examples = read_examples([mine], DIGITS, (8, 8), "fill")
    assert training_fingerprint(dataset) == dataset.fingerprint()
    with_examples = training_fingerprint(dataset, examples, 200.0)
    assert with_examples not in (dataset.fingerprint(), training_fingerprint(dataset, examples, 100.0))
    assert with_examples == training_fingerprint(dataset, read_examples([mine], DIGITS, (8, 8), "fill"), 200.0)


@pytest.mark.parametrize("added", [
    {"count": {"0": 1}, "fingerprint": "ab", "weight": 0},
    {"count": {"0": -1}, "fingerprint": "ab", "weight": 1.0},
    {"count": {"0": 1}, "fingerprint": "ab"},
    {"count": [1], "fingerprint": "ab", "weight": 1.0},
    "50 digits",
])
def test_a_model_file_with_a_bad_added_field_is_refused(tmp_path, added):
    rng = np.random.default_rng(0)
    metadata = {"settings": {}, "class_names": ["0", "1"], "image_shape": [1, 2], "dataset": "tiny",
                "train_seconds": 0.1, "history": [], "added": added}
    with pytest.raises(SoftmaxError, match="added"):
        store.save_model(tmp_path / "m.npz", rng.normal(size=(2, 2)), np.zeros(2), metadata)


def test_an_example_is_trained_on_as_copies_that_share_its_weight(mine):
    from softmax_cli.data.examples import COPY_WEIGHT, training_rows

    examples = read_examples([mine], DIGITS, (8, 8), "fill")
    pixels, labels, weights = training_rows(examples, 200.0, 60_000)
    copies = int(200 / COPY_WEIGHT)
    assert len(pixels) == len(labels) == len(weights) == copies * 20
    assert np.array_equal(pixels[-20:], examples.pixels) and np.array_equal(labels[:20], examples.labels)
    assert np.allclose(weights, COPY_WEIGHT) and np.isclose(weights.sum(), 200.0 * 20)
    # no more copies of them all than the data set has images; a light example is one copy
    pixels, _, weights = training_rows(examples, 200.0, 100)
    assert len(pixels) == 100 and np.isclose(weights.sum(), 200.0 * 20)
    pixels, _, weights = training_rows(examples, 0.5, 60_000)
    assert len(pixels) == 20 and np.allclose(weights, 0.5)


def test_evaluate_scores_a_folder_of_class_named_subfolders_framed_as_predict_frames(capsys, tmp_path, mine):
    assert train(capsys, tmp_path)[0] == 0
    (mine / "5" / "notes.txt").write_text("not an image")
    code, out, err = run(capsys, "evaluate", "--model", tmp_path / "model.npz", "--data", mine, "--json")
    assert code == 0, err
    assert "notes.txt" in err and len(err.strip().splitlines()) == 1
    scores = json.loads(out)
    saved = load_model(tmp_path / "model.npz")
    files = sorted(mine.glob("*/*.png"))
    predicted = [np.argmax(load_image(f, (8, 8), convention="fill") @ saved.W + saved.b) for f in files]
    expected = np.mean([DIGITS[k] == f.parent.name for k, f in zip(predicted, files)])
    assert scores["n_test"] == 20 and scores["accuracy"] == pytest.approx(expected, abs=1 / 20 + 1e-9)
    (tmp_path / "other" / "seven").mkdir(parents=True)
    code, _, err = run(capsys, "evaluate", "--model", tmp_path / "model.npz", "--data", tmp_path / "other")
    assert_one_line_error(code, err, "seven", "not named after one of the model's classes")


@pytest.mark.slow
def test_five_examples_of_each_digit_teach_mnist_other_writers_handwriting(mnist, tmp_path, sklearn_digits):
    """bench/add.py's proxy, one draw: load_digits as 64x64 photos; 5 of each digit added, 200 others read."""
    from softmax_cli.config import TrainConfig
    from softmax_cli.model import features
    from softmax_cli.preprocess import preprocessed
    from softmax_cli.run import train_model

    rng = np.random.default_rng(1)
    chosen = [rng.permutation(np.flatnonzero(sklearn_digits.target == k))[:25] for k in range(10)]
    added = np.concatenate([rows[:5] for rows in chosen])
    others = np.concatenate([rows[5:] for rows in chosen])
    write_folder(tmp_path / "mine", sklearn_digits.images[added], sklearn_digits.target[added])
    write_folder(tmp_path / "others", sklearn_digits.images[others], sklearn_digits.target[others])
    config = TrainConfig(preprocess="deskew")
    examples = read_examples([tmp_path / "mine"], mnist.class_names, (28, 28), "mnist")
    others = read_examples([tmp_path / "others"], mnist.class_names, (28, 28), "mnist")
    read = {}
    for name, added in (("before", None), ("after", examples)):
        run_ = train_model(mnist, config, tmp_path / f"{name}.npz", added=added)
        rows = features(preprocessed(others.pixels, "deskew"))
        read[name] = np.mean((rows @ run_.fit.W + run_.fit.b).argmax(axis=1) == others.labels)
        read[f"mnist {name}"] = run_.test_accuracy
    assert read["after"] >= read["before"] + 0.05, read
    assert read["mnist after"] >= 0.94, read
