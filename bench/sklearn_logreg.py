"""scikit-learn's LogisticRegression() (lbfgs) on MNIST: prints one JSON line with fit seconds and test accuracy.

    python bench/sklearn_logreg.py                      # the default, max_iter=100
    python bench/sklearn_logreg.py --max-iter 5 10 20   # one fit for each, for the time-to-accuracy curve
"""

import argparse
import json
import time
import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression

from mnist import features


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-iter", type=int, nargs="+", default=[100], help="lbfgs iterations; one fit each")
    args = parser.parse_args()
    X_train, y_train, X_test, y_test = features(np.float64)
    curve = []
    for max_iter in args.max_iter:
        started = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)  # stopping early is the point of the small max_iter
            model = LogisticRegression(max_iter=max_iter).fit(X_train, y_train)
        seconds = time.perf_counter() - started
        curve.append([seconds, float(model.score(X_test, y_test))])
    seconds, accuracy = curve[-1]
    print(json.dumps({"test_accuracy": accuracy, "train_seconds": seconds, "max_iter": args.max_iter, "curve": curve}))


if __name__ == "__main__":
    main()
