"""The settings table: one rule per setting, whatever the source (flag text, TOML value, Python argument)."""

import math

import pytest

from softmax_cli.config import DATASETS, FULL_BATCH, SETTINGS, TrainConfig, check_setting, make_config, read_config_file
from softmax_cli.errors import SoftmaxError
from conftest import REPO


def test_default_toml_states_the_real_defaults():
    assert make_config(REPO / "configs" / "default.toml") == TrainConfig()


def test_every_shipped_config_is_valid():
    for path in (REPO / "configs").glob("*.toml"):
        make_config(path)


def test_the_defaults_are_the_tables():
    assert TrainConfig().to_dict() == {name: setting.default for name, setting in SETTINGS.items()}


def test_flags_override_the_file_and_the_file_overrides_defaults(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('lr = 1\nepochs = 3\nbatch-size = "full"\n')
    config = make_config(path, epochs=5, lr=None)
    assert (config.lr, config.epochs, config.batch_size) == (1.0, 5, FULL_BATCH)
    assert config.momentum == TrainConfig().momentum


@pytest.mark.parametrize("value", ["full", "FULL", " full "])
def test_the_whole_training_set_has_one_spelling_in_every_source(tmp_path, value):
    assert check_setting("batch_size", value) == FULL_BATCH
    assert TrainConfig(batch_size=value).batch_size == FULL_BATCH
    path = tmp_path / "c.toml"
    path.write_text(f'batch_size = "{value}"\n')
    assert make_config(path).batch_size == FULL_BATCH


@pytest.mark.parametrize("name, value", [
    ("batch_size", 0), ("batch_size", 1.5), ("batch_size", "0"), ("batch_size", "²"), ("batch_size", True),
    ("epochs", 2.5), ("epochs", 3.0), ("epochs", 10**400), ("epochs", "1e3"), ("epochs", 0),
    ("lr", 0.0), ("lr", -1), ("lr", math.nan), ("lr", math.inf), ("lr", 10**400), ("lr", "abc"), ("lr", None),
    ("momentum", 1.0), ("val_split", 1.0), ("seed", -1), ("seed", 2**32), ("average", 2.0),
    ("schedule", "fast"), ("loss", 1), ("preprocess", "blur"),
])
def test_a_refused_value_names_its_setting_and_what_it_must_be(name, value):
    with pytest.raises(SoftmaxError) as refused:
        check_setting(name, value)
    assert refused.value.setting == name
    assert str(refused.value).startswith(f"{name} must be ")
    assert len(str(refused.value)) < 150 and "\n" not in str(refused.value)
    with pytest.raises(SoftmaxError):
        TrainConfig(**{name: value})


def test_flag_text_and_python_values_are_one_rule():
    assert check_setting("lr", "0.5") == check_setting("lr", 0.5) == 0.5
    assert check_setting("epochs", "7") == check_setting("epochs", 7) == 7
    assert type(check_setting("lr", 1)) is float and type(check_setting("epochs", 7)) is int


def test_library_errors_name_the_setting_not_a_flag():
    with pytest.raises(SoftmaxError) as refused:
        TrainConfig(lr=-1)
    assert "--lr" not in str(refused.value)
    assert refused.value.in_terms_of(lambda name: f"--{name}").startswith("--lr must be")


def test_patience_without_a_validation_split_is_an_error():
    with pytest.raises(SoftmaxError, match="validation split") as refused:
        TrainConfig(patience=3)
    assert refused.value.setting == "patience"
    assert TrainConfig(patience=3, val_split=0.1).patience == 3


@pytest.mark.parametrize(
    "text, message",
    [
        ("lr = -1", "lr must be a number greater than 0"),
        ("epochs = 0", "epochs must be a whole number at least 1"),
        ("bogus = 1", "unknown setting"),
        ("lr = 'fast'", "lr must be a number"),
        ("epochs = 2.5", "epochs must be a whole number"),
        ("batch_size = 0", "batch_size must be"),
        ("lr = [", "not valid TOML"),
        ("lr = " + "[" * 5000 + "]" * 5000, "config file"),
    ],
)
def test_bad_config_files_give_one_clear_error(tmp_path, text, message):
    path = tmp_path / "c.toml"
    path.write_text(text)
    with pytest.raises(SoftmaxError, match=message) as refused:
        make_config(path)
    assert "\n" not in str(refused.value)


def test_a_config_file_that_is_not_text_or_too_large(tmp_path):
    binary = tmp_path / "model.npz"
    binary.write_bytes(b"PK\x03\x04\xff\xfe\x00" * 10)
    with pytest.raises(SoftmaxError, match="UTF-8"):
        read_config_file(binary)
    huge = tmp_path / "huge.toml"
    huge.write_text("# " + "x" * 100_000)
    with pytest.raises(SoftmaxError, match="config file"):
        read_config_file(huge)
    with pytest.raises(SoftmaxError, match="regular file"):
        read_config_file("/dev/zero")


def test_missing_config_file(tmp_path):
    with pytest.raises(SoftmaxError, match="does not exist"):
        read_config_file(tmp_path / "none.toml")


def test_each_setting_is_checked_once_whatever_its_source(tmp_path, monkeypatch):
    """The file's settings, the ones given and the defaults: one check each (a config file's were checked three
    times, twice in the library)."""
    from softmax_cli import config

    path = tmp_path / "c.toml"
    path.write_text("lr = 0.25\nbatch-size = 'full'\n")
    expected = TrainConfig(lr=0.25, batch_size="full", epochs=3)
    checked, real = [], config.check_setting
    monkeypatch.setattr(config, "check_setting", lambda name, value: checked.append(name) or real(name, value))
    assert make_config(path, epochs=3, lr=None) == expected
    assert sorted(checked) == sorted(SETTINGS)


def test_a_config_file_names_itself_in_the_error_of_its_own_setting_only(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text("lr = 0.25\npatience = 2\n")
    with pytest.raises(SoftmaxError, match=f"^config file {path}: patience needs a validation split"):
        make_config(path)
    with pytest.raises(SoftmaxError, match="^patience needs a validation split"):
        make_config(path, patience=3)
    with pytest.raises(SoftmaxError, match=f"^config file {path}: lr must be"):
        make_config(path.write_text("lr = -1\n") and path, epochs=3)
    path.write_text("lr = 0.25\n")
    with pytest.raises(SoftmaxError, match="^epochs must be"):
        make_config(path, epochs=0)


def test_the_data_sets_the_settings_name_are_the_ones_data_knows():
    from softmax_cli.data import KNOWN

    assert DATASETS == tuple(KNOWN)


def test_an_unknown_setting_of_any_name_is_named_on_one_line(tmp_path):
    (tmp_path / "odd.toml").write_text('"line\\rbreak" = 1\nspeed = 2\n')
    with pytest.raises(SoftmaxError) as refused:
        make_config(tmp_path / "odd.toml")
    assert "unknown setting(s) 'line\\rbreak', speed; known: lr," in str(refused.value)
    assert "\r" not in str(refused.value)
