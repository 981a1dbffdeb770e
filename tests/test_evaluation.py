"""evaluation.py: which data a model is evaluated on, the check that it fits, and its scores."""

import json

import numpy as np
import pytest
from sklearn.metrics import classification_report

from softmax_cli import evaluation
from softmax_cli.config import TrainConfig
from softmax_cli.data import load_dataset
from softmax_cli.errors import SoftmaxError
from softmax_cli.model import features, predict_proba
from softmax_cli.run import train_model
from softmax_cli.store import load_model
from test_cli import run


def write_set(path, test_classes=(0, 1, 2), side=4):
    """Write a tiny, easy data set of 3 classes (a class is a brightness) whose test set holds test_classes only."""
    rng = np.random.default_rng(0)
    labels = np.arange(90) % 3
    test_labels = np.resize(np.array(test_classes), 12)
    pixels = lambda y: (y[:, None, None] * 100 + rng.integers(0, 30, (len(y), side, side))).astype(np.uint8)  # noqa
    np.savez(path, x_train=pixels(labels), y_train=labels, x_test=pixels(test_labels), y_test=test_labels)
    return path


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A model trained on the tiny set, and the path of a test set that holds classes 0 and 1 only."""
    folder = tmp_path_factory.mktemp("evaluation")
    train_model(load_dataset(write_set(folder / "tiny.npz"), name=None), TrainConfig(epochs=20, batch_size=10),
                folder / "model.npz")
    return folder / "model.npz", write_set(folder / "two.npz", test_classes=(0, 1))


def test_scores_are_the_models_on_the_test_set(trained):
    model_path, data = trained
    saved, dataset = load_model(model_path), load_dataset(data, name=None)
    scores = evaluation.evaluate(saved, dataset)
    expected = predict_proba(saved.W, saved.b, features(dataset.x_test))
    assert np.array_equal(scores.probabilities, expected)
    assert scores.accuracy == (expected.argmax(axis=1) == dataset.y_test).mean() == 1.0
    assert scores.confusion_matrix == [[6, 0, 0], [0, 6, 0], [0, 0, 0]]
    assert scores.per_class["2"]["support"] == 0  # every class is listed, the absent one with no support


def test_the_macro_average_is_over_the_classes_present_as_scikit_learns_report(trained):
    model_path, data = trained
    dataset = load_dataset(data, name=None)
    scores = evaluation.evaluate(load_model(model_path), dataset)
    predicted = scores.probabilities.argmax(axis=1)
    sklearn = classification_report(dataset.y_test, predicted, output_dict=True, zero_division=0)["macro avg"]
    assert scores.macro_avg == {"precision": sklearn["precision"], "recall": sklearn["recall"],
                                "f1": sklearn["f1-score"]} == {"precision": 1.0, "recall": 1.0, "f1": 1.0}
    assert "macro avg     1.0000    1.0000    1.0000" in scores.report  # not 0.6667: class 2 is not in the test set


def test_data_the_model_was_not_made_for_is_refused(trained, tmp_path):
    model_path, _ = trained
    bigger = load_dataset(write_set(tmp_path / "bigger.npz", side=5), name=None)
    with pytest.raises(SoftmaxError, match="the model takes 4x4-pixel images"):
        evaluation.evaluate(load_model(model_path), bigger)


def test_which_data_set_a_model_is_evaluated_on(trained):
    saved = load_model(trained[0])  # trained on its own data, "tiny"
    assert evaluation.dataset_to_evaluate_on(saved, "digits", files=False) == "digits"
    assert evaluation.dataset_to_evaluate_on(saved, None, files=True) is None  # files named: read as they are
    assert evaluation.dataset_to_evaluate_on(saved, None, files=False, local_copy=True) is None
    with pytest.raises(SoftmaxError) as error:
        evaluation.dataset_to_evaluate_on(saved, None, files=False)
    assert error.value.in_terms_of(lambda setting: "--" + setting) == (
        "the model was trained on its own data (tiny): set --data to that data's files")
    mnist_model = type(saved)(saved.W, saved.b, {**saved.metadata, "dataset": "mnist"})
    assert evaluation.dataset_to_evaluate_on(mnist_model, None, files=False) == "mnist"


def test_the_command_prints_and_writes_what_the_library_returns(capsys, trained):
    model_path, data = trained
    code, out, err = run(capsys, "evaluate", "--model", model_path, "--data", data)
    assert code == 0, err
    scores = evaluation.evaluate(load_model(model_path), load_dataset(data, name=None))
    assert out.startswith(f"test accuracy 100.00% on 12 images ({model_path})\n\n{scores.report}")
    code, out, _ = run(capsys, "evaluate", "--model", model_path, "--data", data, "--json")
    assert json.loads(out) == {"model": str(model_path), **scores.to_dict(), "figures": []}


def test_a_model_of_its_own_data_without_data_is_one_line_naming_the_flag(capsys, trained, monkeypatch, tmp_path):
    monkeypatch.delenv("SOFTMAX_DATA", raising=False)
    model_path = tmp_path / "model.npz"
    train_model(load_dataset(write_set(tmp_path / "tiny.npz"), name=None), TrainConfig(epochs=2, batch_size=10),
                model_path)
    (tmp_path / "tiny.npz").unlink()  # the data the model remembers is gone
    code, _, err = run(capsys, "evaluate", "--model", model_path)
    assert (code, err) == (1, "softmax: error: the model was trained on its own data (tiny): set --data to that "
                              "data's files\n")


def test_a_model_is_evaluated_on_the_local_data_it_was_trained_on_while_that_data_is_unchanged(
        capsys, monkeypatch, tmp_path):
    monkeypatch.delenv("SOFTMAX_DATA", raising=False)
    monkeypatch.chdir(tmp_path)
    write_set(tmp_path / "tiny.npz")
    code, _, err = run(capsys, "train", "--data", "tiny.npz", "--epochs", "2", "--batch-size", "10", "-q")
    assert code == 0, err
    saved = load_model(tmp_path / "model.npz")
    assert saved.metadata["data_path"] == str(tmp_path / "tiny.npz")  # absolute: found again from any folder
    monkeypatch.chdir(tmp_path.parent)
    code, out, err = run(capsys, "evaluate", "--model", tmp_path / "model.npz", "--json")
    assert code == 0, err
    assert json.loads(out)["n_test"] == 12
    write_set(tmp_path / "tiny.npz", side=5)  # other data at the same path: not the model's, so not used
    assert evaluation.remembered_data(saved) is None
    code, _, err = run(capsys, "evaluate", "--model", tmp_path / "model.npz")
    assert code == 1 and "set --data to that data's files" in err
