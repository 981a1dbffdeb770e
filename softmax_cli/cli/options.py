"""The options the commands share, and the Click types that check them with the library's own rules.

A training setting's flag takes its type, range, default and help from config.SETTINGS: `SettingType` hands the
text to `config.check_setting`, so `--batch-size full`, `batch_size = "full"` in a TOML file and
`SoftmaxRegression(batch_size="full")` are one rule, and a refused value reads the same from every source.
"""

from __future__ import annotations

from pathlib import Path

import click
from click.core import ParameterSource

from ..config import DATASETS, PRESETS, SETTINGS, Setting, read_config_file
from ..errors import EXIT_USAGE, SoftmaxError


def flag_of(setting: str) -> str:
    """Return the command-line flag of a setting: val_split -> --val-split."""
    return "--" + setting.replace("_", "-")


class OptionError(click.UsageError):
    """A bad option value, said in the tool's own words (Click would prefix "Invalid value for ..."); exit 2."""


class SettingType(click.ParamType):
    """A training setting given on the command line (or an option checked by the same rules, a config.Setting)."""

    def __init__(self, setting: str | Setting):
        described = SETTINGS[setting] if isinstance(setting, str) else setting
        self.setting = described
        self.name = f"[{'|'.join(described.choices)}]" if described.choices else (
            f"N|{described.word}" if described.word else described.kind.__name__.upper())

    def get_metavar(self, param, ctx=None) -> str:
        return self.name

    def shell_complete(self, ctx, param, incomplete):
        from click.shell_completion import CompletionItem

        return [CompletionItem(word) for word in self.setting.choices if word.startswith(incomplete)]

    def convert(self, value, param, ctx):
        try:
            return self.setting.check(value)
        except SoftmaxError as e:
            raise OptionError(e.in_terms_of(flag_of), ctx) from None


class ListOf(click.ParamType):
    """Comma-separated values of one setting (e.g. --lr 0.1,0.3,1), each checked; a repeated value counts once."""

    def __init__(self, setting: str):
        self.item = SettingType(setting)
        self.name = "x,y,..."

    def convert(self, value, param, ctx):
        if isinstance(value, tuple):  # already converted: Click passes defaults through convert too
            return value
        items = [item.strip() for item in str(value).split(",")]
        if not all(items):
            raise OptionError(f"{param.opts[0]} needs one or more values separated by commas, e.g. 1,2,3, got "
                              f"{value!r}", ctx)
        return tuple(dict.fromkeys(self.item.convert(item, param, ctx) for item in items))


def checked(name: str, kind: type, **rules) -> SettingType:
    """Return the type of an option that is not a training setting, checked by the settings' rules (config.Setting).

    For example checked("top_k", int, low=1): a refused value reads "--top-k must be a whole number at least 1".
    """
    return SettingType(Setting(name, kind, None, "", **rules))


def setting_option(name: str, help_text: str | None = None):
    """Return the option of one training setting, its default and help from config.SETTINGS."""
    setting = SETTINGS[name]
    return click.option(flag_of(name), name, type=SettingType(name), default=setting.default, show_default=True,
                        help=help_text or setting.meaning)


def settings_given(ctx: click.Context, settings: dict) -> dict:
    """Return the settings the user chose (on the command line, in the environment or a config file), by name."""
    return {name: value for name, value in settings.items()
            if ctx.get_parameter_source(name) is not ParameterSource.DEFAULT}


def _read_config(ctx: click.Context, param, path):
    """Make a --config file's settings the defaults of the command's own setting options (ctx.default_map)."""
    if path is not None:
        from ..safe_io import NotFound

        try:
            ctx.default_map = {**(ctx.default_map or {}), **read_config_file(path)}
        except NotFound as e:  # a wrong option, as a missing --data or --model is: exit 2
            raise SoftmaxError(f"{e}: give --config a TOML file's path or a preset's name ({', '.join(PRESETS)})",
                               exit_code=EXIT_USAGE) from None
        except SoftmaxError as e:
            raise SoftmaxError(str(e)) from None  # a file's setting is named as the file writes it: lr, not --lr
    return path


def config_option(help_text: str):
    return click.option("--config", "config_file", type=click.Path(dir_okay=False, path_type=Path), is_eager=True,
                        callback=_read_config, expose_value=True, metavar="FILE|PRESET",
                        help=f"{help_text} Or a preset shipped with softmax-cli, by name: {', '.join(PRESETS)}.")


def _keep_target(ctx: click.Context, param, value):
    ctx.meta["softmax target"] = value  # read by load_data: no command needs it as an argument of its own
    return value


def data_option(command):
    command = click.option(
        "--target",
        metavar="NAME",
        expose_value=False,
        callback=_keep_target,
        help="With a CSV --data: the label column's name (default: the column called target, else label).",
    )(command)
    return click.option(
        "--data",
        type=click.Path(path_type=Path),
        envvar="SOFTMAX_DATA",
        show_envvar=True,
        help="A local copy of the data set: a Keras-format .npz or a folder with one, or a folder with the four "
        "IDX files; or your own table: a .csv with a header row (one label column, every other a number) or an "
        ".npz of feature rows x and labels y, of which the tool holds out a seeded, stratified 20 % for testing. "
        "Without it the data set is downloaded through keras.datasets.",
    )(command)


def dataset_option(shown_default: str = "mnist, or your own data when --data is given"):
    return click.option(
        "--dataset",
        "dataset_name",
        type=SettingType(Setting("dataset", str, None, "Which data set.", choices=DATASETS)),
        show_default=shown_default,
        help="Which data set: MNIST digits, Fashion-MNIST clothes (both through keras.datasets unless --data), or "
        "scikit-learn's bundled 8x8 digits (no download). Files given with --data must be that data set.",
    )


def from_environment(ctx: click.Context, data: Path | None) -> bool:
    """Return whether data is SOFTMAX_DATA's local copy rather than files named on the command line."""
    return data is not None and ctx.get_parameter_source("data") is ParameterSource.ENVIRONMENT


def load_data(ctx: click.Context, data: Path | None, dataset_name: str | None, usual: str = "mnist"):
    """Return the data set the options name: --dataset, from --data's files (checked to be it) or downloaded.

    Without --dataset, --data is the user's own data (recognised by its fingerprint when it is a known set), and
    with neither, the usual data set. SOFTMAX_DATA is a local copy to use when it holds the data set asked for:
    when --dataset asks for another, that set is fetched instead, so that following advice never needs the
    variable unset.
    """
    from ..data import load_dataset

    target = ctx.meta.get("softmax target")
    if target is not None and data is None:
        raise click.UsageError("--target names a column of a CSV --data: give --data FILE.csv too")
    if dataset_name is None:
        return load_dataset(data, name=None, target=target) if data is not None else load_dataset(None, name=usual)
    if from_environment(ctx, data):
        copy = load_dataset(data, name=None)
        return copy if copy.name == dataset_name else load_dataset(None, name=dataset_name)
    return load_dataset(data, name=dataset_name, target=target)


def model_option(help_text: str):
    return click.option("--model", "model_path", type=click.Path(path_type=Path), default="model.npz",
                        show_default=True, envvar="SOFTMAX_MODEL", show_envvar=True, help=help_text)


json_option = click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON on stdout.")
quiet_option = click.option("--quiet", "-q", is_flag=True, help="No progress and no summary.")
