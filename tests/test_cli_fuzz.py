"""The whole CLI against hostile input: hypothesis picks a command, its options and the kind and contents of the file
it is given (and its name: terminal escapes, a newline, bytes that are not UTF-8); each run is a real `softmax`
process under a memory limit and a time limit. Only two outcomes are
accepted: a correct result (exit 0, and --json output that is strict JSON), or the project's own one-line error
with the exit code the README gives. No traceback, no hang, no file of the user's changed."""

import json
import os
import resource
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from softmax_cli import run, store
from softmax_cli.config import TrainConfig
from softmax_cli.data import load_dataset
from test_safe_io import deflated_zeros, raw_zip

MEMORY_LIMIT = 2 * 2**30  # address space of each run: a bomb that inflated would hit it and fail the test
SECONDS = 60
EXIT_CODES = {0, 1, 2, 3}  # the README's (130 is for signals, which this test does not send)

OPTION_VALUES = ["0", "-1", "1", "2.5", "1e400", "1" + "0" * 400, "nan", "inf", "full", "abc", "\u00b2", "", "0x10",
                 " 3 ", "1e-400"]
SETTING_FLAGS = ["--lr", "--epochs", "--batch-size", "--momentum", "--average", "--l2", "--val-split", "--patience",
                 "--seed", "--schedule", "--loss", "--preprocess"]


def _zip(path: Path, members: dict[str, bytes], method=zipfile.ZIP_STORED) -> None:
    with zipfile.ZipFile(path, "w", compression=method) as archive:
        for name, data in members.items():
            archive.writestr(name, data)


def _npy(array: np.ndarray) -> bytes:
    import io

    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    """Every kind of file a user or an attacker might hand the tool, by name, made once; and their folder."""
    folder = tmp_path_factory.mktemp("fuzz")
    labels = np.arange(90) % 3
    pixels = (labels[:, None, None] * 80 + np.random.default_rng(0).integers(0, 40, (90, 4, 4))).astype(np.uint8)
    np.savez(folder / "tiny.npz", x_train=pixels[:60], y_train=labels[:60], x_test=pixels[60:], y_test=labels[60:])
    tiny = load_dataset(folder / "tiny.npz", name=None)
    run.train_model(tiny, TrainConfig(epochs=2, batch_size=10), folder / "model.npz")
    run.train_model(tiny, TrainConfig(epochs=3, batch_size=10), folder / "run.npz", should_stop=lambda: True)
    made = {
        "model": folder / "model.npz",
        "checkpoint": folder / "run.ckpt.npz",
        "data": folder / "tiny.npz",
        "truncated model": folder / "truncated.npz",
        "text": folder / "notes.txt",
        "toml": folder / "settings.toml",
        "bad toml": folder / "bad.toml",
        "binary": folder / "random.bin",
        "empty": folder / "empty.npz",
        "bomb": folder / "bomb.npz",
        "bzip2 model": folder / "bzip2.npz",
        "pickle": folder / "pickle.npz",
        "png": folder / "digit.png",
        "huge png": folder / "huge.png",
        "eps named png": folder / "eps.png",
        "fifo": folder / "fifo",
        "folder": folder / "sub",
        "missing": folder / "missing.npz",
        "name with terminal escapes": folder / "evil\x1b]0;PWNED\x07\x1b[2J.npz",
        "name with a newline": folder / "two\nlines.png",
        "undecodable name": folder / "latin-\udce9t\udce9.npz",  # bytes that are not UTF-8, as os.fsdecode gives them
        "device": Path("/dev/zero"),
    }
    made["truncated model"].write_bytes(made["model"].read_bytes()[:-100])
    made["name with terminal escapes"].write_bytes(made["model"].read_bytes())
    made["undecodable name"].write_bytes(made["model"].read_bytes())
    made["text"].write_text("my notes\n")
    made["toml"].write_text("lr = 0.5\nepochs = 2\n")
    made["bad toml"].write_text("lr = [[[[\n")
    made["binary"].write_bytes(np.random.default_rng(1).bytes(4096))
    made["empty"].write_bytes(b"")
    # a model-shaped zip whose W member declares MNIST's size but inflates to 3 GiB
    made["bomb"].write_bytes(raw_zip([("W.npy", deflated_zeros(3 * 1024), zipfile.ZIP_DEFLATED, 31_568, 0)]))
    with np.load(made["model"]) as arrays:
        _zip(made["bzip2 model"], {f"{k}.npy": _npy(arrays[k]) for k in arrays.files}, zipfile.ZIP_BZIP2)
    _zip(made["pickle"], {"W.npy": b"\x80\x04K\x01.", "b.npy": b"\x80\x04K\x01.", "metadata.npy": b"\x80\x04."})
    Image.fromarray(pixels[0]).resize((28, 28)).save(made["png"])
    shutil.copy(made["png"], made["name with a newline"])
    Image.new("L", (7000, 7000)).save(made["huge png"])
    made["eps named png"].write_bytes(b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\n0 0 moveto 10 10 lineto\n")
    return folder, made


@pytest.fixture
def fresh(template, tmp_path):
    """Return a function that gives each example its own copy of the template's files (a new FIFO among them)."""
    folder, made = template
    count = iter(range(10**9))

    def copy() -> tuple[Path, dict]:
        here = tmp_path / f"example-{next(count)}"
        here.mkdir()
        for path in folder.iterdir():
            shutil.copy2(path, here / path.name)
        os.mkfifo(here / "fifo")
        (here / "sub").mkdir()
        return here, {kind: path if path.parent != folder else here / path.name for kind, path in made.items()}

    return copy


def commands(path: Path, files: dict) -> st.SearchStrategy:
    """The commands that read a file of some kind at path (and the tool's own good files where it needs others)."""
    model, data, png = files["model"], files["data"], files["png"]
    return st.sampled_from([
        ["info", path, "--json"],
        ["evaluate", "--model", path, "--data", data, "--json"],
        ["evaluate", "--model", model, "--data", path],
        ["predict", "--model", path, png],
        ["predict", "--model", model, path, "--json"],
        ["train", "--data", path, "--epochs", "1", "--model", "{out}", "--quiet"],
        ["train", "--data", data, "--config", path, "--model", "{out}", "--quiet"],
        ["train", "--data", data, "--resume", path, "--model", "{out}", "--quiet"],
        ["train", "--data", data, "--model", path, "--epochs", "1", "--quiet"],
        ["train", "--data", data, "--model", "{out}", "--history", path, "--epochs", "1", "--quiet"],
        ["tune", "--data", data, "--lr", "0.3", "--batch-size", "10", "--l2", "0", "--epochs", "1", "--quiet",
         "--out", path],
    ])


def limited():
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))


