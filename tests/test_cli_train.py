"""`softmax train` end to end: interrupted and resumed runs, divergence, determinism, the history file, early stopping.

Most tests train on scikit-learn's bundled 8x8 digits, which takes milliseconds, and stop training by making the
process send itself a real signal at the end of a chosen epoch. The slow tests start `softmax train` on the full
MNIST set as a separate process and press its Ctrl-C (or send SIGTERM) from outside, as a user or a scheduler would.
"""

import contextlib
import copy
import csv
import functools
import json
import operator
import os
import re
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from softmax_cli import cli
from softmax_cli.cli.progress import Progress
from softmax_cli.config import TrainConfig
from softmax_cli.data import load_dataset
from softmax_cli.store import load_checkpoint, load_model, save_model
from test_cli import assert_one_line_error, run
from test_store import FUZZ, hostile_files

REPO = Path(__file__).resolve().parent.parent
SIGNALS = [signal.SIGINT, signal.SIGTERM]


def train(capsys, model, *args):
    """Run `softmax train` quietly on the bundled digits in this process; return (exit code, stdout, stderr)."""
    return run(capsys, "train", "--dataset", "digits", "--model", model, "--quiet", *args)


def interrupted_message(model, checkpoint, epoch: int, epochs: int) -> str:
    return (
        f"softmax: interrupted after epoch {epoch} of {epochs}; {model} was not written. "
        f"To continue, run the same command with --resume {checkpoint}"
    )


def assert_same_weights(model, other):
    first, second = load_model(model), load_model(other)
    assert np.array_equal(first.W, second.W) and np.array_equal(first.b, second.b)
    assert first.W.tobytes() == second.W.tobytes() and first.b.tobytes() == second.b.tobytes()


def an_older_model(path, image_shape=(8, 8)) -> bytes:
    """Write a valid model file at path, as an earlier run would have left it there; return its bytes."""
    metadata = {"settings": {}, "class_names": list("0123456789"), "image_shape": list(image_shape),
                "dataset": "earlier", "test_accuracy": 0.5, "train_seconds": 1.0, "history": []}
    save_model(path, np.ones((image_shape[0] * image_shape[1], 10)), np.zeros(10), metadata)
    return path.read_bytes()


@contextlib.contextmanager
def signal_after_epoch(epoch: int | None, signum=signal.SIGINT, times: int = 1):
    """While active, `softmax train` sends itself the signal, once or more, as it reports the epoch (None: any)."""
    report = Progress.__call__

    def report_then_signal(bar, stats):
        report(bar, stats)
        for _ in range(times if epoch in (None, stats["epoch"]) else 0):
            os.kill(os.getpid(), signum)  # a real signal: Python runs the handler before os.kill returns

    Progress.__call__ = report_then_signal
    try:
        yield
    finally:
        Progress.__call__ = report


# --- Ctrl-C and SIGTERM, then --resume ------------------------------------------------------------------------


@pytest.mark.parametrize("signum", SIGNALS, ids=lambda signum: signum.name)
def test_a_signal_saves_a_checkpoint_and_resuming_gives_the_uninterrupted_weights(capsys, tmp_path, signum):
    settings = ("--epochs", "6", "--seed", "3")
    assert train(capsys, tmp_path / "straight.npz", *settings)[0] == 0
    model, checkpoint = tmp_path / "model.npz", tmp_path / "model.ckpt.npz"
    before = an_older_model(model)

    with signal_after_epoch(2, signum):
        code, out, err = train(capsys, model, *settings)
    assert (code, out) == (130, "")
    assert err.splitlines() == [interrupted_message(model, checkpoint, 2, 6)]
    assert model.read_bytes() == before
    assert load_checkpoint(checkpoint).epoch == 2

    code, _, err = train(capsys, model, *settings, "--resume", checkpoint)
    assert code == 0, err
    assert_same_weights(model, tmp_path / "straight.npz")
    assert not checkpoint.exists()  # the run it held is finished and saved


