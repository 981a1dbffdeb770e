"""Test accuracy after every epoch of a `softmax train` run: prints one JSON line with its curve.

    python bench/softmax_curve.py model.npz

The run's model file holds its settings and, per epoch, the training seconds but not the test accuracy.
Training again with the same settings and seed gives the same weights epoch by epoch, so this replays it
through the same pipeline (run.learn), scores the test set after each epoch and pairs each epoch's test
accuracy with the run's own seconds.
"""

import json
import sys

from softmax_cli import model
from softmax_cli.config import TrainConfig
from softmax_cli.data import load_dataset
from softmax_cli.metrics import loss_and_accuracy
from softmax_cli.preprocess import preprocessed
from softmax_cli.run import learn
from softmax_cli.store import load_model
from softmax_cli.train import Trainer

from mnist import data_path


def main():
    run = load_model(sys.argv[1]).metadata
    config = TrainConfig.from_dict(run["settings"], sys.argv[1])
    dataset = load_dataset(data_path())
    test_features = model.features(preprocessed(dataset.x_test, config.preprocess))
    trainer = Trainer(config, dataset.n_features, dataset.n_classes)
    test_accuracy = []

    def score_test_set(stats: dict) -> None:
        test_accuracy.append(loss_and_accuracy(*trainer.coefficients(), test_features, dataset.y_test)[1])

    pixels = preprocessed(dataset.x_train, config.preprocess, key=dataset.fingerprint())
    _, replay = learn(config, pixels, dataset.y_train, dataset.n_classes, trainer, on_epoch=score_test_set)
    curve = [[epoch["seconds"], accuracy] for epoch, accuracy in zip(run["history"], test_accuracy)]
    same = len(replay.history) == len(run["history"]) and (replay.stopped_early or curve[-1][1] == run["test_accuracy"])
    print(json.dumps({"test_accuracy": run["test_accuracy"], "train_seconds": run["train_seconds"], "curve": curve,
                      "replay_matches_run": same}))


if __name__ == "__main__":
    main()
