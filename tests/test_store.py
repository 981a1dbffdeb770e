"""Tests of the model file and the checkpoint: exact round trips, atomic saving, and refusing every bad file."""

import dataclasses
import errno
import io
import json
import math
import os
import pickle
import stat
import subprocess
import sys
import tempfile
import time
import zipfile

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from softmax_cli import store
from softmax_cli.config import TrainConfig
from softmax_cli.errors import SoftmaxError
from softmax_cli.model import PIXEL_SCALE
from softmax_cli.store import FORMAT_VERSION, load_checkpoint, load_model, save_checkpoint, save_model

CLASS_NAMES = ["cat", "dog", "bird"]
IMAGE_SHAPE = [2, 3]  # a tiny model: 6 features, 3 classes
FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def weights():
    rng = np.random.default_rng(0)
    return rng.normal(size=(6, 3)).astype(np.float32), rng.normal(size=3).astype(np.float32)


def metadata(**changes):
    return {
        "settings": {"lr": 0.5, "epochs": 2, "batch_size": 100},
        "class_names": CLASS_NAMES,
        "image_shape": IMAGE_SHAPE,
        "dataset": "tiny",
        "framing": "mnist",
        "preprocess": "none",
        "training_data": "0123abcd",
        "data_path": "/home/me/tiny.npz",
        "test_accuracy": 0.75,
        "test_loss": 0.5,
        "train_seconds": 0.5,
        "stopped_early": False,
        "best_epoch": None,
        "history": [{"epoch": 1, "loss": 0.9, "accuracy": 0.6}, {"epoch": 2, "loss": 0.7, "accuracy": 0.7}],
        "feature_names": None,
        "split": None,
        "added": None,
        "created": "2024-01-02T03:04:05+00:00",
        "softmax_cli_version": "0.1.0",
        **changes,
    }


def checkpoint(**changes) -> store.Checkpoint:
    """Return a valid checkpoint of a tiny run (6 features, 3 classes) after 2 of its 4 epochs, with changes."""
    rng = np.random.default_rng(1)
    history = [{"epoch": epoch, "loss": 0.9, "accuracy": 0.5, "val_loss": 0.8, "val_accuracy": 0.6, "seconds": 0.1}
               for epoch in (1, 2)]
    fields = dict(
        config=TrainConfig(epochs=4, val_split=0.2, patience=2), weights=rng.normal(size=(3, 7)).astype(np.float32),
        velocity=rng.normal(size=(3, 7)).astype(np.float32), sums=[rng.normal(size=(3, 7)), rng.normal(size=(3, 7))],
        summed_steps=[5, 5], step=10, epoch=2, scale=PIXEL_SCALE, rng=np.random.default_rng(7).bit_generator.state,
        history=history, best_val_loss=0.8, best_epoch=2, best_weights=rng.normal(size=(3, 7)).astype(np.float32),
        epochs_since_best=0, dataset="tiny", training_data="0123abcd")
    return store.Checkpoint(**{**fields, **changes})


def checkpoint_contents(checkpoint):
    """Return everything a loaded checkpoint holds, in a form that == compares exactly."""
    return {name: (value.dtype, value.shape, value.tobytes()) if isinstance(value, np.ndarray)
            else [array.tobytes() for array in value] if name == "sums" else value
            for name, value in vars(checkpoint).items()}


def write_checkpoint_members(path, arrays: dict, state: dict):
    """Write a checkpoint file by hand, as anyone can with NumPy, whatever it holds; return path."""
    state = json.dumps({**state, "kind": "checkpoint", "format_version": FORMAT_VERSION})
    np.savez(path, **arrays, state=np.array(state))
    return path


def checkpoint_members(path) -> tuple[dict, dict]:
    """Return the arrays and the JSON state of a checkpoint file, read as anyone can with NumPy."""
    with np.load(path) as archive:
        return {name: archive[name] for name in archive.files if name != "state"}, json.loads(str(archive["state"]))


def npy(array: np.ndarray, version=None) -> bytes:
    """Return the .npy bytes of array, pickling objects if it holds any (to build hostile files)."""
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, array, version=version, allow_pickle=True)
    return buffer.getvalue()


def write_zip(path, members: dict[str, bytes]):
    """Write a zip archive of raw member bytes to path and return path."""
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


def metadata_json(drop=(), **changes) -> np.ndarray:
    """Return a model file's metadata member: the valid metadata with keys changed or dropped."""
    content = {**metadata(), "kind": "model", "format_version": FORMAT_VERSION, **changes}
    for key in drop:
        del content[key]
    return np.array(json.dumps(content))


def write_model_members(path, **replaced: np.ndarray):
    """Write a model file whose members are the valid ones with some replaced (None removes one); return path."""
    W, b = weights()
    members = {"W": W, "b": b, "metadata": metadata_json(), **replaced}
    return write_zip(path, {f"{name}.npy": npy(array) for name, array in members.items() if array is not None})


def assert_refused(load, path, *fragments):
    """Assert that load(path) raises one SoftmaxError line naming the file and containing every fragment."""
    with pytest.raises(SoftmaxError) as caught:
        load(path)
    message = str(caught.value)
    assert "\n" not in message
    assert str(path) in message
    for fragment in fragments:
        assert fragment in message
    return message


@pytest.fixture
def model_path(tmp_path):
    W, b = weights()
    path = tmp_path / "model.npz"
    save_model(path, W, b, metadata())
    return path


# --- round trips -------------------------------------------------------------------------------------


def test_a_format_2_model_saved_before_data_path_was_kept_is_read_without_it(tmp_path):
    W, b = weights()
    np.savez(tmp_path / "older.npz", W=W, b=b, metadata=metadata_json(drop=["data_path"]))
    assert load_model(tmp_path / "older.npz").metadata["data_path"] is None


