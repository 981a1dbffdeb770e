"""softmax-cli against scikit-learn's LogisticRegression() on the same MNIST copy: test accuracy and seconds.

    python bench/compare.py     # what `make compare` runs; a minute or two, mostly scikit-learn

Each method runs as its own process: `softmax train` with its defaults (the fastest of 3 runs, after an untimed
one that builds the data cache) and bench/sklearn_logreg.py, `LogisticRegression()` with lbfgs (one run: it
takes far longer and varies less). Fit seconds are what each reports for training alone; whole seconds run
from the process's start to its exit, imports and data loading included. `make bench` (bench/run.py) measures
more methods, more carefully, with peak memory.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

from measure import Failed, fastest, run
from mnist import data_path

HERE = Path(__file__).resolve().parent
SOFTMAX = str(Path(sys.executable).with_name("softmax"))  # the venv's console script, beside its python
SOFTMAX_RUNS = 3


def main():
    os.environ["SOFTMAX_DATA"] = str(data_path())  # absolute, so both processes read the same copy
    with tempfile.TemporaryDirectory() as scratch:
        train = [SOFTMAX, "train", "--json", "--model", str(Path(scratch) / "model.npz")]
        methods = [
            ("softmax train (defaults)", [train] * SOFTMAX_RUNS),
            ("scikit-learn LogisticRegression() (lbfgs)", [[sys.executable, str(HERE / "sklearn_logreg.py")]]),
        ]
        try:
            run([*train, "--epochs", "1"])
            rows = [measure(name, commands) for name, commands in methods]
        except Failed as e:
            sys.exit(f"compare: a run failed: {e}")
    width = max(len(name) for name, _ in methods)
    print(f"{'method':<{width}}  test accuracy  fit seconds  whole seconds  runs")
    for name, accuracy, fit_seconds, whole_seconds, runs in rows:
        print(f"{name:<{width}}  {accuracy:>13.2%}  {fit_seconds:>11.2f}  {whole_seconds:>13.2f}  {runs:>4}")
    print(f"data: {os.environ['SOFTMAX_DATA']}")


def measure(name: str, commands: list[list[str]]) -> tuple:
    """Return (name, test accuracy, fit seconds, whole seconds, runs) of the fastest run of the commands."""
    print(f"{name}: {len(commands)} run{'s' if len(commands) > 1 else ''}", file=sys.stderr, flush=True)
    finished = fastest(commands)
    result = finished.result()
    return name, result["test_accuracy"], result["train_seconds"], finished.seconds, len(commands)


if __name__ == "__main__":
    main()
