import pytest

from softmax_cli.config import TrainConfig, make_config, read_config_file
from softmax_cli.errors import SoftmaxError
from conftest import REPO


def test_default_toml_states_the_real_defaults():
    assert make_config(REPO / "configs" / "default.toml") == TrainConfig()


def test_every_shipped_config_is_valid():
    for path in (REPO / "configs").glob("*.toml"):
        make_config(path)


def test_flags_override_the_file_and_the_file_overrides_defaults(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text("lr = 1\nepochs = 3\nbatch-size = 0\n")
    config = make_config(path, epochs=5, lr=None)
    assert (config.lr, config.epochs, config.batch_size) == (1.0, 5, 0)
    assert config.momentum == TrainConfig().momentum


@pytest.mark.parametrize(
    "text, message",
    [
        ("lr = -1", "lr must be positive"),
        ("epochs = 0", "epochs must be at least 1"),
        ("bogus = 1", "unknown setting"),
        ("lr = 'fast'", "lr must be a number"),
        ("epochs = 2.5", "epochs must be a whole number"),
        ("lr = [", "not valid TOML"),
    ],
)
def test_bad_config_files_give_one_clear_error(tmp_path, text, message):
    path = tmp_path / "c.toml"
    path.write_text(text)
    with pytest.raises(SoftmaxError, match=message):
        make_config(path)


def test_missing_config_file(tmp_path):
    with pytest.raises(SoftmaxError, match="cannot read config file"):
        read_config_file(tmp_path / "none.toml")


@pytest.mark.parametrize(
    "change", [{"lr": 0.0}, {"batch_size": -1}, {"momentum": 1.0}, {"val_split": 1.0}, {"seed": -1}, {"average": 2.0}]
)
def test_invalid_settings_are_refused(change):
    with pytest.raises(SoftmaxError):
        TrainConfig(**change)