def test_model_round_trip_is_exact(model_path):
    W, b = weights()
    loaded = load_model(model_path)
    assert loaded.W.dtype == np.float32 and loaded.b.dtype == np.float32
    assert loaded.W.tobytes() == W.tobytes() and loaded.b.tobytes() == b.tobytes()
    assert loaded.metadata == {**metadata(), "kind": "model", "format_version": FORMAT_VERSION}
    assert loaded.class_names == ("cat", "dog", "bird")
    assert loaded.image_shape == (2, 3)


def test_anyone_can_use_the_model_file_with_two_lines_of_numpy(model_path):
    W, b = weights()
    pixels = np.random.default_rng(2).integers(0, 256, size=(50, 6))
    m = np.load(model_path, allow_pickle=False)
    predicted = np.argmax(pixels / 255 @ m["W"] + m["b"], axis=1)
    assert sorted(m.files) == ["W", "b", "metadata"]
    np.testing.assert_array_equal(predicted, np.argmax(pixels / 255 @ W + b, axis=1))
    assert json.loads(str(m["metadata"]))["class_names"] == CLASS_NAMES
    assert m["metadata"].dtype.kind == "U" and m["metadata"].ndim == 0


def test_save_model_stores_float32_and_stamps_date_and_version(tmp_path):
    W, b = weights()
    fields = metadata(test_accuracy=np.float32(0.5), train_seconds=np.float64(2.0))
    del fields["created"], fields["softmax_cli_version"]
    save_model(tmp_path / "model.npz", W.astype(np.float64), b.astype(np.float64), fields)
    loaded = load_model(tmp_path / "model.npz")
    assert loaded.W.tobytes() == W.tobytes()
    assert loaded.metadata["test_accuracy"] == 0.5 and loaded.metadata["train_seconds"] == 2.0
    assert loaded.metadata["softmax_cli_version"] == store.__version__
    assert loaded.metadata["created"].startswith("20") and loaded.metadata["created"].endswith("+00:00")


def test_loads_float64_weights_as_float32(tmp_path):
    W, b = weights()
    path = write_model_members(tmp_path / "model.npz", W=W.astype(np.float64), b=b.astype(np.float64))
    loaded = load_model(path)
    assert loaded.W.dtype == np.float32 and loaded.W.tobytes() == W.tobytes()


def test_saved_file_keeps_the_name_it_was_given(tmp_path):
    W, b = weights()
    save_model(tmp_path / "weights.model", W, b, metadata())
    assert os.listdir(tmp_path) == ["weights.model"]
    assert load_model(tmp_path / "weights.model").W.tobytes() == W.tobytes()


def test_saved_file_gets_the_usual_permissions(model_path):
    umask = os.umask(0o022)
    os.umask(umask)
    assert stat.S_IMODE(os.stat(model_path).st_mode) == 0o666 & ~umask


def test_checkpoint_round_trip_keeps_dtypes_bits_and_state(tmp_path):
    path = tmp_path / "model.ckpt.npz"
    save_checkpoint(path, checkpoint())
    assert checkpoint_contents(load_checkpoint(path)) == checkpoint_contents(checkpoint())
    resumed = np.random.default_rng()
    resumed.bit_generator.state = load_checkpoint(path).rng
    assert resumed.random() == np.random.default_rng(7).random()
    save_checkpoint(path, checkpoint(best_epoch=None, best_weights=None, best_val_loss=None, sums=[], summed_steps=[]))
    assert load_checkpoint(path).best_weights is None and load_checkpoint(path).sums == []


# --- saving: refusals and atomicity ------------------------------------------------------------------


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_refuses_to_save_non_finite_weights_and_keeps_the_old_file(model_path, bad):
    before = model_path.read_bytes()
    W, b = weights()
    W[1, 2] = bad
    with pytest.raises(SoftmaxError, match="W holds NaN or infinite values.*smaller learning rate"):
        save_model(model_path, W, b, metadata())
    assert model_path.read_bytes() == before


def test_refuses_float64_weights_beyond_float32_range(tmp_path):
    W, b = weights()
    with pytest.raises(SoftmaxError, match="W holds NaN or infinite"):
        save_model(tmp_path / "model.npz", W.astype(np.float64) * 1e300, b, metadata())
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize(
    "fields, fragment",
    [
        ({"history": None}, "metadata history must be a list"),
        ({"class_names": ["cat", "dog"]}, "metadata names 2 classes but W has 3"),
        ({"test_accuracy": float("nan")}, "not plain JSON"),
        ({"settings": object()}, "not plain JSON"),
    ],
)
def test_refuses_to_save_metadata_it_could_not_load(tmp_path, fields, fragment):
    W, b = weights()
    with pytest.raises(SoftmaxError, match=f"cannot save softmax-cli model file .*{fragment}"):
        save_model(tmp_path / "model.npz", W, b, metadata(**fields))
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize(
    "changes, fragment",
    [
        ({"velocity": np.zeros((2, 7), np.float32)}, "cannot save .* velocity has shape"),
        ({"velocity": np.full((3, 7), np.nan, np.float32)}, "refusing to save .* velocity holds NaN"),
        ({"step": -1}, "cannot save .* step is -1"),
        ({"summed_steps": [5]}, "cannot save .* sums has shape"),
        ({"history": []}, "cannot save .* history"),
        ({"best_weights": None}, "cannot save .* it holds the arrays sums, velocity, weights"),
    ],
)
def test_refuses_to_save_a_checkpoint_it_could_not_load(tmp_path, changes, fragment):
    with pytest.raises(SoftmaxError, match=fragment):
        save_checkpoint(tmp_path / "model.ckpt.npz", checkpoint(**changes))
    assert os.listdir(tmp_path) == []


