"""softmax train --add: a person's own labelled examples, framed as predict frames them, weighed into training."""

import json

import numpy as np
from PIL import Image

from softmax_cli.data import load_dataset
from softmax_cli.data.examples import read_examples
from softmax_cli.images import load_image
from softmax_cli.store import load_model
from test_cli import run


def bands(n, seed=0, side=28):
    """Return (images, labels): 3 classes, each a bright horizontal band in its own rows, on black."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 3
    images = rng.integers(0, 30, (n, side, side))
    for k in range(3):
        images[labels == k, 6 + 6 * k: 10 + 6 * k, 6:22] = 255
    return images.astype(np.uint8), labels


def write_set(path):
    x, y = bands(300)
    xt, yt = bands(60, seed=1)
    np.savez(path, x_train=x, y_train=y, x_test=xt, y_test=yt)
    return path


def write_folder(folder, per_class=2):
    """Photos of a person's own examples: dark bands on white paper, 100x100 pixels, in class-named folders."""
    for k in range(3):
        (folder / str(k)).mkdir(parents=True)
        for i in range(per_class):
            page = np.full((100, 100), 250, np.uint8)
            page[20 + 20 * k: 30 + 20 * k, 15 + i: 85 - i] = 10
            Image.fromarray(page).save(folder / str(k) / f"{i}.png")
    return folder


def test_a_folder_of_class_folders_is_read_and_framed_as_predict_frames_it(tmp_path):
    dataset = load_dataset(write_set(tmp_path / "bands.npz"), name=None)
    examples = read_examples([write_folder(tmp_path / "mine")], dataset, weight=50)
    assert examples.images.shape == (6, 28, 28) and examples.images.dtype == np.uint8
    assert examples.labels.tolist() == [0, 0, 1, 1, 2, 2]
    framed = load_image(tmp_path / "mine" / "1" / "0.png", (28, 28), convention=dataset.image_convention())
    np.testing.assert_array_equal(examples.images[2], np.round(framed.reshape(28, 28) * 255))
    assert examples.record(dataset.class_names) == {"count": 6, "per_class": {"0": 2, "1": 2, "2": 2},
                                                    "weight": 50.0, "fingerprint": examples.fingerprint()}


def test_train_add_records_the_examples_and_info_shows_them(capsys, tmp_path):
    data, mine = write_set(tmp_path / "bands.npz"), write_folder(tmp_path / "mine")
    code, out, err = run(capsys, "train", "--data", data, "--add", mine, "--add-weight", "30", "--epochs", "2",
                         "--model", tmp_path / "m.npz", "--json")
    assert code == 0, err
    added = load_model(tmp_path / "m.npz").metadata["added"]
    assert (added["count"], added["per_class"], added["weight"]) == (6, {"0": 2, "1": 2, "2": 2}, 30.0)
    code, out, _ = run(capsys, "info", tmp_path / "m.npz")
    assert "examples added       6 (0: 2, 1: 2, 2: 2), each weighing 30 training images" in out
    assert json.loads(run(capsys, "train", "--data", data, "--epochs", "2", "--model", tmp_path / "plain.npz",
                          "--json")[1])["test_accuracy"] is not None
    assert load_model(tmp_path / "plain.npz").metadata["added"] is None


def test_examples_weigh_into_training(capsys, tmp_path):
    """The examples label the bands the other way round: the more they weigh, the more the model follows them."""
    data = write_set(tmp_path / "bands.npz")
    x, y = bands(6, seed=5)
    np.savez(tmp_path / "swapped.npz", x_train=x, y_train=(y + 1) % 3, x_test=x, y_test=(y + 1) % 3)
    accuracy = {}
    for weight in ("1", "1000"):
        code, out, err = run(capsys, "train", "--data", data, "--add", tmp_path / "swapped.npz", "--add-weight",
                             weight, "--epochs", "2", "--model", tmp_path / f"m{weight}.npz", "--json")
        assert code == 0, err
        accuracy[weight] = json.loads(out)["test_accuracy"]
    assert accuracy["1"] > 0.9 and accuracy["1000"] < 0.5


def test_bad_example_sources_are_one_line(capsys, tmp_path):
    data = write_set(tmp_path / "bands.npz")
    (tmp_path / "empty").mkdir()
    (tmp_path / "wrong" / "cat").mkdir(parents=True)
    (tmp_path / "broken" / "1").mkdir(parents=True)
    (tmp_path / "broken" / "1" / "a.png").write_bytes(b"not a png")
    x, _ = bands(4)
    np.savez(tmp_path / "other.npz", x_train=x[:, :20, :20], y_train=np.arange(4) % 2, x_test=x[:, :20, :20],
             y_test=np.arange(4) % 2)
    for source, phrase in (("empty", "no image files in class folders"),
                           ("wrong", "the folder 'cat' is not one of the classes (0, 1, 2)"),
                           ("broken", "broken/1/a.png"),
                           ("other.npz", "are not bands's")):
        code, _, err = run(capsys, "train", "--data", data, "--add", tmp_path / source, "--model", tmp_path / "m.npz")
        assert code == 1 and len(err.splitlines()) == 1 and phrase in err, err
        assert not (tmp_path / "m.npz").exists()
