"""The training settings: one dataclass with every default, read from a TOML file and then overridden by flags."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from .errors import SoftmaxError

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

DATASETS = ("mnist", "fashion_mnist", "digits")
LOSSES = ("cross-entropy", "mse")
SCHEDULES = ("linear", "cosine", "constant")


@dataclass(frozen=True)
class TrainConfig:
    """Everything that decides what `softmax train` learns. Stored in the model file."""

    lr: float = 0.3
    epochs: int = 6
    # 0 means the full training set in every step (the tutorials' recipe). 120 is the fastest size measured
    # here: larger batches leave OpenBLAS's fast path for small matrices and the CPU's cache, smaller ones
    # pay Python's per-step cost more often (bench/, README).
    batch_size: int = 120
    momentum: float = 0.9        # heavy ball: v = momentum * v + gradient; W -= lr * v
    schedule: str = "linear"     # the learning rate falls from lr to 0 over training (or cosine, or constant)
    average: float = 0.5         # the model is the mean of the weights over this last fraction of the steps
    l2: float = 0.0
    loss: str = "cross-entropy"
    seed: int = 0
    val_split: float = 0.0       # fraction of the training set held out for validation
    patience: int = 0            # epochs without a better validation loss before stopping; 0 = never stop early

    def __post_init__(self):
        checks = [
            (self.lr > 0, f"lr must be positive, got {self.lr}"),
            (self.epochs >= 1, f"epochs must be at least 1, got {self.epochs}"),
            (self.batch_size >= 0, f"batch_size must be a positive number (or 0 for full batch), got {self.batch_size}"),
            (0 <= self.momentum < 1, f"momentum must be in [0, 1), got {self.momentum}"),
            (self.schedule in SCHEDULES, f"schedule must be one of {', '.join(SCHEDULES)}, got {self.schedule!r}"),
            (0 <= self.average <= 1, f"average must be in [0, 1], got {self.average}"),
            (self.l2 >= 0, f"l2 must not be negative, got {self.l2}"),
            (self.loss in LOSSES, f"loss must be one of {', '.join(LOSSES)}, got {self.loss!r}"),
            (0 <= self.val_split < 1, f"val_split must be in [0, 1), got {self.val_split}"),
            (self.patience >= 0, f"patience must not be negative, got {self.patience}"),
            (self.seed >= 0, f"seed must not be negative, got {self.seed}"),
        ]
        for ok, message in checks:
            if not ok:
                raise SoftmaxError(message)

    def replace(self, **changes) -> "TrainConfig":
        """Return a copy with the given settings changed; None values leave a setting as it is."""
        return dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None})

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def read_config_file(path: str | Path) -> dict:
    """Return the settings in a TOML file as a dict of known TrainConfig field names."""
    try:
        with open(path, "rb") as f:
            values = tomllib.load(f)
    except OSError as e:
        raise SoftmaxError(f"cannot read config file {path}: {e.strerror or e}") from None
    except tomllib.TOMLDecodeError as e:
        raise SoftmaxError(f"config file {path} is not valid TOML: {e}") from None
    values = {key.replace("-", "_"): value for key, value in values.items()}
    known = [field.name for field in dataclasses.fields(TrainConfig)]
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise SoftmaxError(
            f"config file {path} has unknown setting(s) {', '.join(unknown)}; known: {', '.join(known)}"
        )
    for key, value in values.items():
        expected = type(getattr(TrainConfig(), key))
        if expected is float and isinstance(value, int) and not isinstance(value, bool):
            values[key] = float(value)
        elif not isinstance(value, expected) or isinstance(value, bool):
            kind = {float: "number", int: "whole number", str: "string"}[expected]
            raise SoftmaxError(f"config file {path}: {key} must be a {kind}, got {value!r}")
    return values


def make_config(config_file: str | Path | None = None, **flags) -> TrainConfig:
    """Return the defaults, overridden by the config file, overridden by flags that were given (not None)."""
    values = read_config_file(config_file) if config_file else {}
    return TrainConfig(**values).replace(**flags)
