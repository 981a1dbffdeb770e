"""Test accuracy after every epoch of a `softmax train` run: prints one JSON line with its curve.

    python bench/softmax_curve.py model.npz

The run's model file holds its settings and, per epoch, the training seconds but not the test accuracy.
Training again with the same settings and seed gives the same weights epoch by epoch, so this replays it
with the test set as the validation set and pairs each epoch's test accuracy with the run's own seconds.
"""

import json
import sys

from softmax_cli.config import TrainConfig
from softmax_cli.data import load_dataset
from softmax_cli.store import load_model
from softmax_cli.train import Trainer, fit, split_validation

from mnist import data_path


def main():
    run = load_model(sys.argv[1]).metadata
    config = TrainConfig(**run["settings"])
    dataset = load_dataset(data_path())
    pixels, labels = dataset.x_train, dataset.y_train
    if config.val_split:  # held out as `softmax train` holds it out, so that the same images are trained on
        pixels, labels, *_ = split_validation(pixels, labels, config.val_split, config.seed)
    trainer = Trainer(config, dataset.n_features, dataset.n_classes)
    replay = fit(trainer, pixels, labels, validation=(dataset.x_test, dataset.y_test))
    curve = [[epoch["seconds"], again["val_accuracy"]] for epoch, again in zip(run["history"], replay.history)]
    same = len(replay.history) == len(run["history"]) and curve[-1][1] == run["test_accuracy"]
    print(json.dumps({"test_accuracy": run["test_accuracy"], "train_seconds": run["train_seconds"], "curve": curve,
                      "replay_matches_run": same}))


if __name__ == "__main__":
    main()