def trained_checkpoint_members(tmp_path) -> tuple[dict, dict]:
    """Return the arrays and state of a checkpoint file that a real run stopped after 2 of its 5 epochs wrote."""
    from softmax_cli.train import Trainer, fit

    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, 200)
    pixels = (labels[:, None] * 80 + rng.integers(0, 40, (200, 16))).astype(np.uint8)
    trainer = Trainer(TrainConfig(epochs=5, batch_size=64, val_split=0.2, patience=3), 16, 3)
    fit(trainer, pixels[40:], labels[40:], validation=(pixels[:40], labels[:40]),
        should_stop=lambda: trainer.epoch == 2)
    save_checkpoint(tmp_path / "run.ckpt.npz", trainer.to_checkpoint("blobs", "their fingerprint"))
    return checkpoint_members(tmp_path / "run.ckpt.npz")


def assert_cannot_resume(path, *fragments):
    assert_refused(load_checkpoint, path, f"the checkpoint {path} does not hold a training run this version can "
                   "resume (", *fragments, "train without --resume to start again")


@pytest.mark.parametrize(
    "name, value",
    [("epoch", 10**30), ("step", 10**30), ("epochs_since_best", 10**30), ("epoch", -1), ("step", -1),
     ("epoch", True), ("step", 2.0), ("epochs_since_best", 3), ("best_epoch", 0), ("scale", 0.5), ("scale", 1),
     ("best_val_loss", "0.3"), ("summed_steps", [0, 5]), ("summed_steps", "5"), ("dataset", None),
     ("training_data", 3), ("rng", {"state": 1})],
)
def test_a_checkpoint_value_of_the_wrong_type_or_range_is_refused(tmp_path, name, value):
    arrays, state = trained_checkpoint_members(tmp_path)
    path = write_checkpoint_members(tmp_path / "edited.ckpt.npz", arrays, {**state, name: value})
    assert_cannot_resume(path, name if name != "rng" else "")


@pytest.mark.parametrize("name", ["rng", "step", "dataset", "summed_steps"])
def test_a_checkpoint_without_a_value_is_refused(tmp_path, name):
    arrays, state = trained_checkpoint_members(tmp_path)
    del state[name]
    assert_cannot_resume(write_checkpoint_members(tmp_path / "edited.ckpt.npz", arrays, state), repr(name))


@pytest.mark.parametrize(
    "change",
    [lambda h: h[0].update(extra=1.0), lambda h: h[0].update(loss="0.3"), lambda h: h[0].update(loss=None),
     lambda h: h[0].update(accuracy=[1]), lambda h: h[0].pop("seconds"),
     lambda h: h[0].pop("epoch"), lambda h: h[0].update(epoch=True), lambda h: h.reverse(), lambda h: h.pop(),
     lambda h: h.append("epoch")],
)
def test_a_checkpoint_history_that_training_did_not_record_is_refused(tmp_path, change):
    arrays, state = trained_checkpoint_members(tmp_path)
    change(state["history"])
    assert_cannot_resume(write_checkpoint_members(tmp_path / "edited.ckpt.npz", arrays, state), "history")


@pytest.mark.parametrize("name, shape", [("velocity", (3, 16)), ("sums", (1, 3, 17)), ("weights", (1, 17))])
def test_checkpoint_arrays_of_the_wrong_shape_are_refused(tmp_path, name, shape):
    arrays, state = trained_checkpoint_members(tmp_path)
    arrays[name] = np.zeros(shape, arrays[name].dtype)
    assert_cannot_resume(write_checkpoint_members(tmp_path / "edited.ckpt.npz", arrays, state), name)


def test_checkpoint_settings_are_checked_by_the_settings_table(tmp_path):
    arrays, state = trained_checkpoint_members(tmp_path)
    path = tmp_path / "edited.ckpt.npz"
    write_checkpoint_members(path, arrays, {**state, "settings": {**state["settings"], "lr": -1.0}})
    with pytest.raises(SoftmaxError, match=f"the checkpoint {path}: lr must be a number greater than 0") as caught:
        load_checkpoint(path)
    assert caught.value.setting == "lr"
    write_checkpoint_members(path, arrays, {**state, "settings": {"lr": 0.3, "speed": 2}})
    assert_refused(load_checkpoint, path, f"the checkpoint {path} has unknown setting(s) speed")
    write_checkpoint_members(path, arrays, {**state, "settings": ["lr"]})
    assert_cannot_resume(path, "settings")


def test_save_into_a_missing_folder_is_one_clear_error(tmp_path):
    W, b = weights()
    with pytest.raises(SoftmaxError, match="the folder .*nowhere does not exist; create it first"):
        save_model(tmp_path / "nowhere" / "model.npz", W, b, metadata())


def test_save_onto_a_folder_is_one_clear_error(tmp_path):
    W, b = weights()
    with pytest.raises(SoftmaxError, match="it is a folder; give a file name"):
        save_model(tmp_path, W, b, metadata())
    assert os.listdir(tmp_path) == []


def test_save_into_a_folder_without_write_permission_is_one_clear_error(model_path, monkeypatch):
    before = model_path.read_bytes()
    W, b = weights()

    def refuse(*args, dir, **kwargs):  # what creating a file in a read-only folder raises
        raise PermissionError(errno.EACCES, "Permission denied", os.path.join(dir, ".model.npz.tmp"))

    monkeypatch.setattr(tempfile, "mkstemp", refuse)  # chmod does not stop root, which CI may be
    with pytest.raises(SoftmaxError) as caught:
        save_model(model_path, W * 2, b, metadata())
    assert str(caught.value) == f"cannot save softmax-cli model file {model_path}: Permission denied"
    assert model_path.read_bytes() == before
    assert os.listdir(model_path.parent) == ["model.npz"]


def test_a_failed_rename_keeps_the_old_file_and_leaves_no_temporary_file(model_path, monkeypatch):
    before = model_path.read_bytes()
    W, b = weights()

    def broken_replace(source, target):
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(SoftmaxError, match="cannot save .*Input/output error"):
        save_model(model_path, W * 2, b, metadata())
    assert model_path.read_bytes() == before
    assert os.listdir(model_path.parent) == ["model.npz"]


