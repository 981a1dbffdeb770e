import json

import numpy as np
import pytest
from PIL import Image

from softmax_cli import model
from softmax_cli.errors import SoftmaxError
from softmax_cli.images import NoDigit, load_image
from softmax_cli.metrics import entropy_bits
from softmax_cli.predict import Prediction, predict_image
from softmax_cli.preprocess import deskew
from softmax_cli.store import load_model, save_model


def mnist_metadata(mnist, **changes) -> dict:
    """Return the metadata of a model file for a model trained on MNIST with the default settings."""
    return {
        "settings": {"lr": 0.5, "epochs": 10, "batch_size": 100},
        "class_names": list(mnist.class_names),
        "image_shape": list(mnist.image_shape),
        "dataset": "mnist",
        "framing": "mnist",
        "preprocess": "none",
        "training_data": None,
        "test_accuracy": 0.92,
        "test_loss": 0.28,
        "train_seconds": 1.0,
        "stopped_early": False,
        "best_epoch": None,
        "history": [{"epoch": 1, "loss": 0.3, "accuracy": 0.92}],
        **changes,
    }


@pytest.fixture(scope="session")
def mnist_model_file(tmp_path_factory, mnist, mnist_model):
    """The path of a model file holding the MNIST model of conftest (the tests of serve use it too)."""
    path = tmp_path_factory.mktemp("model") / "model.npz"
    save_model(path, mnist_model.W, mnist_model.b, mnist_metadata(mnist))
    return path


@pytest.fixture(scope="session")
def saved(mnist_model_file):
    return load_model(mnist_model_file)


def digit_file(folder, digit: np.ndarray, name: str = "digit.png"):
    """Write an MNIST digit (uint8, white on black) as a PNG of dark ink on white paper; return its path."""
    path = folder / name
    Image.fromarray(255 - digit).resize((112, 112), Image.Resampling.BILINEAR).save(path)
    return path


def test_as_json_is_what_predict_json_printed(tmp_path, mnist, saved):
    path = digit_file(tmp_path, mnist.x_test[0])
    prediction = predict_image(saved, path, top_k=3)
    # What `softmax predict --json` computed for one image before predict.py existed:
    pixels = load_image(path, saved.image_shape, convention=saved.framing)
    probabilities = model.predict_proba(saved.W, saved.b, pixels[None])[0]
    ranked = (-probabilities).argsort(kind="stable")[:3]
    expected = {
        "path": str(path),
        "label": saved.class_names[ranked[0]],
        "probability": float(probabilities[ranked[0]]),
        "probabilities": probabilities.tolist(),
        "entropy_bits": float(entropy_bits(probabilities)),
        "top": [{"label": saved.class_names[k], "probability": float(probabilities[k])} for k in ranked],
    }
    assert prediction.as_json(path) == expected
    assert json.loads(json.dumps(prediction.as_json(path), allow_nan=False)) == expected
    assert prediction.label == str(mnist.y_test[0])


def test_the_input_is_the_framed_image_as_the_model_sees_it(tmp_path, mnist, saved):
    prediction = predict_image(saved, digit_file(tmp_path, mnist.x_test[1]))
    assert prediction.input.shape == prediction.framed.shape == (28, 28)
    assert prediction.input.dtype == np.float32 and 0 <= prediction.input.min() and prediction.input.max() == 1
    np.testing.assert_array_equal(prediction.input, prediction.framed)  # no preprocessing for this model
    logits = model.logits(saved.W, saved.b, prediction.input.reshape(1, -1))[0]
    assert prediction.ranked[0] == logits.argmax()


def test_bytes_give_the_prediction_of_the_file_holding_them(tmp_path, mnist, saved):
    path = digit_file(tmp_path, mnist.x_test[2])
    from_file, from_bytes = predict_image(saved, path), predict_image(saved, path.read_bytes())
    np.testing.assert_array_equal(from_file.probabilities, from_bytes.probabilities)
    np.testing.assert_array_equal(from_file.input, from_bytes.input)