def test_a_run_interrupted_twice_resumes_from_its_checkpoint_each_time(capsys, tmp_path):
    settings = ("--epochs", "7", "--val-split", "0.1", "--l2", "0.001")
    assert train(capsys, tmp_path / "straight.npz", *settings)[0] == 0
    model, checkpoint = tmp_path / "model.npz", tmp_path / "model.ckpt.npz"

    with signal_after_epoch(2):
        assert train(capsys, model, *settings)[0] == 130
    with signal_after_epoch(5):
        code, _, err = train(capsys, model, "--resume", checkpoint)  # settings left out: the checkpoint has them
    assert code == 130
    assert err.splitlines() == [interrupted_message(model, checkpoint, 5, 7)]  # the same checkpoint, overwritten
    assert not model.exists()

    code, out, err = train(capsys, model, "--resume", checkpoint, "--json", "--history", tmp_path / "history.json")
    assert code == 0, err
    assert json.loads(out)["epochs"] == 7
    assert_same_weights(model, tmp_path / "straight.npz")
    history = json.loads((tmp_path / "history.json").read_text())
    straight = load_model(tmp_path / "straight.npz").metadata["history"]
    assert [epoch["epoch"] for epoch in history] == list(range(1, 8))
    for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
        assert [epoch[key] for epoch in history] == [epoch[key] for epoch in straight]


def test_a_second_ctrl_c_stops_at_once_without_a_checkpoint(capsys, tmp_path):
    model = tmp_path / "model.npz"
    before = an_older_model(model)
    with signal_after_epoch(1, times=2):
        code, out, err = train(capsys, model, "--epochs", "5")
    assert (code, out, err.strip()) == (130, "", "softmax: interrupted")
    assert model.read_bytes() == before
    assert os.listdir(tmp_path) == ["model.npz"]


def test_a_signal_during_the_last_epoch_lets_the_run_finish(capsys, tmp_path):
    with signal_after_epoch(3):
        code, _, err = train(capsys, tmp_path / "model.npz", "--epochs", "3")
    assert code == 0, err
    assert os.listdir(tmp_path) == ["model.npz"]


@pytest.fixture
def checkpoint(capsys, tmp_path) -> Path:
    """A checkpoint of a digits run (default settings) interrupted after its second epoch."""
    with signal_after_epoch(2):
        assert train(capsys, tmp_path / "model.npz")[0] == 130
    return tmp_path / "model.ckpt.npz"


def test_resuming_with_other_settings_is_refused(capsys, tmp_path, checkpoint):
    before = checkpoint.read_bytes()
    code, _, err = train(capsys, tmp_path / "model.npz", "--resume", checkpoint, "--lr", "0.1",
                         "--epochs", str(TrainConfig().epochs))  # the same epochs: only --lr differs
    assert_one_line_error(code, err, "the checkpoint was made with --lr 0.5: resume with the settings it was made with")
    assert code == 1
    assert checkpoint.read_bytes() == before and not (tmp_path / "model.npz").exists()


def test_resuming_from_a_model_file_or_a_damaged_checkpoint_is_refused(capsys, tmp_path, checkpoint):
    model = tmp_path / "earlier.npz"
    an_older_model(model)
    code, _, err = train(capsys, tmp_path / "model.npz", "--resume", model)
    assert_one_line_error(code, err, f"{model} is a softmax-cli model file, not a softmax-cli training checkpoint")
    checkpoint.write_bytes(checkpoint.read_bytes()[:-10])
    code, _, err = train(capsys, tmp_path / "model.npz", "--resume", checkpoint)
    assert_one_line_error(code, err, f"{checkpoint} is not a valid softmax-cli training checkpoint")
    code, _, err = train(capsys, tmp_path / "model.npz", "--resume", tmp_path / "missing.ckpt.npz")
    assert_one_line_error(code, err, "missing.ckpt.npz", "does not exist")
    assert code == 1


def test_resuming_from_a_checkpoint_of_pickles_runs_no_code(capsys, tmp_path):
    marker = tmp_path / "code-ran"
    *_, hostile = hostile_files(tmp_path, marker)
    code, _, err = train(capsys, tmp_path / "model.npz", "--resume", hostile)
    assert_one_line_error(code, err, f"{hostile} is not a valid softmax-cli training checkpoint")
    assert not marker.exists() and not (tmp_path / "model.npz").exists()


