"""The default thread count against one thread (SOFTMAX_THREADS=1), same run: training seconds of
`softmax train --epochs 30` (defaults otherwise) on MNIST, and of 20 fits of SoftmaxRegression() on scikit-learn's
digits; each on a quiet machine and beside a process that burns one core. Prints one JSON object: the seconds of
each case, one thread and default (the fastest of --repeats, alternated), and their ratio default / one thread.

    python bench/threads.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from mnist import data_path

SOFTMAX = str(Path(sys.executable).with_name("softmax"))
DIGITS = """
import time
from sklearn.datasets import load_digits
from softmax_cli.estimator import SoftmaxRegression
X, y = load_digits(return_X_y=True)
X = X / 16.0
started = time.perf_counter()
for _ in range(20):
    SoftmaxRegression().fit(X, y)
print(time.perf_counter() - started)
"""


def seconds(case: str, threads: str | None, scratch: str) -> float:
    """Return the training seconds of one run of case ("mnist" or "digits"), SOFTMAX_THREADS=threads if given."""
    environment = {**os.environ, "SOFTMAX_DATA": str(data_path())}
    environment.pop("SOFTMAX_THREADS", None)
    if threads:
        environment["SOFTMAX_THREADS"] = threads
    if case == "digits":
        output = subprocess.run([sys.executable, "-c", DIGITS], env=environment, capture_output=True, text=True,
                                check=True).stdout
        return float(output)
    output = subprocess.run([SOFTMAX, "train", "--epochs", "30", "--json", "--model", f"{scratch}/m.npz"],
                            env=environment, capture_output=True, text=True, check=True).stdout
    return json.loads(output)["train_seconds"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    # 5: one process's training seconds vary by 15 % from run to run at load 1 (0.83-0.98 s for the same settings),
    # so the fastest of 3 of each could differ by that much with nothing between them
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    figures = {}
    with tempfile.TemporaryDirectory() as scratch:
        for load in ("quiet", "busy"):
            burner = subprocess.Popen([sys.executable, "-c", "while 1: pass"]) if load == "busy" else None
            try:
                time.sleep(0.2 if burner else 0)
                for case in ("mnist", "digits"):
                    one, default = [], []
                    for _ in range(args.repeats):  # alternated: both meet the same moments of the load
                        one.append(seconds(case, "1", scratch))
                        default.append(seconds(case, None, scratch))
                    figures[f"{case}_{load}"] = {"one_thread": min(one), "default": min(default),
                                                 "ratio": min(default) / min(one)}
            finally:
                if burner:
                    burner.kill()
                    burner.wait()
    figures["load"] = os.getloadavg()[0]
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