def test_a_model_trained_on_deskewed_images_sees_the_image_deskewed(tmp_path, mnist, mnist_model):
    save_model(tmp_path / "deskew.npz", mnist_model.W, mnist_model.b, mnist_metadata(mnist, preprocess="deskew"))
    saved = load_model(tmp_path / "deskew.npz")
    slanted = np.zeros((112, 112), np.uint8)
    for row in range(10, 100):  # a stroke leaning right: deskewing makes it upright
        slanted[row, 70 - row // 2 : 80 - row // 2] = 255
    Image.fromarray(slanted).save(tmp_path / "slanted.png")
    prediction = predict_image(saved, tmp_path / "slanted.png")
    np.testing.assert_allclose(prediction.input, deskew(prediction.framed[None])[0], atol=1e-6)
    assert np.abs(prediction.input - prediction.framed).max() > 0.5
    expected = model.predict_proba(saved.W, saved.b, model.features(deskew(prediction.framed[None])))[0]
    np.testing.assert_allclose(prediction.probabilities, expected, rtol=1e-6)


def test_ranked_classes_are_the_likeliest_first_and_ties_keep_their_order():
    probabilities = np.array([0.1, 0.3, 0.3, 0.2, 0.1], np.float32)
    names = tuple("abcde")
    prediction = Prediction(names, np.zeros((2, 2)), np.zeros((2, 2)), probabilities,
                            (-probabilities).argsort(kind="stable")[:4])
    assert [entry["label"] for entry in prediction.as_json("x")["top"]] == ["b", "c", "d", "a"]
    assert prediction.label == "b" and prediction.probability == pytest.approx(0.3)


def test_an_image_with_no_digit_is_refused_not_predicted(tmp_path, saved):
    Image.new("L", (200, 100), 245).save(tmp_path / "page.png")
    with pytest.raises(NoDigit, match="page.png holds no digit"):
        predict_image(saved, tmp_path / "page.png")


def test_weights_so_large_that_the_probabilities_are_not_finite_are_an_error(tmp_path, mnist, saved):
    W = np.full_like(saved.W, 3e38)
    W[:, 1] = -3e38  # every class score overflows to +inf or -inf: softmax would give NaN
    save_model(tmp_path / "huge.npz", W, saved.b, mnist_metadata(mnist))
    path = digit_file(tmp_path, mnist.x_test[0])
    with pytest.raises(SoftmaxError, match=r"probabilities for .*digit\.png are not finite numbers") as error:
        predict_image(load_model(tmp_path / "huge.npz"), path)
    assert "\n" not in str(error.value)


def test_top_k_is_checked_by_the_one_rule_of_config(tmp_path, mnist, saved):
    for wrong in (0, 1001, 2.0, True):
        with pytest.raises(SoftmaxError, match="top_k must be a whole number at least 1 and at most 1000, got"):
            predict_image(saved, digit_file(tmp_path, mnist.x_test[0]), top_k=wrong)


@pytest.mark.slow
def test_mnist_test_digits_saved_as_images_are_predicted_as_the_model_predicts_their_pixels(tmp_path, mnist, saved):
    digits = mnist.x_test[:200]
    on_pixels = model.logits(saved.W, saved.b, model.features(digits)).argmax(axis=1)
    on_files = [int(predict_image(saved, digit_file(tmp_path, d, f"{i}.png")).label) for i, d in enumerate(digits)]
    assert (np.array(on_files) == on_pixels).mean() > 0.95


def test_a_row_of_digits_is_predicted_with_a_warning_that_it_is_no_single_digit(tmp_path, mnist, saved,
                                                                                mnist_model_file, capsys):
    from test_cli import run

    row = np.hstack([np.pad(digit, ((0, 0), (4, 4))) for digit in mnist.x_test[:3]])  # apart: three marks
    path = tmp_path / "row.png"
    Image.fromarray(255 - row).save(path)
    prediction = predict_image(saved, path)
    assert "3 marks side by side" in prediction.doubt
    assert prediction.as_json(path)["warning"] == prediction.doubt
    assert predict_image(saved, digit_file(tmp_path, mnist.x_test[0])).doubt is None
    code, out, err = run(capsys, "predict", path, "--model", mnist_model_file)  # (click 8.1's runner mixes stderr in)
    assert code == 0
    assert f"softmax: warning: {path}: 3 marks side by side" in err
