"""Exporting a model to Keras: the same probabilities, an atomic write, and clear errors before TensorFlow loads."""

import dataclasses
import errno
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from softmax_cli import export
from softmax_cli.errors import SoftmaxError
from softmax_cli.export import export_model
from softmax_cli.model import features, predict_proba
from softmax_cli.store import load_model, save_model
from test_store import metadata

DIGITS = [str(digit) for digit in range(10)]
# Keras 3.15 itself calls np.array on its variables when saving and loading, which NumPy 2 warns about.
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy keyword")


def write_model(path, **changes):
    """Save a model of random weights for 28x28 images and 10 classes at path; return it as loaded."""
    rng = np.random.default_rng(0)
    # This spread puts logits several units apart, so probabilities range from near 0 to near 1.
    W, b = rng.normal(scale=0.3, size=(784, 10)), rng.normal(size=10)
    fields = {"framing": "mnist", "preprocess": "none", "training_data": None, "test_loss": None,
              "stopped_early": False, "best_epoch": None, **changes}
    save_model(path, W, b, metadata(image_shape=[28, 28], class_names=DIGITS, **fields))
    return load_model(path)


def old_export(path) -> bytes:
    """Write a stand-in for an earlier export at path (a zip with the members of a .keras file); return its bytes."""
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("metadata.json", "{}")
        archive.writestr("config.json", "{}")
    return path.read_bytes()


@pytest.fixture
def saved(tmp_path):
    return write_model(tmp_path / "model.npz")


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """Return the model, its export by export_model (what `softmax export` calls), and that export as
    keras.models.load_model reads it."""
    folder = tmp_path_factory.mktemp("export")
    saved = write_model(folder / "model.npz")
    out = folder / "model.keras"
    export_model(saved, out, "keras")
    import keras

    return saved, out, keras.models.load_model(out)


@pytest.mark.slow
def test_keras_model_gives_our_probabilities_for_pixels_over_255(exported):
    """The input every form of the model takes: a Keras user who feeds x / 255, as the tutorials do, gets ours."""
    saved, _, keras_model = exported
    pixels = np.random.default_rng(1).integers(0, 256, size=(500, 28, 28), dtype=np.uint8)
    pixels[0], pixels[1] = 0, 255
    ours = predict_proba(saved.W, saved.b, features(pixels))
    assert ours.max() > 0.99 and ours.min() < 0.001  # far from uniform: the comparison means something
    np.testing.assert_allclose(keras_model.predict(pixels.reshape(500, -1) / 255, verbose=0), ours, rtol=0, atol=1e-5)
    np.testing.assert_array_equal(keras_model.get_layer("probabilities").get_weights()[0], saved.W)
    assert [type(layer).__name__ for layer in keras_model.layers] == ["Dense"]  # no Rescaling in front


@pytest.mark.slow
def test_export_gets_the_usual_permissions_and_leaves_no_temporary_file(exported):
    _, out, _ = exported
    assert sorted(path.name for path in out.parent.iterdir()) == ["model.keras", "model.npz"]
    assert out.stat().st_mode & 0o777 == (out.parent / "model.npz").stat().st_mode & 0o777


@pytest.mark.slow
def test_a_failed_keras_save_keeps_the_old_export(exported, tmp_path, monkeypatch):
    import keras

    def full_disk(model, path, *args, **kwargs):
        Path(path).write_bytes(b"half a mod")
        raise OSError(errno.ENOSPC, "No space left on device")

    out = tmp_path / "model.keras"
    out.write_bytes(exported[1].read_bytes())
    monkeypatch.setattr(keras.Model, "save", full_disk)
    with pytest.raises(SoftmaxError, match=f"cannot export to {out}: No space left on device"):
        export_model(exported[0], out)
    assert out.read_bytes() == exported[1].read_bytes()
    assert [path.name for path in tmp_path.iterdir()] == ["model.keras"]


