"""Exporting a model to Keras and ONNX: the same probabilities, an atomic write, and clear errors before TensorFlow
(or onnx) loads."""

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
        ("model.h5", "the name of a model file in Keras format must end in .keras, such as {folder}/model.keras"),
        ("model", "must end in .keras"),
        ("nowhere/model.keras", "the folder {folder}/nowhere does not exist"),
        ("folder.keras", "folder.keras is a folder"),
        ("notes.keras", "notes.keras exists and is not a model file in Keras format: choose another name"),
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
        export_model(saved, tmp_path / name, "keras", reads=[tmp_path / "model.npz"])
    assert (tmp_path / "notes.keras").read_text() == "my notes"


def test_an_unknown_format_names_the_known_ones(saved, tmp_path):
    with pytest.raises(SoftmaxError, match="unknown export format 'pmml': choose one of keras, onnx"):
        export_model(saved, tmp_path / "model.pmml", "pmml")


def test_the_format_comes_from_the_name_unless_given(saved, tmp_path):
    assert export.format_of(tmp_path / "m.onnx") == "onnx" and export.format_of("m.keras") == "keras"
    with pytest.raises(SoftmaxError, match=r"cannot tell the export format of m.h5: end its name in .keras, .onnx"):
        export_model(saved, "m.h5")
    with pytest.raises(SoftmaxError, match="the name of a model file in ONNX format must end in .onnx"):
        export_model(saved, tmp_path / "m.keras", "onnx")


def onnx_probabilities(path, pixels):
    """Return the probabilities onnxruntime gives for pixels (images, height, width) from the ONNX file at path."""
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    inputs = (pixels.reshape(len(pixels), -1) / 255).astype(np.float32)
    return session.run(["probabilities"], {"pixels_0_to_1": inputs})[0]


def test_onnx_export_gives_our_probabilities_in_onnxruntime(saved, tmp_path):
    out = tmp_path / "model.onnx"
    export_model(saved, out)
    pixels = np.random.default_rng(1).integers(0, 256, size=(500, 28, 28), dtype=np.uint8)
    pixels[0], pixels[1] = 0, 255
    ours = predict_proba(saved.W, saved.b, features(pixels))
    assert ours.max() > 0.99 and ours.min() < 0.001  # far from uniform: the comparison means something
    np.testing.assert_allclose(onnx_probabilities(out, pixels), ours, rtol=0, atol=1e-5)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["model.npz", "model.onnx"]


def test_the_onnx_file_is_two_nodes_and_names_its_classes(saved, tmp_path):
    import json

    import onnx

    export_model(saved, tmp_path / "model.onnx")
    model = onnx.load(tmp_path / "model.onnx")
    assert [node.op_type for node in model.graph.node] == ["Gemm", "Softmax"]
    assert [value.name for value in model.graph.input] == ["pixels_0_to_1"]
    assert {prop.key: json.loads(prop.value) for prop in model.metadata_props} == {
        "class_names": DIGITS, "image_shape": [28, 28]}


def test_an_earlier_onnx_export_is_replaced_and_any_other_file_kept(saved, tmp_path):
    out = tmp_path / "model.onnx"
    export_model(saved, out)
    export_model(write_model(tmp_path / "other.npz", test_loss=0.5), out)
    (tmp_path / "notes.onnx").write_bytes(b"\x08\x07my notes")
    with pytest.raises(SoftmaxError, match="notes.onnx exists and is not a model file in ONNX format"):
        export_model(saved, tmp_path / "notes.onnx")
    assert (tmp_path / "notes.onnx").read_bytes() == b"\x08\x07my notes"


@pytest.mark.slow
def test_onnx_export_of_a_model_trained_on_mnist_matches_ours_on_the_whole_test_set(mnist, mnist_model, tmp_path):
    """The issue's bar: onnxruntime's probabilities within 1e-5 of ours on all 10,000 MNIST test images."""
    saved = write_model(tmp_path / "mnist.npz")
    saved = dataclasses.replace(saved, W=mnist_model.W.astype(np.float32), b=mnist_model.b.astype(np.float32))
    export_model(saved, tmp_path / "mnist.onnx")
    ours = predict_proba(saved.W, saved.b, features(mnist.x_test))
    theirs = onnx_probabilities(tmp_path / "mnist.onnx", mnist.x_test)
    np.testing.assert_allclose(theirs, ours, rtol=0, atol=1e-5)
    assert (theirs.argmax(axis=1) == mnist.y_test).mean() > 0.9


@pytest.mark.parametrize("format_name, layer", [("keras", "no standard Keras layer"),
                                                ("onnx", "no standard ONNX operator")])
def test_a_deskewing_model_is_refused_in_one_line_before_tensorflow_loads(tmp_path, monkeypatch, format_name, layer):
    """Deskewing is per-image moments and a shear, not a standard Keras layer: no export rather than a wrong one."""
    saved = write_model(tmp_path / "deskew.npz", preprocess="deskew", framing="mnist")
    monkeypatch.setattr(export, "import_keras", lambda: pytest.fail("TensorFlow was loaded for a refused model"))
    monkeypatch.setattr(export, "onnx_model", lambda saved: pytest.fail("onnx was used for a refused model"))
    out = tmp_path / f"deskew.{format_name}"
    with pytest.raises(SoftmaxError) as refused:
        export_model(saved, out)
    message = str(refused.value)
    assert message.startswith(f"cannot export a model with preprocess deskew to {format_name}: deskewing shears each")
    assert "\n" not in message and layer in message
    assert not out.exists()


def test_the_command_says_what_is_wrong_in_one_line(capsys, saved, tmp_path):
    from test_cli import assert_one_line_error, run

    code, out, err = run(capsys, "export", "--model", tmp_path / "model.npz", tmp_path / "model.h5")
    assert code == 1 and out == ""
    assert_one_line_error(code, err, "model.h5", ".keras, .onnx")
    assert not (tmp_path / "model.h5").exists()
    code, _, err = run(capsys, "export", "--model", tmp_path / "model.npz", "--format", "pmml", tmp_path / "m.onnx")
    assert code == 2
    assert_one_line_error(code, err, "--format")


def test_the_command_exports_onnx_by_the_name_or_the_format(capsys, saved, tmp_path):
    from test_cli import run

    code, out, _ = run(capsys, "export", "--model", tmp_path / "model.npz", tmp_path / "m.onnx")
    assert code == 0 and out.strip().endswith("m.onnx (onnx)")
    code, _, _ = run(capsys, "export", "--model", tmp_path / "model.npz", "--format", "onnx", tmp_path / "n.onnx")
    assert code == 0 and (tmp_path / "n.onnx").read_bytes() == (tmp_path / "m.onnx").read_bytes()


def test_importing_the_cli_and_export_does_not_load_tensorflow():
    loaded = subprocess.run(
        [sys.executable, "-c", "import sys, softmax_cli.cli, softmax_cli.export; "
         "print(sorted(name for name in ('keras', 'tensorflow') if name in sys.modules))"],
        capture_output=True, text=True, check=True,
    )
    assert loaded.stdout.strip() == "[]"
