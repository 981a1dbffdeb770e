"""The last doors: what a user can hand the tool at its documented limits, and get back intact."""

from pathlib import Path

import numpy as np
import pytest

from softmax_cli.config import TrainConfig
from softmax_cli.data import load_dataset
from softmax_cli.run import train_model
from softmax_cli.store import load_checkpoint, load_model, save_checkpoint
from softmax_cli.train import Trainer, fit


def max16(path):
    """The documented limit: 32 images of 1024x1024 pixels in 16 classes (16 million weights)."""
    rng = np.random.default_rng(0)
    labels = np.arange(32) % 16
    images = rng.integers(0, 256, (32, 1024, 1024), dtype=np.uint8)
    np.savez(path, x_train=images, y_train=labels, x_test=images[:16], y_test=labels[:16])
    return path


def test_a_model_at_the_documented_limit_is_saved_and_read_back(tmp_path):
    dataset = load_dataset(max16(tmp_path / "max16.npz"), name=None)
    train_model(dataset, TrainConfig(epochs=1, batch_size=16, lr=1e-5), tmp_path / "model.npz")
    saved = load_model(tmp_path / "model.npz")  # refused before: the save check left out the .npy header
    assert saved.W.shape == (1024 * 1024, 16)


def test_a_checkpoint_at_the_documented_limit_is_saved_and_read_back(tmp_path):
    rng = np.random.default_rng(0)
    pixels, labels = rng.integers(0, 256, (16, 1024 * 1024), dtype=np.uint8), np.arange(16)
    for config in (TrainConfig(epochs=3, batch_size=4, lr=1e-5), TrainConfig(epochs=3, batch_size=4, lr=1e-5, val_split=0.25,
                                                                     patience=2)):
        trainer = Trainer(config, 1024 * 1024, 16)
        fit(trainer, pixels, labels, should_stop=lambda: trainer.epoch == 2)
        save_checkpoint(tmp_path / "run.ckpt.npz", trainer.to_checkpoint("max16", "f"))
        resumed = Trainer.from_checkpoint(load_checkpoint(tmp_path / "run.ckpt.npz"))
        assert resumed.epoch == 2


