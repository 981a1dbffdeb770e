"""`softmax info`: what a model file holds, as text and as JSON; a bad file is one line."""

import json

import pytest

from softmax_cli.store import FORMAT_VERSION, save_model
from test_cli import assert_one_line_error, run
from test_store import metadata, weights

HISTORY = [
    {"epoch": 1, "loss": 0.9, "accuracy": 0.6, "val_loss": 0.8, "val_accuracy": 0.65},
    {"epoch": 2, "loss": 0.7, "accuracy": 0.7, "val_loss": 0.6, "val_accuracy": 0.7},
    {"epoch": 3, "loss": 0.6, "accuracy": 0.75, "val_loss": 0.65, "val_accuracy": 0.72},
]


def write_model(path, **changes):
    """Save the tiny test model (2x3 images, 3 classes) at path with metadata changed as given; return path."""
    W, b = weights()
    save_model(path, W, b, metadata(**changes))
    return path


@pytest.fixture
def model_path(tmp_path):
    return write_model(tmp_path / "model.npz", history=HISTORY)


def test_text_shows_every_fact(capsys, model_path):
    code, out, err = run(capsys, "info", model_path)
    assert code == 0 and err == ""
    assert out == f"""{model_path}
  format version        2
  softmax-cli version   0.1.0
  created               2024-01-02T03:04:05+00:00
  data set              tiny, from /home/me/tiny.npz
  image shape           2x3 (6 features)
  classes               3: cat, dog, bird
  framing               mnist
  preprocessing         none
  test accuracy         75.00%
  training seconds      0.50
  epochs run            3
  first epoch           loss 0.9000, training accuracy 60.00%, validation loss 0.8000, validation accuracy 65.00%
  last epoch            loss 0.6000, training accuracy 75.00%, validation loss 0.6500, validation accuracy 72.00%
  best validation loss  0.6000 (epoch 2)
  W, b                  (6, 3) float32, (3,) float32
  file size             {model_path.stat().st_size:,} bytes
  settings
    lr                  0.5
    epochs              2
    batch_size          100
"""


def test_text_without_history_or_test_accuracy(capsys, tmp_path):
    path = write_model(tmp_path / "model.npz", history=[], test_accuracy=None)
    code, out, _ = run(capsys, "info", path)
    assert code == 0
    assert "  test accuracy        not measured\n" in out
    assert "  epochs run           0\n" in out
    assert "epoch " not in out and "validation" not in out


def test_json_holds_the_whole_metadata_and_the_shapes(capsys, model_path):
    code, out, _ = run(capsys, "info", "--json", model_path)
    assert code == 0
    assert json.loads(out) == {
        "model": str(model_path),
        "file_bytes": model_path.stat().st_size,
        "W_shape": [6, 3],
        "b_shape": [3],
        "metadata": {**metadata(history=HISTORY), "kind": "model", "format_version": FORMAT_VERSION},
    }


def test_reads_model_npz_in_the_current_folder_by_default(capsys, model_path, monkeypatch):
    monkeypatch.delenv("SOFTMAX_MODEL", raising=False)
    monkeypatch.chdir(model_path.parent)
    code, out, _ = run(capsys, "info", "--json")
    assert code == 0 and json.loads(out)["model"] == "model.npz"


def test_reads_the_model_softmax_model_names(capsys, tmp_path, monkeypatch):
    path = write_model(tmp_path / "digits.npz")
    monkeypatch.setenv("SOFTMAX_MODEL", str(path))
    code, out, _ = run(capsys, "info", "--json")
    assert code == 0 and json.loads(out)["model"] == str(path)


def test_a_file_that_is_not_a_model_is_the_loaders_one_line(capsys, tmp_path):
    fake = tmp_path / "model.npz"
    fake.write_text("not a model")
    code, out, err = run(capsys, "info", fake)
    assert code == 1 and out == ""
    assert_one_line_error(code, err, f"{fake} is not a valid softmax-cli model file")


def test_a_missing_file_says_to_train_one_with_advice_that_works(capsys, tmp_path):
    missing = tmp_path / "missing.npz"
    code, _, err = run(capsys, "info", missing)
    assert (code, err) == (1, f"softmax: error: softmax-cli model file {missing} does not exist: train one with "
                              f"`softmax train --model {missing}`\n")  # store's wording, the one: no "pass --model"
