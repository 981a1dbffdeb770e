"""The tutorials' Keras recipe: Dense(10, softmax), SGD(0.2), batch 32, 10 epochs, categorical cross-entropy.

Prints one JSON line with the seconds inside model.fit and test accuracy. The test set is scored
after every epoch for the time-to-accuracy curve, off the clock.
"""

import json
import time

import keras
import numpy as np

from mnist import features

EPOCHS = 10


class TestScore(keras.callbacks.Callback):
    """Scores the test set after each epoch into curve: [training seconds, accuracy], scoring time left out."""

    def __init__(self, X_test, y_test):
        super().__init__()
        self.X_test, self.y_test = X_test, y_test
        self.curve = []
        self.scoring = 0.0
        self.started = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        paused = time.perf_counter()
        W, b = self.model.get_weights()
        # argmax of the logits is argmax of the softmax: NumPy scores in milliseconds, model.evaluate in seconds
        accuracy = float(((self.X_test @ W + b).argmax(axis=1) == self.y_test).mean())
        self.curve.append([paused - self.started - self.scoring, accuracy])
        self.scoring += time.perf_counter() - paused


def main():
    X_train, y_train, X_test, y_test = features(np.float32)
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input(shape=(X_train.shape[1],)), keras.layers.Dense(10, activation="softmax")])
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.2), loss="categorical_crossentropy",
                  metrics=["accuracy"])
    score = TestScore(X_test, y_test)  # starts the clock: model.fit comes next
    model.fit(X_train, keras.utils.to_categorical(y_train, 10), batch_size=32, epochs=EPOCHS, verbose=0,
              callbacks=[score])
    seconds, accuracy = score.curve[-1]
    print(json.dumps({"test_accuracy": accuracy, "train_seconds": seconds, "curve": score.curve}))


if __name__ == "__main__":
    main()
