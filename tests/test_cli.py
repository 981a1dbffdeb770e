"""The `softmax` command end to end: real data, real files, and every user mistake ending in one clear line."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner

from softmax_cli.cli import cli, main
from softmax_cli.store import save_model
from test_store import metadata, weights


def run(capsys, *args):
    """Run `softmax ARGS` in this process; return (exit code, stdout, stderr)."""
    with pytest.raises(SystemExit) as exit_info:
        main(list(map(str, args)))
    out, err = capsys.readouterr()
    return exit_info.value.code, out, err


def assert_one_line_error(code, err, *phrases):
    assert code != 0
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("softmax: error:")
    assert "Traceback" not in err
    for phrase in phrases:
        assert phrase in lines[0]


def test_help_lists_the_commands(capsys):
    code, out, _ = run(capsys, "--help")
    assert code == 0
    for command in ("train", "evaluate", "predict"):
        assert command in out


def test_train_help_shows_defaults(capsys):
    code, out, _ = run(capsys, "train", "--help")
    assert code == 0
    assert "[default: 0.5]" in out and "SOFTMAX_DATA" in out


@pytest.mark.parametrize(
    "args, phrase",
    [
        (["train", "--lr", "0"], "--lr"),
        (["train", "--lr", "-1"], "--lr"),
        (["train", "--epochs", "0"], "--epochs"),
        (["train", "--batch-size", "0"], "--batch-size"),
        (["train", "--batch-size", "many"], "--batch-size"),
        (["train", "--batch-size", "1.5"], "--batch-size"),
        (["train", "--epochs", "2.5"], "--epochs"),
        (["train", "--epochs", "1" + "0" * 400], "--epochs"),
        (["train", "--batch-size", "\u00b2"], "--batch-size"),
        (["train", "--seed", "-1"], "--seed"),
        (["tune", "--seed", "-1"], "--seed"),
        (["tune", "--epochs", "1" + "0" * 400], "--epochs"),
        (["tune", "--lr", "0.1,abc"], "--lr"),
        (["train", "--schedule", "fast"], "--schedule"),
        (["train", "--dataset", "bogus"], "--dataset must be one of mnist, fashion_mnist, digits"),
        (["export", "m.keras", "--format", "pmml"], "--format must be one of keras, onnx, got 'pmml'"),
        (["predict", "--top-k", "0", "x.png"], "--top-k must be a whole number at least 1"),
        (["tune", "--val-split", "abc"], "--val-split must be a number greater than 0"),
        (["serve", "--port", "70000"], "--port must be a whole number at least 0 and at most 65535"),
        (["bogus"], "No such command"),
        (["train", "--patience", "3"], "--patience needs a validation split to watch: set --val-split too"),
        (["train", "--config", "missing.toml"], "config file missing.toml does not exist: give --config a TOML"),
        (["tune", "--config", "missing.toml"], "preset's name (default, tutorial, best)"),
    ],
)
def test_user_mistakes_are_one_line(capsys, args, phrase):
    code, out, err = run(capsys, *args)
    assert code == 2
    assert_one_line_error(code, err, phrase)
    assert "Invalid value" not in err and "is not a valid" not in err  # the tool's own words, not Click's


def test_softmax_alone_shows_the_help_as_help(capsys):
    code, out, err = run(capsys)
    assert code == 0 and err == ""
    assert "Usage: softmax" in out


def test_the_top_level_help_summarises_every_command_in_full(capsys):
    code, out, _ = run(capsys, "--help")
    commands = out.split("Commands:")[1]
    for command in ("train", "tune", "evaluate", "predict", "info", "export", "serve"):
        assert f"\n  {command} " in commands
    assert "..." not in commands


@pytest.mark.parametrize("args", [["evaluate"], ["info"], ["predict", "x.png"], ["export", "m.keras"]])
def test_a_missing_model_file_says_to_train_one_first(capsys, tmp_path, monkeypatch, args):
    monkeypatch.chdir(tmp_path)
    code, _, err = run(capsys, *args, *(["--model", "none.npz"] if args[0] != "info" else ["none.npz"]))
    assert code == 1
    assert_one_line_error(code, err, "none.npz", "softmax train")


def test_patience_without_a_validation_split_is_refused_in_flags(capsys, tmp_path):
    code, _, err = run(capsys, "train", "--patience", "3", "--model", tmp_path / "m.npz")
    assert_one_line_error(code, err, "--patience")
    assert not (tmp_path / "m.npz").exists()


def test_a_config_file_error_names_the_setting_as_the_file_does(capsys, tmp_path):
    config = tmp_path / "c.toml"
    config.write_text("lr = -1\n")
    code, _, err = run(capsys, "train", "--config", config, "--model", tmp_path / "m.npz")
    assert_one_line_error(code, err, "lr must be", str(config))
    assert "--lr" not in err


def test_a_file_that_is_not_a_model(capsys, tmp_path):
    fake = tmp_path / "model.npz"
    fake.write_text("not a model")
    code, _, err = run(capsys, "evaluate", "--model", fake)
    assert_one_line_error(code, err, "model.npz")
    assert fake.read_text() == "not a model"


def test_data_folder_without_a_data_set(capsys, tmp_path):
    model = tmp_path / "model.npz"
    code, _, err = run(capsys, "train", "--data", tmp_path, "--model", model, "--quiet")
    assert_one_line_error(code, err, str(tmp_path))
    assert not model.exists()


def test_no_traceback_in_a_real_process(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "softmax_cli", "predict", "--model", tmp_path / "none.npz", "a.png"],
        capture_output=True, text=True,
    )
    assert result.returncode == 1
    assert_one_line_error(result.returncode, result.stderr, "none.npz")


@pytest.mark.slow
def test_train_evaluate_predict_on_real_mnist(capsys, tmp_path, mnist_path):
    from PIL import Image

    model = tmp_path / "model.npz"
    code, out, err = run(capsys, "train", "--epochs", "2", "--data", mnist_path, "--model", model, "--json")
    assert code == 0, err
    summary = json.loads(out)
    assert summary["epochs"] == 2 and summary["model"] == str(model)
    assert 0.90 < summary["test_accuracy"] <= 1 and summary["train_seconds"] > 0

    # the file is usable with two lines of plain NumPy, and agrees with the reported accuracy
    with np.load(mnist_path / "mnist.npz") as data:
        x_test, y_test = data["x_test"], data["y_test"]
    weights = np.load(model, allow_pickle=False)
    predicted = np.argmax(x_test.reshape(-1, 784) / 255 @ weights["W"] + weights["b"], axis=1)
    assert (predicted == y_test).mean() == pytest.approx(summary["test_accuracy"], abs=1e-4)
    metadata = json.loads(str(weights["metadata"]))
    assert metadata["settings"]["epochs"] == 2 and len(metadata["history"]) == 2

    code, out, err = run(capsys, "evaluate", "--model", model, "--data", mnist_path, "--json")
    assert code == 0, err
    report = json.loads(out)
    assert report["accuracy"] == pytest.approx(summary["test_accuracy"])
    assert np.array(report["confusion_matrix"]).sum() == 10000
    assert set(report["per_class"]) == {str(d) for d in range(10)}

    code, out, _ = run(capsys, "evaluate", "--model", model, "--data", mnist_path)
    assert "precision" in out and "confusion matrix" in out

    paths = []
    for i in range(20):
        path = tmp_path / f"digit{i}.png"
        Image.fromarray(x_test[i]).save(path)
        paths.append(path)
    code, out, err = run(capsys, "predict", "--model", model, "--json", *paths)
    assert code == 0, err
    rows = [json.loads(line) for line in out.splitlines()]
    assert [row["path"] for row in rows] == [str(p) for p in paths]
    for row in rows:
        assert sum(row["probabilities"]) == pytest.approx(1, abs=1e-5)
    correct = sum(row["label"] == str(y) for row, y in zip(rows, y_test[:20]))
    assert correct >= 17

    code, out, _ = run(capsys, "predict", "--model", model, "--top-k", "3", paths[0])
    assert code == 0 and out.count("%") == 3


def test_help_imports_no_numpy_and_no_heavy_library():
    """`softmax --help` should answer at once: NumPy alone takes a tenth of a second to import."""
    script = ("import sys\nfrom softmax_cli.cli import main\ntry:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
              "print(sorted({'numpy', 'sklearn', 'tensorflow', 'matplotlib', 'starlette', 'uvicorn', 'PIL'}"
              " & set(sys.modules)))")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert result.stdout.splitlines()[-1] == "[]", result.stderr


# --- Click's conventions: CliRunner sees what the process does, importing changes nothing ---------------------

EVIL = "evil\x1b]0;PWNED\x07\x1b[2J.png"


@pytest.fixture
def files(tmp_path):
    """A folder with a tiny model (2x3 images, 3 classes), an image it reads, and files that are not what they claim."""
    W, b = weights()
    save_model(tmp_path / "model.npz", W, b, metadata())
    from PIL import Image

    pixels = np.zeros((30, 30), np.uint8)
    pixels[5:25, 12:18] = 255
    Image.fromarray(pixels).save(tmp_path / "digit.png")
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "not-a-model.npz").write_text("not a model")
    (tmp_path / EVIL).write_bytes(b"")
    return tmp_path


ERROR_CASES = {
    "bad setting": (["train", "--lr", "0"], 2),
    "unknown command": (["bogus"], 2),
    "unknown option of the group": (["--bogus"], 2),
    "unknown option of a command": (["info", "--bogus"], 2),
    "missing argument": (["predict"], 2),
    "options that do not go together": (["predict", "--json", "--csv", "digit.png"], 2),
    "a usage error of the command": (["evaluate", "--compare-with", "x.npz"], 2),
    "missing model": (["info", "missing.npz"], 1),
    "not a model": (["evaluate", "--model", "not-a-model.npz"], 1),
    "missing config file": (["train", "--config", "missing.toml"], None),
    "unreadable image": (["predict", "empty.png"], 1),
    "some images unreadable": (["predict", "digit.png", "empty.png"], 3),
    "a name with terminal escapes": (["predict", EVIL], 1),
    "a name with a newline": (["info", "two\nlines.npz"], 1),
    "an unknown command with escapes": ([EVIL], 2),
}


@pytest.mark.parametrize("case", ERROR_CASES)
def test_clirunner_and_the_process_agree_on_every_error(files, monkeypatch, case):
    args, expected = ERROR_CASES[case]
    environment = {k: v for k, v in os.environ.items() if k not in ("SOFTMAX_MODEL", "SOFTMAX_DATA")}
    process = subprocess.run([sys.executable, "-m", "softmax_cli", *args], cwd=files, env=environment,
                             capture_output=True, text=True, errors="surrogateescape")
    monkeypatch.chdir(files)
    for name in ("SOFTMAX_MODEL", "SOFTMAX_DATA"):
        monkeypatch.delenv(name, raising=False)
    try:  # Click before 8.2 (the floors' CI run) mixes stderr into output unless told not to
        runner = CliRunner(mix_stderr=False)
    except TypeError:
        runner = CliRunner()
    result = runner.invoke(cli, args, prog_name="softmax")
    assert isinstance(result.exception, SystemExit)  # not a traceback CliRunner caught
    assert (result.exit_code, result.stderr) == (process.returncode, process.stderr)
    assert expected is None or process.returncode == expected
    lines = process.stderr.splitlines()
    assert lines[-1].startswith("softmax: error: ") and "Traceback" not in process.stderr
    assert len(lines) == 1
    assert "\x1b" not in process.stderr and "\x07" not in process.stderr  # the terminal is sent no command


def test_a_name_with_control_characters_is_printed_escaped(capsys, files, monkeypatch):
    monkeypatch.chdir(files)
    (files / "digit.png").rename(files / "a\nb\x1b[2J.png")
    code, out, err = run(capsys, "predict", "--model", "model.npz", "a\nb\x1b[2J.png")
    assert code == 0 and err == ""
    assert out.splitlines()[1].startswith("a\\nb\\x1b[2J.png  ")  # the table's row is one line, and inert
    code, _, err = run(capsys, "predict", "--model", "model.npz", EVIL)
    assert_one_line_error(code, err, "evil\\x1b]0;PWNED\\x07\\x1b[2J.png")
    code, _, err = run(capsys, "info", "two\nlines.npz")
    assert_one_line_error(code, err, "two\\nlines.npz")


def test_importing_any_module_leaves_the_signal_handlers_alone():
    script = (
        "import importlib, pkgutil, signal, sys\n"
        "before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}\n"
        "import softmax_cli, softmax_cli.cli\n"
        "names = [m.name for m in pkgutil.walk_packages(softmax_cli.__path__, 'softmax_cli.')]\n"
        "for name in names:\n"
        "    importlib.import_module(name)\n"
        "after = {s: signal.getsignal(s) for s in before}\n"
        "print(len(names), before == after)\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    count, same = result.stdout.split()
    assert int(count) > 20 and same == "True", result.stderr


@pytest.mark.parametrize("args", [["predict"], ["info"], ["evaluate", "--model"], ["export"]])
def test_the_shell_completes_file_names(args):
    from click.shell_completion import ShellComplete

    completions = ShellComplete(cli, {}, "softmax", "_SOFTMAX_COMPLETE").get_completions(args, "")
    assert [item.type for item in completions] == ["file"]


def test_the_entry_point_guards_start_up_and_then_leaves_ctrl_c_as_it_found_it():
    """While the CLI is imported, Ctrl-C exits 130 at once; then the handler the process had is back (here SIG_IGN,
    as a shell gives a background job); importing the entry point's module runs nothing."""
    script = (
        "import signal, sys\n"
        "signal.signal(signal.SIGINT, signal.SIG_IGN)\n"
        "import softmax_cli.__main__ as entry\n"
        "assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN\n"
        "seen = []\n"
        "class Watch:\n"
        "    def find_spec(self, name, path, target=None):\n"
        "        if name == 'click':\n"
        "            seen.append(signal.getsignal(signal.SIGINT))\n"
        "sys.meta_path.insert(0, Watch())\n"
        "sys.argv = ['softmax', '--version']\n"
        "try:\n"
        "    entry.main()\n"
        "except SystemExit as e:\n"
        "    print(e.code, seen[0].__name__, signal.getsignal(signal.SIGINT) is signal.SIG_IGN)\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert result.stdout.split()[-3:] == ["0", "_interrupted_while_starting", "True"], result.stderr
