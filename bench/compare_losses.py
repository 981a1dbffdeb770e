"""Cross-entropy against mean squared error on the softmax outputs: which learns faster on MNIST?

    python bench/compare_losses.py              # writes bench/out/losses.md and bench/out/losses.png
    python bench/compare_losses.py --epochs 20

The tutorials claim cross-entropy learns faster: at the start (all classes at 0.1) the squared error's gradient
on the true class's logit is 0.18 against cross-entropy's 0.9, and it vanishes when a wrong class saturates.
A smaller gradient also means the best learning rate is larger, so each loss gets a few learning rates and the
best of each, by final validation accuracy, is compared. Every run uses `softmax train`'s other defaults and
is trained on the training set minus a validation split; the test set is only scored, never chosen on.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from softmax_cli import model
from softmax_cli.config import TrainConfig
from softmax_cli.data import load_dataset
from softmax_cli.metrics import loss_and_accuracy
from softmax_cli.plots import plot_loss_comparison
from softmax_cli.run import learn
from softmax_cli.train import Trainer

from mnist import data_path

HERE = Path(__file__).resolve().parent
LEARNING_RATES = {"cross-entropy": (0.03, 0.1, 0.3, 1.0), "mse": (0.1, 0.3, 1.0, 3.0)}
VAL_SPLIT = 1 / 6  # 10,000 of MNIST's 60,000 training images


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=10, help="epochs of every run [default: 10]")
    parser.add_argument("--out", type=Path, default=HERE / "out", help="folder for losses.md and losses.png")
    args = parser.parse_args()
    dataset = load_dataset(data_path())
    n_validation = int(round(VAL_SPLIT * len(dataset.y_train)))
    runs = []
    for loss, learning_rates in LEARNING_RATES.items():
        for lr in learning_rates:
            print(f"{loss}, lr {lr:g}: {args.epochs} epochs", flush=True)
            config = TrainConfig(loss=loss, lr=lr, epochs=args.epochs, val_split=VAL_SPLIT)
            runs.append(train(config, dataset))
    best = {loss: max((run for run in runs if run["config"].loss == loss), key=final_val_accuracy)
            for loss in LEARNING_RATES}
    args.out.mkdir(parents=True, exist_ok=True)
    table = markdown(best.values(), runs, args.epochs, len(dataset.y_train) - n_validation, n_validation,
                     len(dataset.y_test))
    (args.out / "losses.md").write_text(table)
    histories = {f"{loss}, lr {run['config'].lr:g}": run["history"] for loss, run in best.items()}
    plot_loss_comparison(histories, args.out / "losses.png", metric="accuracy")
    print(table)
    print(f"written to {args.out}/: losses.md, losses.png")


def train(config: TrainConfig, dataset) -> dict:
    """Return the run's config, its per-epoch history (with test_accuracy) and its training seconds."""
    trainer = Trainer(config, dataset.n_features, dataset.n_classes)
    test_features = model.features(dataset.x_test)
    scoring_seconds = 0.0

    def score_test_set(stats: dict) -> None:
        nonlocal scoring_seconds
        started = time.perf_counter()
        stats["test_accuracy"] = loss_and_accuracy(*trainer.coefficients(), test_features, dataset.y_test)[1]
        scoring_seconds += time.perf_counter() - started

    _, result = learn(config, dataset.x_train, dataset.y_train, dataset.n_classes, trainer, on_epoch=score_test_set)
    # the seconds `softmax train --val-split` would report: the test scoring is this script's own
    return {"config": config, "history": result.history, "seconds": result.train_seconds - scoring_seconds}


def final_val_accuracy(run: dict) -> float:
    return run["history"][-1]["val_accuracy"]


def markdown(best, runs, epochs: int, n_train: int, n_validation: int, n_test: int) -> str:
    """Return the comparison as markdown: the best run of each loss, then every run."""
    shown_epochs = sorted({e for e in (1, 2, 5, epochs) if e <= epochs})
    header = ("| loss | lr | " + " | ".join(f"after {e} epoch{'s' if e > 1 else ''}" for e in shown_epochs)
              + " | seconds |")
    rule = "|---|---:|" + "---:|" * len(shown_epochs) + "---:|"

    def rows(selected):
        for run in selected:
            cells = [f"{run['history'][e - 1]['val_accuracy']:.2%} / {run['history'][e - 1]['test_accuracy']:.2%}"
                     for e in shown_epochs]
            yield f"| {run['config'].loss} | {run['config'].lr:g} | {' | '.join(cells)} | {run['seconds']:.2f} |"

    defaults = TrainConfig()
    return "\n".join([
        "# Cross-entropy vs mean squared error on the softmax outputs",
        "",
        (f"MNIST; every run trains on {n_train:,} training images for {epochs} epochs and is scored on the "
         f"{n_validation:,} held out of the training set (validation) and on the {n_test:,} test images. "
         f"Other settings are `softmax train`'s defaults: batch size {defaults.batch_size}, momentum "
         f"{defaults.momentum}, a {defaults.schedule} learning-rate decay over the {epochs} epochs, the weights "
         f"averaged over the last {defaults.average:.0%} of the steps. Cells are validation / test accuracy after "
         "that epoch; seconds are the training loop's, with the validation scoring after each epoch."),
        "",
        "## The best learning rate of each loss (by final validation accuracy)",
        "",
        header, rule, *rows(best),
        "",
        "## Every run",
        "",
        header, rule, *rows(runs),
        "",
    ])


if __name__ == "__main__":
    main()