def test_an_interrupt_mid_save_keeps_the_old_file_and_leaves_no_temporary_file(model_path, monkeypatch):
    before = model_path.read_bytes()
    W, b = weights()

    def interrupted_fsync(handle):  # the archive is fully written to the temporary file by now
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "fsync", interrupted_fsync)
    with pytest.raises(KeyboardInterrupt):
        save_model(model_path, W * 2, b, metadata())
    assert model_path.read_bytes() == before
    assert os.listdir(model_path.parent) == ["model.npz"]


def test_save_flushes_the_file_then_the_folder_to_disk(tmp_path, monkeypatch):
    synced_folders = []
    real_fsync = os.fsync

    def recording_fsync(handle):
        synced_folders.append(stat.S_ISDIR(os.fstat(handle).st_mode))
        real_fsync(handle)

    monkeypatch.setattr(os, "fsync", recording_fsync)
    W, b = weights()
    save_model(tmp_path / "model.npz", W, b, metadata())
    assert synced_folders == [False, True]


# A process that saves big models (100,000 features: 4 MB) to argv[1] for ever, alternately all ones and all twos;
# with argv[2] == "die-at-rename" it saves once and kills itself the moment it would rename the finished file.
SAVING = """
import os, signal, sys
import numpy as np
from softmax_cli.store import save_model

path, how = sys.argv[1:]
metadata = {"settings": {}, "class_names": list("0123456789"), "image_shape": [1000, 100], "dataset": "big",
            "framing": "fill", "preprocess": "none", "training_data": None, "test_accuracy": None, "test_loss": None,
            "train_seconds": 0, "stopped_early": False, "best_epoch": None, "history": []}
if how == "die-at-rename":
    os.replace = lambda source, target: os.kill(os.getpid(), signal.SIGKILL)
value = 1
while True:
    save_model(path, np.full((100_000, 10), value, np.float32), np.zeros(10), metadata)
    value = 3 - value
"""