def test_a_number_of_thousands_of_digits_in_a_config_file_is_one_line(tmp_path):
    import subprocess
    import sys

    for text in ("epochs = " + "9" * 5000, "lr = 0x" + "f" * 5000, "seed = " + "1" * 5000):
        (tmp_path / "big.toml").write_text(text + "\n")
        done = subprocess.run([sys.executable, "-m", "softmax_cli", "train", "--config", tmp_path / "big.toml"],
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 1 and "Traceback" not in done.stderr
        assert done.stderr.startswith(f"softmax: error: config file {tmp_path / 'big.toml'}")
        assert "number too long to read" in done.stderr or "a number of about 6,020 digits" in done.stderr
        assert len(done.stderr.splitlines()) == 1


@pytest.mark.parametrize("args", [["train", "--model", "ro/m.npz"], ["train", "--history", "ro/h.csv"],
                                  ["tune", "--lr", "0.1", "--batch-size", "20", "--l2", "0", "--out", "ro/b.toml"]])
def test_an_output_in_a_read_only_folder_is_refused_before_any_training(capsys, tmp_path, monkeypatch, args):
    """Refused at the end before, after the whole run; with --history, after the model had been saved."""
    import errno
    import tempfile

    from test_cli import run
    from test_tune import blobs

    x, y = blobs(300)
    np.savez(tmp_path / "blobs.npz", x_train=x, y_train=y, x_test=x[:50], y_test=y[:50])
    (tmp_path / "ro").mkdir()
    monkeypatch.chdir(tmp_path)
    real_mkstemp = tempfile.mkstemp

    def read_only(*a, dir=None, **k):  # (tests run as root, whom permissions do not stop: a read-only mount)
        if dir is not None and Path(dir).resolve() == tmp_path / "ro":
            raise OSError(errno.EROFS, "Read-only file system")
        return real_mkstemp(*a, dir=dir, **k)

    monkeypatch.setattr(tempfile, "mkstemp", read_only)
    code, out, err = run(capsys, *args, "--data", "blobs.npz", "--epochs", "2")
    assert code == 1 and "epoch 1/" not in err and "trial 1/" not in err
    assert err.strip().splitlines() == [err.strip()] and "Read-only file system in ro: choose a folder" in err
    assert not (tmp_path / "model.npz").exists()


def test_data_of_one_class_is_refused_before_training(capsys, tmp_path):
    from test_cli import run

    images = np.random.default_rng(0).integers(0, 256, (50, 8, 8), dtype=np.uint8)
    np.savez(tmp_path / "one.npz", x_train=images, y_train=np.zeros(50, int), x_test=images[:5],
             y_test=np.zeros(5, int))
    code, _, err = run(capsys, "train", "--data", tmp_path / "one.npz", "--model", tmp_path / "m.npz")
    assert code == 1 and "epoch 1/" not in err
    assert err == (f"softmax: error: {tmp_path / 'one.npz'}: every training image has the label 0: a "
                   "classifier needs at least two classes\n")


def test_a_dangling_link_as_the_model_is_named_for_what_it_is(capsys, tmp_path):
    from test_cli import run

    (tmp_path / "m.npz").symlink_to(tmp_path / "gone.npz")
    code, _, err = run(capsys, "train", "--data", "x.npz", "--model", tmp_path / "m.npz")
    assert code == 1 and "is a symbolic link to" in err and "which does not exist" in err
    assert "exists and is not a model file" not in err


def test_a_pattern_through_a_symlink_loop_predicts_each_file_once(tmp_path):
    from softmax_cli.images import expand_inputs

    (tmp_path / "loop" / "sub").mkdir(parents=True)
    (tmp_path / "loop" / "sub" / "a.png").write_bytes(b"png")
    (tmp_path / "loop" / "sub" / "up").symlink_to("..")
    assert expand_inputs([f"{tmp_path}/loop/**/*.png"]) == [tmp_path / "loop" / "sub" / "a.png"]


def test_two_classes_of_one_name_are_refused(tmp_path):
    from softmax_cli.errors import SoftmaxError

    x = np.zeros((4, 8, 8), np.uint8)
    np.savez(tmp_path / "dup.npz", x_train=x, y_train=np.arange(4) % 2, x_test=x, y_test=np.arange(4) % 2,
             class_names=np.array(["cat", "cat"]))
    with pytest.raises(SoftmaxError, match="the class name 'cat' is given twice"):
        load_dataset(tmp_path / "dup.npz", name=None)


def test_an_upload_that_cannot_be_decoded_is_called_the_image_once(tmp_path):
    import io

    from PIL import Image

    from softmax_cli.errors import SoftmaxError
    from softmax_cli.images import load_image

    png = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64), dtype=np.uint8)).save(png, "PNG")
    with pytest.raises(SoftmaxError) as refused:
        load_image(png.getvalue()[:400], name="the image")  # truncated, as a dropped upload is
    assert str(refused.value).startswith("cannot decode the image (") and "image the image" not in str(refused.value)


def test_a_model_path_that_is_a_link_is_written_through_and_stays_a_link(capsys, tmp_path):
    from test_cli import run
    from test_tune import blobs

    x, y = blobs(300)
    np.savez(tmp_path / "blobs.npz", x_train=x, y_train=y, x_test=x[:50], y_test=y[:50])
    (tmp_path / "models").mkdir()
    (tmp_path / "m.npz").symlink_to(tmp_path / "models" / "real.npz")
    for model, epochs in ((tmp_path / "models" / "real.npz", "1"), (tmp_path / "m.npz", "2")):
        code, _, err = run(capsys, "train", "--data", tmp_path / "blobs.npz", "--epochs", epochs, "--model", model,
                           "-q")
        assert code == 0, err
    assert (tmp_path / "m.npz").is_symlink()  # still the link, and the file it names is the new model
    assert len(load_model(tmp_path / "models" / "real.npz").metadata["history"]) == 2
