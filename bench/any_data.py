"""SoftmaxRegression() at its defaults beside LogisticRegression(max_iter=1000) on data that is not MNIST.

    python bench/any_data.py           # on the machine as it is
    python bench/any_data.py --busy    # beside a process that keeps one core busy (a user's laptop is busy)

scikit-learn's data sets (iris, wine, breast cancer, digits unscaled and x 1e4), make_classification and the Keras
softmax lab's 2,000 2-D points in 4 blobs, 30 % held out (stratified, seed 0). Targets (issue 23): within 1.5
points of LogisticRegression or better, no warning, and no slower. Fit seconds are the best of 3, the two side by
side in one run; the last line printed is the figures as JSON, with the load.
"""

from __future__ import annotations

import json
import os
import time
import warnings

from sklearn.datasets import load_breast_cancer, load_digits, load_iris, load_wine, make_blobs, make_classification
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split

from softmax_cli import SoftmaxRegression


def data_sets():
    digits = load_digits(return_X_y=True)
    yield "iris", load_iris(return_X_y=True)
    yield "wine", load_wine(return_X_y=True)
    yield "breast cancer", load_breast_cancer(return_X_y=True)
    yield "digits", digits
    yield "digits x 1e4", (digits[0] * 1e4, digits[1])
    yield "make_classification", make_classification(2000, 20, n_informative=10, n_classes=4, random_state=0)
    yield "2-D blobs (the Keras lab)", make_blobs(2000, centers=4, random_state=0)


def best_fit(make, X, y):
    times, model = [], None
    for _ in range(3):
        began = time.perf_counter()
        model = make().fit(X, y)
        times.append(time.perf_counter() - began)
    return model, min(times)


def main() -> None:
    import argparse
    import subprocess
    import sys

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--busy", action="store_true", help="measure beside a process that keeps one core busy")
    args = parser.parse_args()
    burner = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if args.busy else None
    try:
        measure(busy=args.busy)
    finally:
        if burner is not None:
            burner.kill()
            burner.wait()


def measure(busy: bool) -> None:
    rows = []
    for name, (X, y) in data_sets():
        X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.3, stratify=y, random_state=0)
        with warnings.catch_warnings(record=True) as ours_warned:
            warnings.simplefilter("always")
            ours, ours_seconds = best_fit(SoftmaxRegression, X_train, y_train)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            theirs, theirs_seconds = best_fit(lambda: LogisticRegression(max_iter=1000), X_train, y_train)
        rows.append({"data": name, "softmax": ours.score(X_test, y_test), "softmax_seconds": ours_seconds,
                     "softmax_warnings": len(ours_warned), "logreg": theirs.score(X_test, y_test),
                     "logreg_seconds": theirs_seconds})
    print(f"{'data':28} {'SoftmaxRegression()':>20} {'LogisticRegression':>19} {'time ratio':>11}")
    for row in rows:
        ratio = row["softmax_seconds"] / row["logreg_seconds"]
        print(f"{row['data']:28} {row['softmax']:>8.2%} {row['softmax_seconds']:>8.3f} s "
              f"{row['logreg']:>8.2%} {row['logreg_seconds']:>8.3f} s {ratio:>10.2f}x"
              + (f"  ({row['softmax_warnings']} warnings)" if row["softmax_warnings"] else ""))
    print(json.dumps({"rows": rows, "busy": busy, "load_average": [round(x, 2) for x in os.getloadavg()],
                      "cpus": os.cpu_count()}))


if __name__ == "__main__":
    main()