def start_saving(path, how: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", SAVING, str(path), how])


def temporary_files(folder) -> list[str]:
    return [name for name in os.listdir(folder) if name.endswith(".tmp")]


def test_a_kill_just_before_the_rename_leaves_the_old_model_whole(model_path):
    before = model_path.read_bytes()
    saving = start_saving(model_path, "die-at-rename")
    assert saving.wait(timeout=60) == -9
    (leftover,) = temporary_files(model_path.parent)  # the new file was complete; SIGKILL left it unrenamed
    assert leftover.startswith(".model.npz.")
    assert model_path.read_bytes() == before
    assert load_model(model_path).W.tobytes() == weights()[0].tobytes()


def test_kills_in_the_middle_of_saving_leave_a_whole_model(model_path):
    rng = np.random.default_rng(0)
    killed_mid_save = 0
    for _ in range(4):
        saving = start_saving(model_path, "save-for-ever")
        try:
            started, deadline = model_path.stat().st_mtime_ns, time.monotonic() + 60
            while model_path.stat().st_mtime_ns == started:  # wait for its first save, then let it go on a while
                assert saving.poll() is None and time.monotonic() < deadline
                time.sleep(0.01)
            time.sleep(rng.uniform(0, 0.2))
            while not temporary_files(model_path.parent):  # strike while a new file is being written
                assert saving.poll() is None and time.monotonic() < deadline
                time.sleep(0.001)
        finally:
            saving.kill()
            saving.wait(timeout=60)
        killed_mid_save += bool(temporary_files(model_path.parent))
        for name in temporary_files(model_path.parent):
            os.unlink(model_path.parent / name)
        W = load_model(model_path).W
        assert W.shape == (100_000, 10) and np.unique(W).tolist() in ([1], [2])
    assert killed_mid_save > 0  # at least one kill really fell between creating the new file and renaming it


# --- loading: every kind of bad file is one clear line -----------------------------------------------


def test_missing_file(tmp_path):
    path = tmp_path / "model.npz"
    assert_refused(load_model, path, "softmax-cli model file", "does not exist: train one with `softmax train --model")
    assert_refused(load_checkpoint, path, "does not exist")


def test_folder(tmp_path):
    assert_refused(load_model, tmp_path, f"softmax-cli model file {tmp_path} is a folder: give the path of a file")


def test_unreadable_file(model_path, monkeypatch):
    def refuse(file, *args, **kwargs):  # what opening a file without read permission raises
        raise PermissionError(errno.EACCES, "Permission denied", str(file))

    monkeypatch.setattr(zipfile, "ZipFile", refuse)  # chmod does not stop root, which CI may be
    message = assert_refused(load_model, model_path, "cannot read", "Permission denied")
    assert message == f"cannot read softmax-cli model file {model_path}: Permission denied"


@pytest.mark.parametrize("content", [b"", b"hello, I am a text file\n", b"PK\x03\x04" + bytes(100)])
def test_not_an_archive(tmp_path, content):
    path = tmp_path / "model.npz"
    path.write_bytes(content)
    assert_refused(load_model, path, "is not a valid softmax-cli model file (not an .npz archive",
                   "train one with `softmax train --model` and a new file name")
    assert_refused(load_checkpoint, path, "is not a valid softmax-cli training checkpoint (not an .npz archive")


def test_truncated_file(model_path):
    model_path.write_bytes(model_path.read_bytes()[:-100])
    assert_refused(load_model, model_path, "not an .npz archive")


def test_bit_flip_in_the_weights_is_caught_by_the_checksum(model_path):
    with zipfile.ZipFile(model_path) as archive:
        entry = archive.getinfo("W.npy")
    data = bytearray(model_path.read_bytes())
    data[entry.header_offset + 200] ^= 0x10  # inside W's float data, past the local and .npy headers
    model_path.write_bytes(bytes(data))
    assert_refused(load_model, model_path, "damaged archive", "CRC")


def test_member_marked_encrypted(model_path):
    data = bytearray(model_path.read_bytes())
    central_directory = data.index(b"PK\x01\x02")
    data[central_directory + 8] |= 0x1  # the "encrypted" flag: zipfile raises RuntimeError on reading
    model_path.write_bytes(bytes(data))
    assert_refused(load_model, model_path, "damaged archive", "encrypted")


@pytest.mark.parametrize(
    "member, fragment",
    [
        ("extra.npy", "it holds W, b, metadata, extra; expected exactly W, b, metadata"),
        ("notes.txt", "it holds W, b, metadata, notes.txt; expected exactly"),
        ("folder/", "it holds W, b, metadata, folder/; expected exactly"),
    ],
)
def test_unexpected_member_in_a_model_file(tmp_path, member, fragment):
    path = tmp_path / "model.npz"
    with zipfile.ZipFile(write_model_members(path), "a") as archive:
        archive.writestr(member, npy(np.zeros(2)))
    assert_refused(load_model, path, fragment)


def test_member_that_is_not_an_npy_file(tmp_path):
    W, b = weights()
    path = write_zip(tmp_path / "model.npz", {"W": npy(W), "b.npy": npy(b), "metadata.npy": npy(metadata_json())})
    assert_refused(load_model, path, "member W is not a .npy array")


def test_missing_member(tmp_path):
    path = write_model_members(tmp_path / "model.npz", b=None)
    assert_refused(load_model, path, "it holds W, metadata; expected exactly W, b, metadata")


def test_plain_npz_without_metadata(tmp_path):
    W, b = weights()
    path = tmp_path / "model.npz"
    with open(path, "wb") as file:
        np.savez(file, W=W, b=b)
    assert_refused(load_model, path, "it holds W, b but no metadata")
    assert_refused(load_checkpoint, path, "it holds W, b but no state")


def test_duplicate_member(tmp_path):
    path = write_model_members(tmp_path / "model.npz")
    with pytest.warns(UserWarning, match="Duplicate name"), zipfile.ZipFile(path, "a") as archive:
        archive.writestr("W.npy", npy(np.zeros((6, 3), np.float32)))
    assert_refused(load_model, path, "the same member name twice")


def test_zip_bomb_is_refused_before_any_member_is_read(tmp_path, monkeypatch):
    path = tmp_path / "model.npz"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        with archive.open("W.npy", "w", force_zip64=True) as member:
            zeros = bytes(2**20)
            for _ in range(66):  # more than the 64 MiB of weights, its bias and header allowed
                member.write(zeros)
        archive.writestr("b.npy", npy(weights()[1]))
        archive.writestr("metadata.npy", npy(metadata_json()))
    assert path.stat().st_size < 2**20

    def no_reading(*args, **kwargs):
        raise AssertionError("a member was opened")

    monkeypatch.setattr(zipfile.ZipFile, "open", no_reading)
    assert_refused(load_model, path, f"W would take {66 * 2**20} bytes, more than the {store.MAX_MEMBER_BYTES} allowed")


def test_many_members_together_may_not_exceed_the_total_limit(tmp_path, monkeypatch):
    path = tmp_path / "model.ckpt.npz"
    save_checkpoint(path, checkpoint())
    monkeypatch.setattr(store, "CHECKPOINT", dataclasses.replace(store.CHECKPOINT, max_total_bytes=300))
    assert_refused(load_checkpoint, path, "its members would take more than the 300 bytes allowed")


def test_header_claiming_a_huge_array_is_refused_without_allocating_it(tmp_path):
    W, _ = weights()
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f4", "fortran_order": False, "shape": (10**12, 3)})
    path = write_model_members(tmp_path / "model.npz")
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("W.npy", header.getvalue() + W.tobytes())
        archive.writestr("b.npy", npy(weights()[1]))
        archive.writestr("metadata.npy", npy(metadata_json()))
    assert_refused(load_model, path, "an array's data does not match its header")


def test_unsupported_npy_version(tmp_path):
    path = tmp_path / "model.npz"
    W, b = weights()
    write_zip(path, {"W.npy": npy(W, version=(3, 0)), "b.npy": npy(b), "metadata.npy": npy(metadata_json())})
    assert_refused(load_model, path, "unsupported .npy version (3, 0)")


class CreatesFolder:
    """Unpickling this runs code: it creates the folder at path."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return os.mkdir, (self.path,)


def hostile_files(tmp_path, marker):
    """Return files whose members would run code (create marker) if anything unpickled them."""
    W, b = weights()
    object_array = tmp_path / "object-array.npz"
    write_zip(object_array, {"W.npy": npy(np.array([CreatesFolder(marker)], dtype=object)), "b.npy": npy(b),
                             "metadata.npy": npy(metadata_json())})
    raw_pickle = tmp_path / "raw-pickle.npz"
    write_zip(raw_pickle, {"W.npy": npy(W), "b.npy": npy(b), "metadata.npy": pickle.dumps(CreatesFolder(marker))})
    checkpoint = tmp_path / "object-array.ckpt.npz"
    write_zip(checkpoint, {"velocity_W.npy": npy(np.array([CreatesFolder(marker)], dtype=object)),
                           "state.npy": pickle.dumps(CreatesFolder(marker))})
    return object_array, raw_pickle, checkpoint


def test_hostile_files_would_really_run_code_if_unpickled(tmp_path):
    marker = tmp_path / "code-ran"
    object_array, raw_pickle, _ = hostile_files(tmp_path, marker)
    np.load(object_array, allow_pickle=True)["W"]
    assert marker.is_dir()
    marker.rmdir()
    with zipfile.ZipFile(raw_pickle) as archive:
        pickle.loads(archive.read("metadata.npy"))
    assert marker.is_dir()


def test_pickles_are_never_unpickled(tmp_path):
    marker = tmp_path / "code-ran"
    object_array, raw_pickle, checkpoint = hostile_files(tmp_path, marker)
    assert_refused(load_model, object_array, "it holds an array of object (only numbers and text are read")
    assert_refused(load_model, raw_pickle, "not a valid softmax-cli model file")
    assert_refused(load_checkpoint, checkpoint, "not a valid softmax-cli training checkpoint")
    assert not marker.exists()


W0, B0 = weights()


@pytest.mark.parametrize(
    "replaced, fragment",
    [
        ({"W": W0.astype(np.int32)}, "W has dtype int32, expected float32 or float64"),
        ({"W": W0.astype(np.float16)}, "W has dtype float16"),
        ({"b": B0.astype(np.complex64)}, "it holds an array of complex64"),
        ({"b": np.array(["a", "b", "c"])}, "b has dtype <U1"),
        ({"metadata": np.array(b"{}")}, "it holds an array of |S2 (only numbers and text are read"),
        ({"metadata": np.array([str(metadata_json())])}, "not a JSON string"),
        ({"metadata": np.array(3.0)}, "not a JSON string"),
        ({"W": W0[:, 0]}, "W has shape (6,), expected (features, classes)"),
        ({"W": W0[None]}, "W has shape (1, 6, 3)"),
        ({"W": W0[:, :1], "b": B0[:1]}, "with at least 2 classes"),
        ({"b": B0[None]}, "b has shape (1, 3), expected (3,)"),
        ({"b": B0[:2]}, "b has shape (2,), expected (3,) to match W's 3 classes"),
        ({"W": np.where(np.eye(6, 3) > 0, np.nan, W0).astype(np.float32)}, "W holds NaN or infinite values"),
        ({"b": np.array([0, np.inf, 0], np.float32)}, "b holds NaN or infinite values"),
        ({"W": W0.astype(np.float64) * 1e300}, "W holds NaN or infinite values"),
        ({"metadata": np.array("{not json")}, "metadata is not JSON"),
        ({"metadata": np.array("[1, 2]")}, "metadata is a JSON list, not an object"),
        ({"metadata": np.array('{"format_version": NaN}')}, "NaN is not allowed"),
        ({"metadata": np.array("[" * 100_000)}, "metadata is not JSON"),
        ({"metadata": metadata_json(drop=["format_version"])}, "no valid format_version (got None)"),
        ({"metadata": metadata_json(format_version="1")}, "no valid format_version (got '1')"),
        ({"metadata": metadata_json(format_version=0)}, "no valid format_version (got 0)"),
        ({"metadata": metadata_json(format_version=True)}, "no valid format_version (got True)"),
        ({"metadata": metadata_json(kind="checkpoint")}, "metadata says kind 'checkpoint', expected 'model'"),
        ({"metadata": metadata_json(drop=["kind"])}, "metadata says kind None"),
        ({"metadata": metadata_json(drop=["class_names", "history"])}, "metadata lacks class_names, history"),
        ({"metadata": metadata_json(class_names=[1, 2, 3])}, "metadata class_names must be a list of 2 to 1000"),
        ({"metadata": metadata_json(class_names=["a", "b"])}, "metadata names 2 classes but W has 3"),
        ({"metadata": metadata_json(image_shape=[3, 3])}, "image_shape [3, 3] does not give W's 6 features"),
        ({"metadata": metadata_json(image_shape=[1, 2, 3])}, "image_shape must be [height, width]"),
        ({"metadata": metadata_json(image_shape=[2.0, 3.0])}, "image_shape must be [height, width]"),
        ({"metadata": metadata_json(settings=[])}, "metadata settings must be an object"),
        ({"metadata": metadata_json(test_accuracy="high")}, "test_accuracy must be a number from 0 to 1"),
        ({"metadata": metadata_json(test_accuracy=1.5)}, "test_accuracy must be a number from 0 to 1"),
        ({"metadata": metadata_json(train_seconds=-1)}, "train_seconds must be a number of seconds"),
        ({"metadata": metadata_json(history=[1, 2])}, "history must be a list of epochs"),
        ({"metadata": metadata_json(dataset=None)}, "metadata dataset must be a data set's name"),
        ({"metadata": metadata_json(history=[{"epoch": 1, "loss": "0.5"}])}, "history must be a list of epochs"),
        ({"metadata": metadata_json(history=[{"epoch": 1, "loss": None}])}, "history must be a list of epochs"),
        ({"metadata": metadata_json(history=[{"epoch": 1, "loss": [0.5]}])}, "history must be a list of epochs"),
        ({"metadata": metadata_json(history=[{"epoch": 1, "loss": {"a": 1}}])}, "history must be a list of epochs"),
        ({"metadata": metadata_json(history=[{"epoch": 1, "loss": True}])}, "history must be a list of epochs"),
        ({"metadata": metadata_json(history=[{"epoch": 1, "loss": 1e999}])}, "Infinity is not allowed"),
        ({"metadata": metadata_json(history=[{"loss": 0.5}])}, "history must be a list of epochs"),
        ({"metadata": metadata_json(history=[{"epoch": 1, "notes": 0.5}])}, "history must be a list of epochs"),
        ({"metadata": metadata_json(class_names=["a", "$\\foo$", "c"])}, "printable strings without $"),
        ({"metadata": metadata_json(class_names=["a", "\udc80", "c"])}, "printable strings without $"),
        ({"metadata": metadata_json(class_names=["a", "two\nlines", "c"])}, "printable strings without $"),
        ({"metadata": metadata_json(class_names=["a", "", "c"])}, "printable strings without $"),
        ({"metadata": metadata_json(best_epoch=10**400)}, "a whole number of 401 digits, too large"),
        ({"metadata": metadata_json(framing="sideways")}, "metadata framing must be how predict frames"),
        ({"metadata": metadata_json(preprocess="blur")}, "metadata preprocess must be one of none, deskew"),
        ({"metadata": metadata_json(feature_names=["a", "b"])}, "metadata names 2 features but W has 6"),
        ({"metadata": metadata_json(feature_names=["a", 1])}, "feature_names must be a table's feature names"),
        ({"metadata": metadata_json(split={"seed": 0})}, "split must be null, or how the tool split the data"),
    ],
)
def test_invalid_model_contents(tmp_path, replaced, fragment):
    path = write_model_members(tmp_path / "model.npz", **replaced)
    message = assert_refused(load_model, path, "is not a valid softmax-cli model file (", fragment,
                             "): give a model file `softmax train` saved, or train one with `softmax train --model` "
                             "and a new file name")
    assert message.count(str(path)) == 1  # the advice never names the file: following it must not replace it


def test_a_huge_value_in_the_message_is_cut_short(tmp_path):
    path = write_model_members(tmp_path / "model.npz", metadata=metadata_json(dataset=["x" * 10_000]))
    message = assert_refused(load_model, path, "metadata dataset must be a data set's name", "xxx…)")
    assert len(message.replace(str(path), "")) < 300


def test_newer_format_says_upgrade(tmp_path):
    path = write_model_members(tmp_path / "model.npz", metadata=metadata_json(format_version=FORMAT_VERSION + 1))
    assert_refused(load_model, path, f"written by a newer softmax-cli (format version {FORMAT_VERSION + 1};",
                   "upgrade softmax-cli")


def test_null_test_accuracy_is_allowed(tmp_path):
    path = write_model_members(tmp_path / "model.npz", metadata=metadata_json(test_accuracy=None))
    assert load_model(path).metadata["test_accuracy"] is None


def test_a_checkpoint_is_never_taken_for_a_model_nor_the_reverse(tmp_path, model_path):
    checkpoint_path = tmp_path / "model.ckpt.npz"
    save_checkpoint(checkpoint_path, checkpoint())
    assert_refused(load_model, checkpoint_path, "is a softmax-cli training checkpoint, not a softmax-cli model file: "
                   "give the model file `softmax train` saves")
    assert_refused(load_checkpoint, model_path, "is a softmax-cli model file, not a softmax-cli training checkpoint: "
                   "give the checkpoint `softmax train` writes")


@pytest.mark.parametrize(
    "members, fragment",
    [
        ({"W.npy": npy(np.array(["x"])), "state.npy": npy(np.array('{"kind": "checkpoint", "format_version": 1}'))},
         "W has dtype <U1, expected numbers"),
        ({"W.npy": npy(np.array([np.nan])), "state.npy": npy(np.array('{"kind": "checkpoint", "format_version": 1}'))},
         "W holds NaN or infinite values"),
        ({"state.npy": npy(np.array('{"kind": "model", "format_version": 1}'))},
         "state says kind 'model', expected 'checkpoint'"),
        ({"velocity-W.npy": npy(np.zeros(2)), "state.npy": npy(np.array('{"kind": "checkpoint", "format_version": 1}'))},
         "'velocity-W' is not a plain identifier"),
        ({"../W.npy": npy(np.zeros(2)), "state.npy": npy(np.array('{"kind": "checkpoint", "format_version": 1}'))},
         "'../W' is not a plain identifier"),
        ({"notes.txt": b"hi", "state.npy": npy(np.array('{"kind": "checkpoint", "format_version": 1}'))},
         "'notes.txt' is not a plain identifier"),
    ],
)
def test_invalid_checkpoint_contents(tmp_path, members, fragment):
    path = write_zip(tmp_path / "model.ckpt.npz", members)
    assert_refused(load_checkpoint, path, "is not a valid softmax-cli training checkpoint (", fragment,
                   "): delete it to train from the start")


# --- fuzzing: whatever the bytes, a clear error or exactly what was saved ----------------------------


@pytest.fixture(scope="module")
def saved_files(tmp_path_factory):
    """Return the bytes of a valid model file and of a valid checkpoint, by kind."""
    folder = tmp_path_factory.mktemp("valid")
    W, b = weights()
    save_model(folder / "model.npz", W, b, metadata())
    save_checkpoint(folder / "model.ckpt.npz", checkpoint())
    return {"model": (folder / "model.npz").read_bytes(), "checkpoint": (folder / "model.ckpt.npz").read_bytes()}


def model_contents(model):
    """Return everything a loaded model holds, in a form that == compares exactly."""
    return model.W.dtype, model.W.tobytes(), model.b.tobytes(), model.metadata


def assert_valid_model(model):
    W, b = model.W, model.b
    assert W.dtype == b.dtype == np.float32 and W.ndim == 2 and b.shape == (W.shape[1],)
    assert np.isfinite(W).all() and np.isfinite(b).all()
    assert len(model.class_names) == W.shape[1] and math.prod(model.image_shape) == W.shape[0]


def assert_valid_checkpoint(checkpoint):
    shape = checkpoint.weights.shape
    assert checkpoint.weights.dtype == checkpoint.velocity.dtype == np.float32 and checkpoint.velocity.shape == shape
    assert all(block.dtype == np.float64 and block.shape == shape for block in checkpoint.sums)
    assert len(checkpoint.history) == checkpoint.epoch <= checkpoint.config.epochs


# For each kind of file: how to load it, what it holds, and what a valid one looks like.
KINDS = {
    "model": (load_model, model_contents, assert_valid_model),
    "checkpoint": (load_checkpoint, checkpoint_contents, assert_valid_checkpoint),
}


@st.composite
def damaged(draw, original: bytes) -> bytes:
    """Return original after one to three bit flips, truncations or inserted bytes."""
    data = bytearray(original)
    for _ in range(draw(st.integers(1, 3))):
        at = draw(st.integers(0, max(len(data) - 1, 0)))
        how = draw(st.sampled_from(["flip", "truncate", "insert"]))
        if how == "flip" and data:
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif how == "truncate":
            del data[at:]
        else:
            data.insert(at, draw(st.integers(0, 255)))
    return bytes(data)


@st.composite
def damaged_inside(draw, original: bytes) -> bytes:
    """Return original zipped again after damaging one member's bytes, so that every checksum holds."""
    with zipfile.ZipFile(io.BytesIO(original)) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    name = draw(st.sampled_from(sorted(members)))
    members[name] = draw(damaged(members[name]))
    return write_zip(io.BytesIO(), members).getvalue()


def load_or_refuse(load, path, content: bytes):
    """Write content to path and return what load(path) gives, or None after checking that its error is one line."""
    path.write_bytes(content)
    try:
        return load(path)
    except SoftmaxError as e:
        assert "\n" not in str(e)
        return None


@FUZZ
@given(content=st.binary(max_size=3000))
def test_random_bytes_are_refused(tmp_path, content):
    assert load_or_refuse(load_model, tmp_path / "random.npz", content) is None
    assert load_or_refuse(load_checkpoint, tmp_path / "random.npz", content) is None


@pytest.mark.parametrize("kind", KINDS)
@FUZZ
@given(data=st.data())
def test_damaged_file_is_refused_or_loads_exactly_as_saved(tmp_path, saved_files, kind, data):
    # CRC-32 guards every member's bytes, so a damaged file that still loads holds exactly what was saved.
    load, contents, _ = KINDS[kind]
    loaded = load_or_refuse(load, tmp_path / "damaged.npz", data.draw(damaged(saved_files[kind])))
    if loaded is not None:
        assert contents(loaded) == contents(load_or_refuse(load, tmp_path / "intact.npz", saved_files[kind]))


@pytest.mark.parametrize("kind", KINDS)
@FUZZ
@given(data=st.data())
def test_file_with_damaged_members_is_refused_or_valid(tmp_path, saved_files, kind, data):
    load, _, assert_valid = KINDS[kind]
    loaded = load_or_refuse(load, tmp_path / "damaged.npz", data.draw(damaged_inside(saved_files[kind])))
    if loaded is not None:
        assert_valid(loaded)


# --- the guarded door: bombs, FIFOs, huge numbers, strict JSON, and telling a model file from other files ---


def test_a_small_bzip2_model_that_would_inflate_to_gigabytes_is_refused_at_once(tmp_path):
    W, b = weights()
    path = tmp_path / "model.npz"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("W.npy", npy(W), compress_type=zipfile.ZIP_BZIP2)
        archive.writestr("b.npy", npy(b))
        archive.writestr("metadata.npy", npy(metadata_json()))
    started = time.perf_counter()
    assert_refused(load_model, path, "W.npy is compressed with method 12; only stored and deflated members are read")
    assert time.perf_counter() - started < 1


def test_a_fifo_given_as_a_model_or_checkpoint_is_refused_without_waiting(tmp_path):
    fifo = tmp_path / "model.npz"
    os.mkfifo(fifo)
    assert_refused(load_model, fifo, "is not a regular file (a FIFO)")
    assert_refused(load_checkpoint, fifo, "is not a regular file (a FIFO)")


@pytest.mark.parametrize("counter", ["epoch", "step"])
def test_checkpoint_counters_too_large_to_mean_anything_are_refused(tmp_path, counter):
    state = json.dumps({"epoch": 2, "kind": "checkpoint", "format_version": FORMAT_VERSION})
    state = state.replace('"epoch": 2', f'"{counter}": {10**400}', 1)
    path = write_zip(tmp_path / "model.ckpt.npz", {"W.npy": npy(np.zeros(2)), "state.npy": npy(np.array(state))})
    assert_refused(load_checkpoint, path, "a whole number of 401 digits, too large to mean anything",
                   "delete it to train from the start")


def test_a_generators_128_bit_state_still_loads(tmp_path):
    path = tmp_path / "model.ckpt.npz"
    rng = np.random.default_rng(7).bit_generator.state
    save_checkpoint(path, checkpoint(rng={**rng, "state": {"state": 2**128 - 1, "inc": 2**127 + 1}}))
    assert load_checkpoint(path).rng["state"]["state"] == 2**128 - 1


@pytest.mark.parametrize("history", [[{"epoch": 1, "loss": float("inf")}], [{"epoch": 1, "loss": np.float32("nan")}]])
def test_saving_refuses_non_finite_figures_as_strict_json_would(tmp_path, history):
    W, b = weights()
    with pytest.raises(SoftmaxError, match="cannot save softmax-cli model file .*its metadata is not plain JSON"):
        save_model(tmp_path / "model.npz", W, b, metadata(history=history))
    assert os.listdir(tmp_path) == []


def test_model_and_checkpoint_files_are_told_from_other_files_cheaply(tmp_path, model_path):
    checkpoint_path = tmp_path / "model.ckpt.npz"
    save_checkpoint(checkpoint_path, checkpoint())
    data = tmp_path / "data.npz"
    np.savez(data, x_train=np.zeros(3), y_train=np.zeros(3))
    notes = tmp_path / "notes.txt"
    notes.write_text("my notes")
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    others = [data, notes, fifo, tmp_path, tmp_path / "missing.npz", "/dev/zero"]
    assert store.is_model_file(model_path) and not store.is_checkpoint_file(model_path)
    assert store.is_checkpoint_file(checkpoint_path) and not store.is_model_file(checkpoint_path)
    assert not any(store.is_model_file(path) or store.is_checkpoint_file(path) for path in others)


def test_a_model_can_only_replace_a_model_file_and_never_an_input(tmp_path, model_path):
    from softmax_cli.safe_io import check_destination

    check_destination(model_path, "model file", is_kind=store.is_model_file)
    notes = tmp_path / "notes.txt"
    notes.write_text("my notes")
    with pytest.raises(SoftmaxError, match="notes.txt exists and is not a model file: choose another name"):
        check_destination(notes, "model file", is_kind=store.is_model_file)
    with pytest.raises(SoftmaxError, match="which this command reads"):
        check_destination(model_path, "model file", is_kind=store.is_model_file, reads=[model_path])