@pytest.mark.parametrize("side", [28, 8], ids=["other image size", "same size, other images"])
def test_resuming_on_other_data_is_refused(capsys, tmp_path, checkpoint, side):
    pixels, labels = np.random.default_rng(0).integers(0, 256, (50, side, side), np.uint8), np.arange(50) % 10
    other = tmp_path / "other.npz"
    np.savez(other, x_train=pixels, y_train=labels, x_test=pixels, y_test=labels)
    code, _, err = train(capsys, tmp_path / "model.npz", "--resume", checkpoint, "--data", other)
    assert_one_line_error(code, err, "--data")
    assert f"{checkpoint} was made on other data: resume with the --data it was trained on" in err or (
        side == 28 and "holds 28x28 images" in err)  # other images of another size are not even the digits


def test_the_same_data_from_another_file_resumes(capsys, tmp_path, checkpoint):
    assert train(capsys, tmp_path / "straight.npz")[0] == 0
    digits = load_dataset(None, "digits")
    elsewhere = tmp_path / "digits-copy.npz"
    np.savez(elsewhere, x_train=digits.x_train, y_train=digits.y_train, x_test=digits.x_test, y_test=digits.y_test)
    code, _, err = train(capsys, tmp_path / "model.npz", "--resume", checkpoint, "--data", elsewhere)
    assert code == 0, err
    assert_same_weights(tmp_path / "model.npz", tmp_path / "straight.npz")


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> tuple[Path, dict, dict]:
    """Return a tiny data set (4x4 images, 3 classes), and the arrays and state of a run on it stopped after epoch 2."""
    folder = tmp_path_factory.mktemp("tiny")
    labels = np.arange(60) % 3
    pixels = (labels[:, None, None] * 80 + np.random.default_rng(0).integers(0, 40, (60, 4, 4))).astype(np.uint8)
    np.savez(folder / "tiny.npz", x_train=pixels, y_train=labels, x_test=pixels[:12], y_test=labels[:12])
    args = ["--epochs", "5", "--batch-size", "10", "--val-split", "0.2", "--patience", "3", "--quiet"]
    with signal_after_epoch(2), pytest.raises(SystemExit):
        cli.main(["train", "--data", str(folder / "tiny.npz"), "--model", str(folder / "model.npz"), *args])
    with np.load(folder / "model.ckpt.npz") as archive:  # as anyone can read it, to edit it
        arrays = {name: archive[name] for name in archive.files if name != "state"}
        return folder / "tiny.npz", arrays, json.loads(str(archive["state"]))


def write_checkpoint(path, arrays: dict, state: dict) -> None:
    """Write a checkpoint file by hand, as anyone can with NumPy, whatever it holds."""
    np.savez(path, **arrays, state=np.array(json.dumps(state)))


JSON_VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=5), st.lists(st.integers(-3, 3), max_size=3), st.dictionaries(st.text(max_size=3), st.none()),
)


def places(document, path=()):
    """Yield the path (keys and indexes) of every value nested in a JSON document."""
    if isinstance(document, (dict, list)):
        for key, child in document.items() if isinstance(document, dict) else enumerate(document):
            yield (*path, key)
            yield from places(child, (*path, key))


@st.composite
def edited(draw, state: dict) -> dict:
    """Return a copy of a checkpoint's state with one value, at any depth, replaced by any JSON value or removed."""
    state = copy.deepcopy(state)
    *parents, key = draw(st.sampled_from(list(places(state))))
    holder = functools.reduce(operator.getitem, parents, state)
    if isinstance(holder, dict) and draw(st.booleans()):
        del holder[key]
    else:
        holder[key] = draw(JSON_VALUES)
    return state


@st.composite
def reshaped(draw, arrays: dict) -> dict:
    """Return a checkpoint's arrays with one of them replaced by zeros of any shape and numeric type."""
    shape = draw(st.lists(st.integers(0, 20), max_size=3))
    dtype = draw(st.sampled_from([np.float32, np.float64, np.int64, np.uint8]))
    return {**arrays, draw(st.sampled_from(sorted(arrays))): np.zeros(shape, dtype)}


