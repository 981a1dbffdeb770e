"""The tutorials' recipe in plain NumPy float64: zero weights, lr 0.01, 1000 full-batch gradient steps.

Prints one JSON line with the loop's seconds and test accuracy; the test set is scored every 50 steps
for the time-to-accuracy curve, off the clock.
"""

import json
import time

import numpy as np

from mnist import features

LEARNING_RATE = 0.01
STEPS = 1000
SCORE_EVERY = 50


def softmax(Z):
    """Return the row-wise softmax of logits Z, shifted by each row's maximum so that exp cannot overflow."""
    E = np.exp(Z - Z.max(axis=1, keepdims=True))
    return E / E.sum(axis=1, keepdims=True)


def main():
    X_train, y_train, X_test, y_test = features(np.float64)
    one_hot = np.eye(10)[y_train]
    W = np.zeros((X_train.shape[1], 10))
    b = np.zeros(10)
    curve = []
    training = 0.0
    for step in range(1, STEPS + 1):
        started = time.perf_counter()
        G = (softmax(X_train @ W + b) - one_hot) / len(X_train)  # gradient of the mean cross-entropy in the logits
        W -= LEARNING_RATE * (X_train.T @ G)
        b -= LEARNING_RATE * G.sum(axis=0)
        training += time.perf_counter() - started
        if step % SCORE_EVERY == 0:
            curve.append([training, float(((X_test @ W + b).argmax(axis=1) == y_test).mean())])
    print(json.dumps({"test_accuracy": curve[-1][1], "train_seconds": training, "curve": curve}))


if __name__ == "__main__":
    main()