def softmax(args, cwd) -> subprocess.CompletedProcess:
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
    env.pop("SOFTMAX_DATA", None)
    return subprocess.run([sys.executable, "-m", "softmax_cli", *map(str, args)], cwd=cwd, env=env,
                          capture_output=True, text=True, errors="surrogateescape", timeout=SECONDS,
                          preexec_fn=limited, stdin=subprocess.DEVNULL)


def snapshot(folder: Path) -> dict:
    """Return the bytes of every regular file in folder, by name (the FIFO and sub-folder are left alone)."""
    return {path.name: path.read_bytes() for path in folder.iterdir() if path.is_file() and not path.is_fifo()}


@pytest.mark.slow
@settings(max_examples=int(os.environ.get("FUZZ_EXAMPLES", "100")), deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=st.data())
def test_every_command_gives_a_result_or_one_clear_line(fresh, data):
    folder, made = fresh()
    # contents drawn by hypothesis too: any bytes, and a real model or checkpoint with bytes changed or cut
    made["drawn bytes"] = folder / "drawn.npz"
    made["drawn bytes"].write_bytes(data.draw(st.binary(max_size=4096), label="bytes"))
    made["mutated"] = folder / "mutated.npz"
    original = made[data.draw(st.sampled_from(["model", "checkpoint", "data"]), label="mutated kind")].read_bytes()
    position = data.draw(st.integers(0, len(original) - 1), label="position")
    changed = data.draw(st.binary(min_size=0, max_size=8), label="new bytes")
    made["mutated"].write_bytes(original[:position] + changed + original[position + len(changed):])
    kind = data.draw(st.sampled_from(sorted(made)), label="file kind")
    args = list(data.draw(commands(made[kind], made), label="command"))
    if args[0] == "train" and data.draw(st.booleans(), label="with a setting"):
        args += [data.draw(st.sampled_from(SETTING_FLAGS)), data.draw(st.sampled_from(OPTION_VALUES))]
    out = folder / "out.npz"
    args = [out if arg == "{out}" else arg for arg in args]
    before = snapshot(folder)
    models = {name for name in before if store.is_model_file(folder / name)}
    finished = softmax(args, cwd=folder)
    lines = finished.stderr.strip().splitlines()
    peak_mib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # the largest of all runs so far
    assert peak_mib < MEMORY_LIMIT / 2**20 / 2, (args, peak_mib)
    assert "Traceback" not in finished.stderr, (args, finished.stderr[-2000:])
    assert finished.returncode in EXIT_CODES, (args, finished.returncode, finished.stderr[-500:])
    # a name is printed with its control characters escaped: nothing the terminal would act on reaches it
    assert not set("\x1b\x07\r") & set(finished.stdout + finished.stderr), (args, finished.stderr[-500:])
    if finished.returncode == 0:
        if "--json" in args:
            for line in finished.stdout.splitlines():
                json.loads(line, parse_constant=lambda constant: pytest.fail(f"{constant} in JSON output"))
    else:
        assert len(lines) == 1 and lines[0].startswith("softmax: error: "), (args, finished.stderr[-1000:])
    after = snapshot(folder)
    changed = {name for name in before if after.get(name) != before[name]}
    # The only files a command may replace: a model file by a valid model (train --model model.npz), and the
    # checkpoint a finished resumed run deletes.
    assert changed <= models | {"run.ckpt.npz"}, (args, changed)
    for name in changed & models:
        store.load_model(folder / name)