@FUZZ
@given(data=st.data())
def test_a_checkpoint_edited_in_any_way_is_refused_in_one_line_or_resumes(capsys, tmp_path, tiny_run, data):
    dataset, arrays, state = tiny_run
    if data.draw(st.booleans()):
        state = data.draw(edited(state))
    else:
        arrays = data.draw(reshaped(arrays))
    write_checkpoint(tmp_path / "edited.ckpt.npz", arrays, state)
    with signal_after_epoch(None):  # a run that resumes stops after one epoch, however many it claims to have left
        code, _, err = run(capsys, "train", "--data", dataset, "--model", tmp_path / "model.npz", "--quiet",
                           "--resume", tmp_path / "edited.ckpt.npz")
    if code == 1:
        assert_one_line_error(code, err)
    else:
        assert code in (0, 130) and "Traceback" not in err



def test_a_checkpoint_that_cannot_resume_is_named_with_what_is_wrong(capsys, tmp_path, tiny_run):
    dataset, arrays, state = tiny_run
    checkpoint = tmp_path / "edited.ckpt.npz"
    write_checkpoint(checkpoint, arrays, {**state, "step": -1})
    code, _, err = run(capsys, "train", "--data", dataset, "--model", tmp_path / "model.npz", "--quiet",
                       "--resume", checkpoint)
    assert_one_line_error(
        code, err, f"the checkpoint {checkpoint} does not hold a training run this version can resume (step is -1",
        "train without --resume to start again"
    )
    assert code == 1 and not (tmp_path / "model.npz").exists()

# --- Divergence -----------------------------------------------------------------------------------------------


EXPLODING = ("--lr", "1e6", "--momentum", "0", "--schedule", "constant")


def test_divergence_stops_with_the_epoch_and_advice_and_keeps_the_old_model(capsys, tmp_path):
    model = tmp_path / "model.npz"
    before = an_older_model(model)
    code, out, err = train(capsys, model, *EXPLODING)
    assert_one_line_error(code, err, "training diverged in epoch 1 (the loss became", "try a smaller --lr")
    assert code == 1 and out == ""
    assert model.read_bytes() == before
    assert os.listdir(tmp_path) == ["model.npz"]  # no checkpoint, no temporary file


def test_divergence_writes_no_model_where_there_was_none(capsys, tmp_path):
    code, _, err = train(capsys, tmp_path / "model.npz", *EXPLODING)
    assert code == 1 and "smaller --lr" in err
    assert os.listdir(tmp_path) == []


def test_divergence_names_the_first_epoch_that_went_wrong(capsys, tmp_path):
    # With full-batch steps at this rate the loss swings higher each epoch and is far above log(10) in the third.
    growing = ("--lr", "1000", "--batch-size", "full", "--momentum", "0", "--schedule", "constant")
    code, _, err = train(capsys, tmp_path / "two.npz", *growing, "--epochs", "2")
    assert code == 0, err
    assert np.isfinite(load_model(tmp_path / "two.npz").W).all()
    code, _, err = train(capsys, tmp_path / "ten.npz", *growing, "--epochs", "10")
    assert_one_line_error(code, err, "training diverged in epoch 3 (the loss became", "smaller --lr than 1000")


def test_a_bad_softmax_threads_is_one_line_and_keeps_the_old_model(capsys, tmp_path, monkeypatch):
    model = tmp_path / "model.npz"
    before = an_older_model(model)
    monkeypatch.setenv("SOFTMAX_THREADS", "many")
    code, out, err = train(capsys, model)
    assert_one_line_error(code, err, "SOFTMAX_THREADS must be a whole number at least 1, got 'many'")
    assert code == 1 and out == "" and model.read_bytes() == before
    monkeypatch.setenv("SOFTMAX_THREADS", "1")
    code, _, err = train(capsys, model)
    assert code == 0, err