def test_an_interrupted_export_keeps_the_old_file(saved, tmp_path, monkeypatch):
    def interrupted(model, path):
        path.write_bytes(b"half a mod")
        raise KeyboardInterrupt

    monkeypatch.setitem(export.FORMATS, "keras", dataclasses.replace(export.FORMATS["keras"], write=interrupted))
    out = tmp_path / "model.keras"
    old = old_export(out)
    with pytest.raises(KeyboardInterrupt):
        export_model(saved, out)
    assert out.read_bytes() == old
    assert sorted(path.name for path in tmp_path.iterdir()) == ["model.keras", "model.npz"]


@pytest.mark.parametrize(
    "name, fragment",
    [
        ("model.h5", "a keras model file's name must end in .keras, such as {folder}/model.keras"),
        ("model", "must end in .keras"),
        ("nowhere/model.keras", "the folder {folder}/nowhere does not exist"),
        ("folder.keras", "folder.keras is a folder"),
        ("notes.keras", "notes.keras exists and is not a keras model file: choose another name"),
        ("model.npz.keras", "also {folder}/model.npz, which this command reads"),
    ],
)
def test_a_bad_destination_fails_before_tensorflow_loads(saved, tmp_path, monkeypatch, name, fragment):
    def never(model, path):
        pytest.fail("the exporter ran for a destination that was already known to be bad")

    monkeypatch.setitem(export.FORMATS, "keras", dataclasses.replace(export.FORMATS["keras"], write=never))
    (tmp_path / "folder.keras").mkdir()
    (tmp_path / "notes.keras").write_text("my notes")
    (tmp_path / "model.npz.keras").symlink_to(tmp_path / "model.npz")
    with pytest.raises(SoftmaxError, match=fragment.format(folder=tmp_path)):
        export_model(saved, tmp_path / name, reads=[tmp_path / "model.npz"])
    assert (tmp_path / "notes.keras").read_text() == "my notes"


def test_an_unknown_format_names_the_known_ones(saved, tmp_path):
    with pytest.raises(SoftmaxError, match="unknown export format 'onnx': choose one of keras"):
        export_model(saved, tmp_path / "model.onnx", "onnx")


def test_a_deskewing_model_is_refused_in_one_line_before_tensorflow_loads(tmp_path, monkeypatch):
    """Deskewing is per-image moments and a shear, not a standard Keras layer: no export rather than a wrong one."""
    saved = write_model(tmp_path / "deskew.npz", preprocess="deskew", framing="mnist")
    monkeypatch.setattr(export, "import_keras", lambda: pytest.fail("TensorFlow was loaded for a refused model"))
    out = tmp_path / "deskew.keras"
    with pytest.raises(SoftmaxError) as refused:
        export_model(saved, out)
    message = str(refused.value)
    assert message.startswith("cannot export a model with preprocess deskew to keras: deskewing shears each image")
    assert "\n" not in message and "no standard Keras layer" in message
    assert not out.exists()


def test_the_command_says_what_is_wrong_in_one_line(capsys, saved, tmp_path):
    from test_cli import assert_one_line_error, run

    code, out, err = run(capsys, "export", "--model", tmp_path / "model.npz", tmp_path / "model.h5")
    assert code == 1 and out == ""
    assert_one_line_error(code, err, "model.h5", ".keras")
    assert not (tmp_path / "model.h5").exists()
    code, _, err = run(capsys, "export", "--model", tmp_path / "model.npz", "--format", "onnx", tmp_path / "m.onnx")
    assert code == 2
    assert_one_line_error(code, err, "--format")


def test_importing_the_cli_and_export_does_not_load_tensorflow():
    loaded = subprocess.run(
        [sys.executable, "-c", "import sys, softmax_cli.cli, softmax_cli.export; "
         "print(sorted(name for name in ('keras', 'tensorflow') if name in sys.modules))"],
        capture_output=True, text=True, check=True,
    )
    assert loaded.stdout.strip() == "[]"
