"""Grid search: the list options, the grid, the ranking, the config file it writes, and that it never sees test data."""

import json

import click
import numpy as np
import pytest

from softmax_cli import preprocess, run
from softmax_cli.config import TrainConfig, make_config
from softmax_cli.data import Dataset
from softmax_cli.errors import SoftmaxError
from softmax_cli.preprocess import deskew, preprocessed
from softmax_cli.tune import Trial, TuneResult, expand_grid, rank, search, write_best_config


def blobs(n: int, seed: int = 0):
    """Return (pixels (n, 8, 8) uint8, labels): 3 classes, each a bright band in its own rows, plus noise."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 3, n)
    pixels = rng.integers(0, 60, (n, 8, 8))
    for k in range(3):
        pixels[labels == k, 2 * k : 2 * k + 3] += 180
    return pixels.astype(np.uint8), labels


@pytest.fixture
def blob_data(tmp_path):
    """A small Keras-format .npz of blobs: 600 training and 150 test images."""
    x_train, y_train = blobs(600)
    x_test, y_test = blobs(150, seed=1)
    path = tmp_path / "blobs.npz"
    np.savez(path, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
    return path


@pytest.mark.parametrize(
    "setting, text, expected",
    [
        ("lr", "0.1,0.3,1", (0.1, 0.3, 1.0)),
        ("lr", " 0.3 , 1e-1 ", (0.3, 0.1)),
        ("lr", "0.3,0.3,1", (0.3, 1.0)),
        ("batch_size", "50,full", (50, "full")),
        ("l2", "0,1e-4", (0.0, 1e-4)),
    ],
)
def test_number_list_reads_comma_separated_values(setting, text, expected):
    from softmax_cli.cli.options import ListOf

    assert ListOf(setting).convert(text, None, None) == expected


@pytest.mark.parametrize(
    "option, value",
    [
        ("--lr", "0.1,x"),
        ("--lr", "0"),
        ("--lr", "-1,0.3"),
        ("--lr", ""),
        ("--lr", "0.1,,0.3"),
        ("--batch-size", "0"),
        ("--batch-size", "50,many"),
        ("--batch-size", "1.5"),
        ("--l2", "-1e-4"),
        ("--l2", "0,"),
    ],
)
def test_bad_lists_are_one_line_usage_errors(capsys, option, value):
    from test_cli import assert_one_line_error, run

    code, out, err = run(capsys, "tune", option, value)
    assert code == 2
    assert out == ""
    assert_one_line_error(code, err, option)


def test_an_out_file_in_a_missing_folder_is_refused_before_training(capsys, monkeypatch, tmp_path):
    from test_cli import assert_one_line_error, run

    monkeypatch.setattr("softmax_cli.data.load_dataset", lambda *args, **kwargs: pytest.fail("data loaded first"))
    code, out, err = run(capsys, "tune", "--out", tmp_path / "no" / "best.toml")
    assert code == 1 and out == ""
    assert_one_line_error(code, err, "best.toml", "does not exist")


def test_the_grid_is_every_combination_in_order_over_the_base_settings():
    base = TrainConfig(epochs=3, momentum=0.5, seed=7)
    grid = expand_grid(base, lr=(0.1, 1.0), batch_size=(50,), l2=(0.0, 1e-3))
    assert [(c.lr, c.batch_size, c.l2) for c in grid] == [(0.1, 50, 0.0), (0.1, 50, 1e-3), (1.0, 50, 0.0),
                                                          (1.0, 50, 1e-3)]
    assert all((c.epochs, c.momentum, c.seed) == (3, 0.5, 7) for c in grid)


def trial(lr, val_loss, val_accuracy, problem=None):
    return Trial(TrainConfig(lr=lr), val_loss, val_accuracy, 1.0, problem)


def test_ranking_is_by_validation_loss_then_accuracy_with_diverged_last():
    trials = [trial(0.1, 0.30, 0.95), trial(9.0, None, None, "diverged"), trial(0.2, 0.20, 0.90),
              trial(0.3, 0.20, 0.92), trial(8.0, None, None, "diverged")]
    assert [t.config.lr for t in rank(trials)] == [0.3, 0.2, 0.1, 9.0, 8.0]


def test_the_config_file_written_reads_back_as_the_best_settings(tmp_path):
    best = TrainConfig(lr=0.123456789, batch_size="full", l2=1e-05, loss="mse", schedule="cosine", epochs=3, seed=4)
    result = TuneResult([Trial(best, 0.25, 0.9312, 1.0), trial(0.3, 0.5, 0.8)], 50000, 10000, 1 / 6, 2.0)
    path = write_best_config(tmp_path / "best.toml", result, "mnist")
    assert make_config(path) == best
    text = path.read_text()
    assert "Validation accuracy 93.12%, validation loss 0.2500" in text
    assert "10,000 images held out of the mnist training set" in text and "test set was not used" in text
    assert [line for line in text.splitlines() if not line.startswith("#")] == [
        f"{name} = {value!r}" if not isinstance(value, str) else f'{name} = "{value}"'
        for name, value in best.to_dict().items()
    ]


def test_the_config_file_is_written_atomically_and_known_as_tune_s(tmp_path, monkeypatch):
    from softmax_cli import tune

    result = TuneResult([trial(0.3, 0.5, 0.8)], 10, 2, 0.2, 1.0)
    path = write_best_config(tmp_path / "best.toml", result, "mnist")
    assert tune.is_tune_file(path) and not tune.is_tune_file(tmp_path / "missing.toml")
    (tmp_path / "mine.toml").write_text("lr = 0.3\n")
    assert not tune.is_tune_file(tmp_path / "mine.toml")  # a settings file the user wrote is not replaced

    def full_disk(self, text, *args, **kwargs):
        raise OSError(28, "No space left on device")

    before = path.read_bytes()
    monkeypatch.setattr("pathlib.Path.write_text", full_disk)
    with pytest.raises(SoftmaxError, match="cannot write the best settings to .*No space left on device"):
        write_best_config(path, result, "digits")
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.toml", "mine.toml"]


def test_writing_to_a_missing_folder_is_a_one_line_error(tmp_path):
    result = TuneResult([trial(0.3, 0.5, 0.8)], 10, 2, 0.2, 1.0)
    with pytest.raises(SoftmaxError, match="cannot write the best settings"):
        write_best_config(tmp_path / "no" / "best.toml", result, "mnist")


def test_search_scores_every_setting_on_the_held_out_part():
    pixels, labels = blobs(400)
    result = search(TrainConfig(epochs=2), pixels, labels, 3, 0.25, lr=(0.1, 1.0), batch_size=(20, "full"), l2=(0.0,))
    assert (result.n_train, result.n_validation) == (300, 100)
    assert len(result.trials) == 4
    assert result.trials == rank(result.trials)
    assert result.best.val_accuracy == 1.0  # the bands are far apart


def test_diverging_settings_are_ranked_last_and_the_others_go_on():
    pixels, labels = blobs(200)
    # lr 1e5, the largest allowed, blows the loss up far above the untrained model's
    result = search(TrainConfig(epochs=2), pixels, labels, 3, 0.25, lr=(1e5, 0.3), batch_size=(20, "full"), l2=(0.0,))
    assert [(t.config.lr, t.config.batch_size) for t in result.trials[2:]] == [(1e5, 20), (1e5, "full")]
    assert all(t.config.lr == 0.3 and t.problem is None for t in result.trials[:2])
    for diverged in result.trials[2:]:
        assert "diverged" in diverged.problem and diverged.val_loss is None and diverged.val_accuracy is None


def test_when_every_setting_diverges_the_search_says_so():
    pixels, labels = blobs(200)
    with pytest.raises(SoftmaxError, match="^training diverged with every one of the 1 settings: try smaller lr values$"):
        search(TrainConfig(epochs=2), pixels, labels, 3, 0.25, lr=(1e5,), batch_size=(20,), l2=(0.0,))


def test_a_problem_that_is_not_divergence_stops_the_search_in_its_own_words(capsys, blob_data, monkeypatch):
    """Only divergence is a trial's own problem: a bad SOFTMAX_THREADS used to be reported as every setting
    diverging."""
    from test_cli import assert_one_line_error, run

    monkeypatch.setenv("SOFTMAX_THREADS", "0")
    code, _, err = run(capsys, "tune", "--data", blob_data, "--lr", "0.1", "--batch-size", "20", "--epochs", "1")
    assert_one_line_error(code, err, "SOFTMAX_THREADS must be a whole number at least 1, got '0'")


def test_a_split_that_leaves_no_validation_images_is_refused():
    pixels, labels = blobs(10)
    with pytest.raises(SoftmaxError, match="leaves 10 for training and 0 for validation"):
        search(TrainConfig(), pixels, labels, 3, 0.01, lr=(0.3,), batch_size=(5,), l2=(0.0,))


def test_tune_deskews_the_training_set_once_for_every_search_through_the_cache(monkeypatch):
    """`softmax tune --preprocess deskew` deskewed 60,000 images in every run: now the first run keeps a copy."""
    pixels, labels = blobs(200)
    monkeypatch.setattr(preprocess, "CACHED_FROM", 0)  # blobs are small: cache them as MNIST would be
    real, made = preprocess.deskew, []
    monkeypatch.setattr(preprocess, "deskew", lambda images: made.append(len(images)) or real(images))
    grid = {"lr": (0.5, 1.0), "batch_size": (20,), "l2": (0.0,)}
    first = search(TrainConfig(epochs=2, preprocess="deskew"), pixels, labels, 3, 0.25, **grid)
    second = search(TrainConfig(epochs=2, preprocess="deskew"), pixels, labels, 3, 0.25, **grid)
    assert made == [200]  # once for both searches and all their trials
    assert [t.val_loss for t in first.trials] == [t.val_loss for t in second.trials]


@pytest.mark.parametrize("base", [
    TrainConfig(epochs=2, seed=3),
    TrainConfig(epochs=2, preprocess="deskew"),
    TrainConfig(epochs=40, val_split=0.5, patience=1, schedule="constant", average=0.0),
])
def test_each_trial_is_the_run_softmax_train_makes_with_that_validation_split(base):
    """The same split, preprocessing and fit as train (run.learn); scored by the weights the run keeps."""
    pixels, labels = blobs(400)
    noise = np.random.default_rng(5).integers(0, 201, pixels.shape)
    pixels = np.clip(pixels // 3 + noise, 0, 255).astype(np.uint8)  # classes that overlap: val loss turns up
    assert not np.array_equal(deskew(pixels), pixels)
    result = search(base, pixels, labels, 3, 0.25, lr=(1.0,), batch_size=(20,), l2=(0.0,))
    trial_config = base.replace(val_split=0.25, lr=1.0, batch_size=20)
    _, fitted = run.learn(trial_config, preprocessed(pixels, base.preprocess), labels, 3)
    kept = fitted.history[fitted.best_epoch - 1] if fitted.best_epoch else fitted.history[-1]
    assert (result.best.val_loss, result.best.val_accuracy) == (kept["val_loss"], kept["val_accuracy"])
    assert result.best.config == base.replace(lr=1.0, batch_size=20)  # what the chosen settings train with
    if base.patience:
        assert fitted.best_epoch < fitted.epochs_run and kept["val_loss"] < fitted.history[-1]["val_loss"]


class Untouchable:
    """Stands in for the test set: any use of it fails the test."""

    def _used(self, *args, **kwargs):
        raise AssertionError("softmax tune used the test set")

    __getattr__ = __len__ = __iter__ = __getitem__ = __array__ = _used


def test_tune_never_touches_the_test_set(capsys, monkeypatch, tmp_path):
    from test_cli import run

    pixels, labels = blobs(300)
    dataset = Dataset("blobs", pixels, labels, Untouchable(), Untouchable(), ("0", "1", "2"), "memory")
    monkeypatch.setattr("softmax_cli.data.load_dataset", lambda path, name: dataset)
    monkeypatch.delenv("SOFTMAX_DATA", raising=False)  # no --data: the patched loader is the only source
    code, out, err = run(capsys, "tune", "--lr", "0.3", "--batch-size", "20", "--l2", "0", "--epochs", "2", "--json",
                         "--out", tmp_path / "best.toml")
    assert code == 0, err
    assert json.loads(out)["best_val_accuracy"] == 1.0


def test_tune_end_to_end_json_and_config(capsys, blob_data, tmp_path):
    from test_cli import run

    out_path = tmp_path / "best.toml"
    code, out, err = run(capsys, "tune", "--data", blob_data, "--lr", "0.1,1", "--batch-size", "20,full",
                         "--l2", "0,0.01", "--epochs", "3", "--val-split", "0.25", "--seed", "2", "--json",
                         "--out", out_path)
    assert code == 0, err
    summary = json.loads(out)
    assert summary["ranked_by"] == "val_loss"
    assert (summary["n_train"], summary["n_validation"]) == (450, 150)
    assert [t["rank"] for t in summary["trials"]] == list(range(1, 9))
    losses = [t["val_loss"] for t in summary["trials"]]
    assert losses == sorted(losses)
    assert {(t["lr"], t["batch_size"], t["l2"]) for t in summary["trials"]} == {
        (lr, b, l2) for lr in (0.1, 1.0) for b in (20, "full") for l2 in (0.0, 0.01)
    }
    best = summary["trials"][0]
    assert summary["best"] == {**TrainConfig(epochs=3, seed=2).to_dict(),
                               **{key: best[key] for key in ("lr", "batch_size", "l2")}}
    assert make_config(out_path).to_dict() == summary["best"]
    assert summary["best_val_loss"] == best["val_loss"] and summary["out"] == str(out_path)


def test_tune_prints_a_ranked_table_then_the_best(capsys, blob_data):
    from test_cli import run

    code, out, err = run(capsys, "tune", "--data", blob_data, "--lr", "0.1,1e5", "--batch-size", "full",
                         "--l2", "0", "--epochs", "2", "--quiet")
    assert code == 0, err
    assert out.splitlines() == [
        out.splitlines()[0],
        "save these settings for `softmax train --config FILE` with --out FILE",
    ]
    assert out.startswith("best, by validation loss: lr 0.1, batch size full, l2 0 (validation accuracy ")
    assert err == ""  # --quiet: no progress bar either

    code, out, err = run(capsys, "tune", "--data", blob_data, "--lr", "0.1,1e5", "--batch-size", "full",
                         "--l2", "0", "--epochs", "2")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].split() == ["rank", "lr", "batch", "size", "l2", "val", "accuracy", "val", "loss", "seconds"]
    assert lines[1].split()[:4] == ["1", "0.1", "full", "0"]
    assert lines[2].split()[:6] == ["2", "100000", "full", "0", "diverged", "-"]
    assert "2 settings in" in out and "scored on 100 held out of the blobs training set" in out


@pytest.mark.slow
def test_tune_defaults_on_2000_real_mnist_images(capsys, mnist, tmp_path):
    from test_cli import run

    small = tmp_path / "mnist-2000.npz"
    np.savez(small, x_train=mnist.x_train[:2000], y_train=mnist.y_train[:2000],
             x_test=mnist.x_test[:10], y_test=mnist.y_test[:10])
    code, out, err = run(capsys, "tune", "--data", small, "--json", "--quiet")
    assert code == 0, err
    summary = json.loads(out)
    assert len(summary["trials"]) == 27 and summary["n_validation"] == 333
    assert summary["best_val_accuracy"] > 0.85
    assert all(t["problem"] is None for t in summary["trials"])


def test_each_epoch_of_a_search_names_its_trial_and_settings():
    pixels, labels = blobs(200)
    seen = []
    search(TrainConfig(epochs=2), pixels, labels, 3, 0.2, [0.1, 0.3], [32], [0.0], on_epoch=seen.append)
    assert [(s["trial"], s["trials"], s["lr"], s["batch_size"], s["l2"], s["epoch"], s["epochs"]) for s in seen] == [
        (1, 2, 0.1, 32, 0.0, 1, 2), (1, 2, 0.1, 32, 0.0, 2, 2), (2, 2, 0.3, 32, 0.0, 1, 2), (2, 2, 0.3, 32, 0.0, 2, 2)]


def test_tune_progress_names_each_trial_and_leaves_no_trial_line_at_the_end(capsys, blob_data):
    from test_cli import run

    code, out, err = run(capsys, "tune", "--data", blob_data, "--lr", "0.1,1", "--batch-size", "20", "--l2", "0",
                         "--epochs", "2")
    assert code == 0
    lines = err.splitlines()
    assert [line.split(":")[0] for line in lines] == [
        "trial 1/2 (lr 0.1, batch size 20, l2 0) epoch 1/2", "trial 1/2 (lr 0.1, batch size 20, l2 0) epoch 2/2",
        "trial 2/2 (lr 1, batch size 20, l2 0) epoch 1/2", "trial 2/2 (lr 1, batch size 20, l2 0) epoch 2/2"]
    assert all("training accuracy" in line for line in lines)