# --- Determinism ----------------------------------------------------------------------------------------------


def test_same_seed_gives_the_same_weights_and_another_seed_other_weights(capsys, tmp_path):
    for name, seed in (("first", 5), ("again", 5), ("other", 6)):
        code, _, err = train(capsys, tmp_path / f"{name}.npz", "--seed", seed, "--epochs", "3")
        assert code == 0, err
    assert_same_weights(tmp_path / "first.npz", tmp_path / "again.npz")
    assert not np.array_equal(load_model(tmp_path / "first.npz").W, load_model(tmp_path / "other.npz").W)


def test_a_negative_seed_is_a_usage_error(capsys, tmp_path):
    code, _, err = train(capsys, tmp_path / "model.npz", "--seed", "-1")
    assert_one_line_error(code, err, "--seed must be a whole number at least 0")
    assert code == 2


# --- History and early stopping -------------------------------------------------------------------------------


def test_history_is_written_as_csv_or_json(capsys, tmp_path):
    code, _, err = train(capsys, tmp_path / "model.npz", "--epochs", "4", "--val-split", "0.2",
                         "--history", tmp_path / "history.csv")
    assert code == 0, err
    assert train(capsys, tmp_path / "model.npz", "--epochs", "4", "--val-split", "0.2",
                 "--history", tmp_path / "history.json")[0] == 0
    with open(tmp_path / "history.csv", newline="") as file:
        rows = list(csv.DictReader(file))
    epochs = json.loads((tmp_path / "history.json").read_text())
    assert list(rows[0]) == ["epoch", "loss", "accuracy", "val_loss", "val_accuracy", "seconds"]
    assert [int(row["epoch"]) for row in rows] == [epoch["epoch"] for epoch in epochs] == [1, 2, 3, 4]
    for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
        assert [float(row[key]) for row in rows] == [epoch[key] for epoch in epochs]  # same seed, same run
    assert epochs == load_model(tmp_path / "model.npz").metadata["history"]


def test_history_in_a_missing_folder_is_refused_before_training(capsys, tmp_path):
    model = tmp_path / "model.npz"
    before = an_older_model(model)
    code, _, err = train(capsys, model, "--history", tmp_path / "no" / "history.csv")
    assert_one_line_error(code, err, "history", "does not exist")
    assert model.read_bytes() == before


def test_history_file_with_another_suffix_is_a_usage_error(capsys, tmp_path):
    code, _, err = train(capsys, tmp_path / "model.npz", "--history", tmp_path / "history.txt")
    assert_one_line_error(code, err, "--history", "must end in .csv or .json")
    assert code == 2
    assert os.listdir(tmp_path) == []  # refused before any training


def test_patience_stops_early_when_the_validation_loss_stops_improving(capsys, tmp_path):
    code, out, err = train(capsys, tmp_path / "model.npz", "--val-split", "0.2", "--patience", "2",
                           "--epochs", "200", "--average", "0", "--json")
    assert code == 0, err
    summary = json.loads(out)
    history = load_model(tmp_path / "model.npz").metadata["history"]
    assert summary["stopped_early"] is True and summary["epochs"] == len(history) < 200
    val_losses = [epoch["val_loss"] for epoch in history]
    best = val_losses.index(min(val_losses))
    assert best == len(history) - 3  # the two epochs after the best were no better, and training stopped


# --- Real signals to a real process, on the full MNIST set (slow) ---------------------------------------------


def softmax_train(*args) -> list[str]:
    return [sys.executable, "-m", "softmax_cli", "train", *map(str, args)]


def epochs_shown(progress: bytes) -> int:
    """Return how many epochs the progress on stderr has reported done so far (off a terminal: "epoch 3/12: ...")."""
    return max(map(int, re.findall(rb"epoch (\d+)/\d+:", progress)), default=0)


