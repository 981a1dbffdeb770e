"""The package as a user installs it: presets by name, a light core whose commands say what extra they need,
and the metadata (name, license, extras) pyproject.toml declares."""

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from softmax_cli.config import PRESETS, TrainConfig, make_config, preset_path

REPO = Path(__file__).resolve().parent.parent

# Runs the CLI as if the packages named in its first argument were not installed: a finder refuses to import them.
WITHOUT = textwrap.dedent("""
    import importlib.abc, sys

    missing = sys.argv.pop(1).split(",")

    class NotInstalled(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if any(name == module or name.startswith(module + ".") for module in missing):
                raise ModuleNotFoundError(f"No module named {name!r}", name=name)
            return None

    sys.meta_path.insert(0, NotInstalled())
    from softmax_cli.cli import main
    main(sys.argv[1:])
""")


def without(missing, *args, cwd):
    env = {"PATH": "/usr/bin:/bin", "HOME": str(cwd)}  # no SOFTMAX_DATA: the data set would be downloaded
    return subprocess.run([sys.executable, "-c", WITHOUT, ",".join(missing), *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)


def without_keras(*args, cwd):
    return without(["tensorflow", "keras"], *args, cwd=cwd)


def test_every_preset_is_shipped_inside_the_package_and_valid():
    assert {path.stem for path in preset_path("best").parent.glob("*.toml")} == set(PRESETS)
    assert make_config("default") == TrainConfig()
    assert make_config("best").preprocess == "deskew"
    assert make_config("tutorial").batch_size == "full"


def test_a_preset_by_name_from_any_folder_and_a_path_still_works(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from softmax_cli.cli import cli

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SOFTMAX_DATA", raising=False)  # a relative one (as make's) would not hold from tmp_path
    (tmp_path / "mine.toml").write_text("epochs = 1\nlr = 0.2\n")
    for config in ("tutorial", "mine.toml"):
        result = CliRunner().invoke(cli, ["train", "--dataset", "digits", "--config", config, "--epochs", "1",
                                          "--model", f"{config}.npz"], catch_exceptions=False)
        assert result.exit_code == 0, result.output
    assert (tmp_path / "tutorial.npz").exists() and (tmp_path / "mine.toml.npz").exists()


def test_the_presets_are_listed_in_train_help():
    from click.testing import CliRunner

    from softmax_cli.cli import cli

    help_text = " ".join(CliRunner().invoke(cli, ["train", "--help"]).output.split())
    assert "by name: default, tutorial, best" in help_text


def test_a_file_named_like_a_preset_is_reached_by_its_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "best").write_text("epochs = 2\n")
    assert make_config("./best").epochs == 2
    assert make_config("best").epochs == 30


def test_train_without_keras_and_without_data_says_what_to_install_in_one_line(tmp_path):
    result = without_keras("train", cwd=tmp_path)
    assert result.returncode != 0
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1, result.stderr
    assert "pip install 'softmax-regression-cli[keras]'" in result.stderr
    assert "--data" in result.stderr
    assert not (tmp_path / "model.npz").exists()


def test_export_to_keras_without_keras_says_what_to_install_in_one_line(tmp_path):
    from test_export import write_model

    write_model(tmp_path / "model.npz")
    result = without_keras("export", "--model", "model.npz", "model.keras", cwd=tmp_path)
    assert result.returncode != 0
    assert result.stderr.count("\n") == 1, result.stderr
    assert "pip install 'softmax-regression-cli[keras]'" in result.stderr
    assert sorted(path.name for path in tmp_path.iterdir()) == ["model.npz"]


def test_onnx_export_needs_no_tensorflow_and_without_onnx_says_what_to_install(tmp_path):
    from test_export import write_model

    write_model(tmp_path / "model.npz")
    result = without_keras("export", "--model", "model.npz", "model.onnx", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "model.onnx").exists()
    result = without(["onnx"], "export", "--model", "model.npz", "new.onnx", cwd=tmp_path)
    assert result.returncode != 0
    assert result.stderr.count("\n") == 1, result.stderr
    assert "pip install 'softmax-regression-cli[onnx]'" in result.stderr
    assert not (tmp_path / "new.onnx").exists()


def test_plots_without_matplotlib_say_what_to_install_before_any_work(tmp_path):
    from test_export import write_model

    write_model(tmp_path / "model.npz")
    result = without(["matplotlib"], "evaluate", "--model", "model.npz", "--data", "nowhere", "--plots", "figures",
                     cwd=tmp_path)
    assert result.returncode != 0
    assert result.stderr == "softmax: error: --plots needs matplotlib, which is not installed: " \
                            "pip install 'softmax-regression-cli[plots]'\n"
    assert not (tmp_path / "figures").exists()


def test_training_on_local_data_needs_no_keras(tmp_path):
    """The core alone: neither Keras nor matplotlib nor onnx is imported to train on local data."""
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, size=(200, 28, 28), dtype=np.uint8)
    labels = np.arange(200) % 10
    np.savez(tmp_path / "small.npz", x_train=pixels[:150], y_train=labels[:150], x_test=pixels[150:],
             y_test=labels[150:])
    result = without(["tensorflow", "keras", "matplotlib", "onnx"], "train", "--data", "small.npz", "--epochs", "1",
                     "--quiet", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "model.npz").exists()


def test_the_metadata_names_a_free_distribution_its_license_and_extras():
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib

    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert project["name"] == "softmax-regression-cli"  # "softmax-cli" on the package index is another program
    assert project["scripts"] == {"softmax": "softmax_cli.__main__:main"}
    assert project["license"] == "MIT" and project["license-files"] == ["LICENSE"]
    assert (REPO / "LICENSE").read_text().startswith("MIT License")
    core = " ".join(project["dependencies"])
    assert "tensorflow" not in core and "keras" not in core and "matplotlib" not in core and "onnx" not in core
    extras = project["optional-dependencies"]
    assert extras["keras"] == ["tensorflow>=2.16"] and extras["plots"] == ["matplotlib>=3.7"]
    assert extras["all"] == ["softmax-regression-cli[keras,onnx,plots]"]


def test_info_system_names_the_compiled_epoch_where_it_was_built(tmp_path):
    result = without([], "info", "--system", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "training loop: the compiled epoch, " in result.stdout and " kernel" in result.stdout


def test_without_the_compiled_epoch_info_says_why_and_training_says_so_once(tmp_path):
    result = without(["softmax_cli._epoch"], "info", "--system", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "training loop: the NumPy loop" in result.stdout
    assert "pip install --no-cache-dir --force-reinstall softmax-regression-cli" in result.stdout
    result = without(["softmax_cli._epoch"], "train", "--dataset", "digits", "--epochs", "2", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stderr.count("training takes the NumPy loop") == 1
    assert "test accuracy" in result.stdout
