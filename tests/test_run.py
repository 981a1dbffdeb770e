"""The training run as a whole (run.py): what `softmax train`, the estimator, bench/ and the fixtures all call."""

import json

import numpy as np
import pytest

from softmax_cli import model, run, store
from softmax_cli.config import TrainConfig
from softmax_cli.data import load_dataset
from softmax_cli.errors import SoftmaxError
from softmax_cli.metrics import loss_and_accuracy


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A tiny data set (4x4 images, 3 classes) in a Keras-format .npz."""
    folder = tmp_path_factory.mktemp("tiny")
    labels = np.arange(90) % 3
    pixels = (labels[:, None, None] * 80 + np.random.default_rng(0).integers(0, 40, (90, 4, 4))).astype(np.uint8)
    path = folder / "tiny.npz"
    np.savez(path, x_train=pixels[:60], y_train=labels[:60], x_test=pixels[60:], y_test=labels[60:])
    return load_dataset(path, name=None)


def test_a_run_saves_a_model_the_schema_accepts_and_says_what_it_did(tmp_path, tiny):
    config = TrainConfig(epochs=3, batch_size=10)
    result = run.train_model(tiny, config, tmp_path / "m.npz")
    saved = store.load_model(tmp_path / "m.npz")
    assert saved.metadata["settings"] == config.to_dict()
    assert saved.metadata["training_data"] == tiny.fingerprint()
    assert saved.preprocess == "none" and saved.dataset == tiny.name
    assert result.test_accuracy == pytest.approx(
        loss_and_accuracy(saved.W, saved.b, model.features(tiny.x_test), tiny.y_test)[1])
    summary = result.summary()
    json.dumps(summary, allow_nan=False)
    assert summary["epochs"] == 3 and summary["best_epoch"] is None and not result.interrupted


def test_an_interrupted_run_leaves_a_checkpoint_and_resuming_gives_the_same_weights(tmp_path, tiny):
    config = TrainConfig(epochs=4, batch_size=10)
    run.train_model(tiny, config, tmp_path / "straight.npz")
    stopped = run.train_model(tiny, config, tmp_path / "m.npz", should_stop=lambda: True)
    assert stopped.interrupted and not (tmp_path / "m.npz").exists()
    resumed = run.read_checkpoint(stopped.checkpoint_path)
    run.train_model(tiny, resumed.config, tmp_path / "m.npz", resumed=resumed)
    np.testing.assert_array_equal(store.load_model(tmp_path / "m.npz").W, store.load_model(tmp_path / "straight.npz").W)
    assert not stopped.checkpoint_path.exists()  # the finished run's checkpoint is gone


def test_resuming_on_other_data_is_refused(tmp_path, tiny, tmp_path_factory):
    stopped = run.train_model(tiny, TrainConfig(epochs=4, batch_size=10), tmp_path / "m.npz", should_stop=lambda: True)
    other = tmp_path / "other.npz"
    np.savez(other, x_train=255 - tiny.x_train, y_train=tiny.y_train, x_test=tiny.x_test, y_test=tiny.y_test)
    with pytest.raises(SoftmaxError, match="other data"):
        run.train_model(load_dataset(other, name=None), TrainConfig(epochs=4, batch_size=10), tmp_path / "m.npz",
                        resumed=run.read_checkpoint(stopped.checkpoint_path))


@pytest.mark.parametrize("case", ["model is the checkpoint", "model is the data", "model is a text file",
                                  "model is the history", "folder is missing", "model is the config"])
def test_no_destination_is_a_file_the_user_would_lose(tmp_path, tiny, case):
    """Each case is refused before training starts, and the file that was there is unchanged."""
    data = tmp_path / "data.npz"
    data.write_bytes(b"data")
    notes = tmp_path / "notes.txt"
    notes.write_text("my notes")
    config_file = tmp_path / "c.toml"
    config_file.write_text("lr = 0.1\n")
    model_path, history, reads, resumed_from = tmp_path / "m.npz", None, [data, config_file], None
    if case == "model is the checkpoint":
        stopped = run.train_model(tiny, TrainConfig(epochs=2, batch_size=10), tmp_path / "c.npz",
                                  should_stop=lambda: True)
        model_path = resumed_from = stopped.checkpoint_path
    elif case == "model is the data":
        model_path = data
    elif case == "model is a text file":
        model_path = notes
    elif case == "model is the history":
        model_path = history = tmp_path / "h.json"
    elif case == "folder is missing":
        model_path = tmp_path / "missing" / "m.npz"
    elif case == "model is the config":
        model_path = config_file
    before = model_path.read_bytes() if model_path.exists() else None
    with pytest.raises(SoftmaxError) as refused:
        run.check_destinations(model_path, history, reads, resumed_from)
    assert "\n" not in str(refused.value)
    assert (model_path.read_bytes() if model_path.exists() else None) == before


def test_an_existing_model_is_replaced_by_a_model(tmp_path, tiny):
    run.train_model(tiny, TrainConfig(epochs=1, batch_size=10), tmp_path / "m.npz")
    run.train_model(tiny, TrainConfig(epochs=2, batch_size=10), tmp_path / "m.npz", history_path=tmp_path / "h.csv")
    assert store.load_model(tmp_path / "m.npz").metadata["settings"]["epochs"] == 2
    run.train_model(tiny, TrainConfig(epochs=1, batch_size=10), tmp_path / "m.npz", history_path=tmp_path / "h.csv")
    assert (tmp_path / "h.csv").read_text().startswith("epoch,")


@pytest.mark.slow
def test_early_stopping_keeps_the_best_epoch_and_ends_no_worse_than_the_defaults(mnist, mnist_model, tmp_path):
    """The README's example (--val-split 0.1 --patience 3 --epochs 50) once ended at 90.97 %, below the defaults."""
    defaults = loss_and_accuracy(mnist_model.W, mnist_model.b, model.features(mnist.x_test), mnist.y_test)[1]
    result = run.train_model(mnist, TrainConfig(val_split=0.1, patience=3, epochs=50), tmp_path / "m.npz")
    assert result.fit.stopped_early and result.fit.best_epoch is not None
    kept = result.fit.history[result.fit.best_epoch - 1]
    assert kept["val_loss"] == min(stats["val_loss"] for stats in result.fit.history)
    assert result.test_accuracy >= defaults - 0.003
    assert store.load_model(tmp_path / "m.npz").metadata["best_epoch"] == result.fit.best_epoch