def start_then_signal(args, signum, epochs: int, timeout: float = 300) -> tuple[int, str]:
    """Start `softmax train ARGS`, send it signum once its progress bar shows that many epochs done.

    Returns its exit code and everything it wrote to stderr.
    """
    process = subprocess.Popen(softmax_train(*args), cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    progress, deadline = b"", time.monotonic() + timeout
    try:
        while epochs_shown(progress) < epochs:
            ready, _, _ = select.select([process.stderr], [], [], max(0.0, deadline - time.monotonic()))
            chunk = os.read(process.stderr.fileno(), 4096) if ready else b""
            if not chunk:
                pytest.fail(f"training ended or stalled after {epochs_shown(progress)} epochs: {progress[-500:]!r}")
            progress += chunk
        process.send_signal(signum)
        rest = process.communicate(timeout=timeout)[1]
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    return process.returncode, (progress + rest).decode()


EPOCHS = 12  # about 0.1 s each on the full set: signalled after 2, the run is far from done


@pytest.fixture(scope="module")
def uninterrupted(mnist_path, tmp_path_factory) -> Path:
    """The model file of an uninterrupted run on the full MNIST set."""
    model = tmp_path_factory.mktemp("uninterrupted") / "model.npz"
    subprocess.run(softmax_train("--data", mnist_path, "--epochs", EPOCHS, "--model", model, "--quiet"),
                   cwd=REPO, check=True, timeout=300)
    return model


@pytest.mark.slow
@pytest.mark.parametrize("signum", SIGNALS, ids=lambda signum: signum.name)
def test_a_real_signal_to_softmax_train_on_mnist_then_resume(tmp_path, mnist_path, uninterrupted, signum):
    model, checkpoint = tmp_path / "model.npz", tmp_path / "model.ckpt.npz"
    before = an_older_model(model, image_shape=(28, 28))
    args = ("--data", mnist_path, "--epochs", EPOCHS, "--model", model)

    code, err = start_then_signal(args, signum, epochs=2)
    assert code == 130, err
    assert "Traceback" not in err
    last_line = err.replace("\r", "\n").strip().splitlines()[-1]
    epoch = load_checkpoint(checkpoint).epoch
    assert last_line == interrupted_message(model, checkpoint, epoch, EPOCHS)
    assert 2 <= epoch < EPOCHS
    assert model.read_bytes() == before

    resumed = subprocess.run(softmax_train(*args, "--resume", checkpoint, "--quiet"),
                             cwd=REPO, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert_same_weights(model, uninterrupted)
    assert not checkpoint.exists()


def test_progress_into_a_file_or_pipe_is_one_plain_line_per_epoch_with_validation_figures(tmp_path):
    """A bar's \\r frames once littered `make train > log`; off a terminal each epoch is one line."""
    finished = subprocess.run(softmax_train("--dataset", "digits", "--epochs", "3", "--val-split", "0.2",
                                            "--model", tmp_path / "m.npz"), cwd=REPO, capture_output=True, text=True)
    assert finished.returncode == 0, finished.stderr
    assert "\r" not in finished.stderr
    # (where the compiled epoch was not built, a note that training takes the NumPy loop comes first)
    lines = [line for line in finished.stderr.splitlines() if not line.startswith("softmax: note: ")]
    assert [line.split(":")[0] for line in lines] == ["epoch 1/3", "epoch 2/3", "epoch 3/3"]
    assert all("validation loss" in line and "validation accuracy" in line for line in lines)
    assert "validation accuracy" in finished.stdout  # and the summary says how the kept weights scored


def test_the_progress_bar_leaves_the_last_epoch_on_record(monkeypatch, capsys):
    """In a terminal the bar is erased at the end, so one line of the last epoch's figures stays."""
    import sys as system

    from softmax_cli.cli.progress import Progress

    monkeypatch.setattr(system.stderr, "isatty", lambda: True)
    with Progress(2) as progress:
        progress({"epoch": 1, "loss": 0.5, "accuracy": 0.8})
        progress({"epoch": 2, "loss": 0.25, "accuracy": 0.9, "val_loss": 0.3, "val_accuracy": 0.88})
    err = capsys.readouterr().err
    assert err.rstrip().splitlines()[-1] == ("epoch 2/2: loss 0.2500, training accuracy 90.00%, validation loss 0.3000, "
                                             "validation accuracy 88.00%")
